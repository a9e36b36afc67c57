//! `ed-bench sam-teacher`: the SAM teacher's fine-tuning on a synthetic set (48 train, 8
//! val images of 128², 1-3 objects), twice per model size: LoRA (r 8 on the decoder's
//! attention projections) and the whole mask decoder trained. Prints, per run, the peak
//! heap above the level before training starts (a counting allocator: parameters,
//! gradients, optimizer state, activations) and the time of the first epoch (embedding
//! cache built: image decode, preprocessing, encoder) against later epochs (cache read).
use edgedistill::data::Coco;
use edgedistill::data::dataset::Dataset;
use edgedistill::data::synth::{SynthConfig, generate};
use edgedistill::models::sam::{SamConfig, SamModel};
use edgedistill::train::fit;
use edgedistill::train::sam_teacher::{SamTask, TeacherOptions, Tune, default_lora};
use edgedistill::{Error, Result};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

/// The system allocator, counting live bytes and their peak.
struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged to the system allocator.
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            let now = LIVE.fetch_add(l.size(), Ordering::Relaxed) + l.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(p, l) };
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// A SAM config: encoder (hidden, layers, input side, patch, global layers) and decoder
/// width `d` (SAM's is 256 with an MLP of 2048 and 8 heads).
fn config(
    hidden: usize,
    layers: usize,
    image: usize,
    patch: usize,
    global: &[usize],
    d: usize,
) -> Result<SamConfig> {
    let g = image / patch;
    SamConfig::from_json(&serde_json::json!({
        "vision_config": {"hidden_size": hidden, "output_channels": d, "num_hidden_layers": layers,
            "num_attention_heads": hidden / 32, "image_size": image, "patch_size": patch,
            "window_size": 8, "global_attn_indexes": global, "num_pos_feats": d / 2,
            "mlp_dim": 4 * hidden},
        "prompt_encoder_config": {"hidden_size": d, "image_size": image, "patch_size": patch,
            "mask_input_channels": if d >= 256 { 16 } else { 8 }, "image_embedding_size": g},
        "mask_decoder_config": {"hidden_size": d, "mlp_dim": if d >= 256 { 2048 } else { 64 },
            "num_hidden_layers": 2, "num_attention_heads": if d >= 256 { 8 } else { 2 },
            "iou_head_hidden_dim": d}
    }))
}

pub fn sam_teacher_case(epochs: usize) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("ed-bench-sam-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = generate(
        &SynthConfig {
            n_train: 48,
            n_val: 8,
            size: 128,
            classes: vec!["circle".into(), "square".into(), "triangle".into()],
            max_objects: 3,
            seed: 5,
        },
        &dir.join("data"),
    )?;
    let read = |p: &std::path::Path| -> Result<(Coco, Dataset)> {
        let c = Coco::read_strict(p)?;
        let d = Dataset::from_coco(&c, &out.images_dir, "synthetic")?;
        Ok((c, d))
    };
    let (tc, tr) = read(&out.train_json)?;
    let (vc, va) = read(&out.val_json)?;
    let sizes = [
        (
            "tiny (test config: ViT 96×4, 128² / 8)",
            config(96, 4, 128, 8, &[3], 32)?,
        ),
        (
            "small (ViT 384×12, 256² / 16)",
            config(384, 12, 256, 16, &[11], 32)?,
        ),
        // SAM's own decoder (256 wide, 64×64 embeddings of a 1024² input) behind a small
        // windowed encoder: the decoder-training memory of the released models.
        (
            "SAM-size decoder (ViT 64×2 stub, 1024² / 16)",
            config(64, 2, 1024, 16, &[], 256)?,
        ),
    ];
    println!(
        "| model | tuned | trainable | peak heap in training | epoch 1 (cache built) | epoch 2+ | epoch 1 / epoch 2+ |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (name, cfg) in &sizes {
        for (full, dropout) in [(false, 0.05), (false, 0.0), (true, 0.0)] {
            let mut lcfg = default_lora();
            lcfg.dropout = dropout;
            let sd = edgedistill::io::StateDict::from_tensors(edgedistill::nn::state_dict_of(
                &SamModel::random(cfg, 7)?,
            ));
            let lora = (!full).then(|| (lcfg.clone(), 1));
            let (model, _) = SamModel::from_state_dict_lora(cfg, &sd, "bench", lora)?;
            drop(sd);
            let mut opts = TeacherOptions::default();
            opts.tune = if full {
                Tune::FullDecoder
            } else {
                Tune::Lora(lcfg.clone())
            };
            opts.train.epochs = epochs;
            opts.train.progress = false;
            let run_dir = dir.join(format!("{}-{full}-{dropout}", cfg.vision.hidden_size));
            let t0 = Instant::now();
            let (mut task, built) = SamTask::new(
                &model,
                (&tr, &tc),
                (&va, &vc),
                &out.images_dir,
                &run_dir.join("cache"),
                opts.clone(),
            )?;
            let build = t0.elapsed().as_secs_f64();
            if built != [true, true] {
                return Err(Error::msg("bench: the embedding cache was not built fresh"));
            }
            let trainable: usize = task.trainable().0.iter().map(|(_, t)| t.elem_count()).sum();
            let base = LIVE.load(Ordering::Relaxed);
            PEAK.store(base, Ordering::Relaxed);
            let t1 = Instant::now();
            fit(&mut task, &opts.train, &run_dir, false)?;
            let per_epoch = t1.elapsed().as_secs_f64() / epochs as f64;
            let peak = PEAK.load(Ordering::Relaxed) - base;
            println!(
                "| {name} | {} | {trainable} | {:.2} MiB | {:.2} s | {:.2} s | {:.1}× |",
                if full {
                    "whole decoder".to_string()
                } else {
                    format!("LoRA r8 attention, dropout {dropout}")
                },
                peak as f64 / (1 << 20) as f64,
                build + per_epoch,
                per_epoch,
                (build + per_epoch) / per_epoch
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
