//! `ed-bench sam-teacher`: the SAM teacher's fine-tuning on a synthetic set (48 train, 8
//! val images of 128², 1-3 objects), twice per model size: LoRA (r 8 on the decoder's
//! attention projections) and the whole mask decoder trained. Prints, per run, the peak
//! heap above the level before training starts (a counting allocator: parameters,
//! gradients, optimizer state, activations) and the time of the first epoch (embedding
//! cache built: image decode, preprocessing, encoder) against later epochs (cache read).
use edgedistill::Tensor;
use edgedistill::data::Coco;
use edgedistill::data::dataset::Dataset;
use edgedistill::data::synth::{SynthConfig, generate};
use edgedistill::models::sam::{SamConfig, SamModel};
use edgedistill::nn::Module;
use edgedistill::optim::GroupKind;
use edgedistill::train::sam_teacher::{SamTask, TeacherOptions, Tune, default_lora};
use edgedistill::train::{EpochCtx, StepCtx, StepLoss, TrainTask, fit};
use edgedistill::{Error, Result};
use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
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

/// The task with the time spent in training steps (forward, loss) counted; the loop's
/// backward and optimizer step follow each call, so they are timed from one call's start
/// to the next call's start, up to the epoch's end.
struct Timed<'a> {
    inner: SamTask<'a>,
    train_s: f64,
    last: Option<Instant>,
}

impl TrainTask for Timed<'_> {
    fn module(&self) -> &dyn Module {
        self.inner.module()
    }
    fn batches_per_epoch(&self) -> usize {
        self.inner.batches_per_epoch()
    }
    fn on_epoch_start(&mut self, ctx: &EpochCtx) -> Result<()> {
        self.inner.on_epoch_start(ctx)
    }
    fn train_step(&mut self, ctx: &mut StepCtx) -> Result<StepLoss> {
        let now = Instant::now();
        if let Some(t) = self.last.take() {
            self.train_s += (now - t).as_secs_f64();
        }
        self.last = Some(now);
        self.inner.train_step(ctx)
    }
    fn validate(&mut self, epoch: usize) -> Result<BTreeMap<String, f64>> {
        if let Some(t) = self.last.take() {
            self.train_s += t.elapsed().as_secs_f64();
        }
        self.inner.validate(epoch)
    }
    fn param_group(&self, name: &str, t: &Tensor) -> GroupKind {
        self.inner.param_group(name, t)
    }
}

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
            "tiny (test config: ViT 96×12, 256² / 16)",
            config(96, 12, 256, 16, &[5, 11], 32)?,
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
        "| model | tuned | trainable | peak heap in training | epoch 1 (cache built) | epoch 2+ | epoch 1 / epoch 2+ | training steps per epoch | epoch 1 / epoch 2+, steps only |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
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
            let mut opts = TeacherOptions {
                tune: if full {
                    Tune::FullDecoder
                } else {
                    Tune::Lora(lcfg.clone())
                },
                ..Default::default()
            };
            opts.train.epochs = epochs;
            opts.train.progress = false;
            let run_dir = dir.join(format!("{}-{full}-{dropout}", cfg.vision.hidden_size));
            let t0 = Instant::now();
            let (task, built) = SamTask::new(
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
            let mut task = Timed {
                inner: task,
                train_s: 0.0,
                last: None,
            };
            let base = LIVE.load(Ordering::Relaxed);
            PEAK.store(base, Ordering::Relaxed);
            let t1 = Instant::now();
            fit(&mut task, &opts.train, &run_dir, false)?;
            let per_epoch = t1.elapsed().as_secs_f64() / epochs as f64;
            let steps = task.train_s / epochs as f64;
            let peak = PEAK.load(Ordering::Relaxed) - base;
            println!(
                "| {name} | {} | {trainable} | {:.2} MiB | {:.2} s | {:.2} s | {:.1}× | {:.2} s | {:.1}× |",
                if full {
                    "whole decoder".to_string()
                } else {
                    format!("LoRA r8 attention, dropout {dropout}")
                },
                peak as f64 / (1 << 20) as f64,
                build + per_epoch,
                per_epoch,
                (build + per_epoch) / per_epoch,
                steps,
                (build + steps) / steps
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
