//! `ed-bench grounding-dino`: the eval forward of the grounding-dino-tiny shape (Swin-T,
//! BERT-base, d_model 256, 900 queries, 6+6 layers) on an 800×1333 image, ours against
//! transformers on the same random weights (written by tools/reference/bench_grounding_dino.py),
//! plus what the encoder cache saves per training image: `encode` (run once per image
//! with the cache, every epoch without) against decode + loss + backward of a LoRA step.
use super::Args;
use edgedistill::io::StateDict;
use edgedistill::loss::grounding_dino::{GroundingDinoLossConfig, grounding_dino_loss};
use edgedistill::loss::grounding_dino_match::{
    GdPrediction, GdTarget, build_label_maps, build_text_mask,
};
use edgedistill::models::grounding_dino::{GroundingDino, GroundingDinoConfig, Inputs};
use edgedistill::nn::Module;
use edgedistill::train::gd_teacher::default_lora;
use edgedistill::{Error, Result, Tensor};
use std::process::Command;
use std::time::Instant;

fn median_min(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[0])
}

pub fn grounding_dino_case(a: &Args) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("ed-bench-gdino-{}", std::process::id()));
    let py = a
        .python
        .clone()
        .ok_or_else(|| Error::msg("grounding-dino needs --python (it writes the weights)"))?;
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tools/reference/bench_grounding_dino.py"
    );
    eprintln!("reference: {py} {script}");
    let out = Command::new(&py)
        .args([
            script,
            "--dir",
            &dir.display().to_string(),
            "--threads",
            &a.threads.to_string(),
            "--iters",
            &a.iters.to_string(),
        ])
        .output()
        .map_err(|e| Error::msg(format!("{py}: {e}")))?;
    if !out.status.success() {
        return Err(Error::msg(format!(
            "reference failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    let refs: serde_json::Value =
        serde_json::from_slice(&out.stdout).map_err(|e| Error::msg(e.to_string()))?;
    let v = edgedistill::models::config_json::read_config(&dir.join("config.json"))?;
    let cfg = GroundingDinoConfig::from_json(&v)?;
    let sd = StateDict::open(dir.join("model.safetensors"))?;
    let inp = StateDict::open(dir.join("inputs.safetensors"))?;
    let (px, ids) = (inp.get("pixel_values")?, inp.get("input_ids")?);
    let inputs = Inputs {
        pixel_values: &px,
        pixel_mask: None,
        input_ids: &ids,
        attention_mask: None,
        token_type_ids: None,
    };
    let model = GroundingDino::from_state_dict(&cfg, &sd, "bench")?;
    let time = |f: &mut dyn FnMut() -> Result<()>| -> Result<(f64, f64)> {
        f()?; // warm-up
        let mut ts = Vec::new();
        for _ in 0..a.iters {
            let t0 = Instant::now();
            f()?;
            ts.push(t0.elapsed().as_secs_f64() * 1e3);
        }
        Ok(median_min(ts))
    };
    let ours = time(&mut || {
        let _g = edgedistill::no_grad();
        model.forward(&inputs).map(|_| ())
    })?;
    super::report(
        "ours forward 800x1333",
        ours,
        &Some(refs.clone()),
        &["transformers"],
    );
    println!(
        "transformers {}, torch {}",
        refs["transformers_version"], refs["torch_version"]
    );

    // The cache's saving per training image: encode vs one LoRA decode step.
    let (lm, _) =
        GroundingDino::from_state_dict_lora(&cfg, &sd, "bench", Some((default_lora(), 0)))?;
    let enc = {
        let _g = edgedistill::no_grad();
        lm.encode(&inputs)?
    };
    let encode = time(&mut || {
        let _g = edgedistill::no_grad();
        lm.encode(&inputs).map(|_| ())
    })?;
    let maps = build_label_maps(&ids, cfg.max_text_len)?;
    let mask = build_text_mask(
        &Tensor::ones(ids.dims().to_vec(), edgedistill::DType::I64),
        cfg.max_text_len,
    )?;
    let target = GdTarget {
        class_labels: vec![0, 1],
        boxes: Tensor::from_vec(vec![0.3f32, 0.3, 0.2, 0.2, 0.6, 0.7, 0.3, 0.4], [2, 4])?,
    };
    lm.train();
    let step = time(&mut || {
        let out = lm.decode(&enc)?;
        let layers: Vec<GdPrediction> = out
            .layer_logits
            .into_iter()
            .zip(out.layer_boxes)
            .map(|(logits, pred_boxes)| GdPrediction { logits, pred_boxes })
            .collect();
        let e = GdPrediction {
            logits: out.encoder_logits,
            pred_boxes: out.encoder_pred_boxes,
        };
        let l = grounding_dino_loss(
            &layers,
            Some(&e),
            &maps,
            &mask,
            std::slice::from_ref(&target),
            &GroundingDinoLossConfig::default(),
        )?;
        l.total.backward()?;
        Ok(())
    })?;
    println!(
        "encode (cached after epoch 1)        median {:>9.3} ms   min {:>9.3} ms",
        encode.0, encode.1
    );
    println!(
        "LoRA decode+loss+backward per image  median {:>9.3} ms   min {:>9.3} ms",
        step.0, step.1
    );
    println!(
        "per-image epoch time: without cache {:.0} ms, with cache {:.0} ms ({:.1}x)",
        encode.0 + step.0,
        step.0,
        (encode.0 + step.0) / step.0
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
