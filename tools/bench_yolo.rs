//! `ed-bench yolo-forward` / `yolo-train`: YOLOv8n-seg (random weights, seed 0) against
//! ultralytics on the same weights. Forward: BN folded (what ultralytics' predictor runs,
//! `model.fuse()`), 640², batch 1. Train step: train-mode forward, v8SegmentationLoss on
//! fixed random targets, backward, SGD (nesterov) step; 320², batch 8.
use super::{Args, reference_with, report, time};
use edgedistill::Result;
use edgedistill::loss::yolo::Targets;
use edgedistill::models::yolov8::{LossGains, YoloConfig, YoloModel, compute_loss};
use edgedistill::nn::{Module, state_dict_of};
use edgedistill::optim::{Sgd, SgdConfig};
use edgedistill::tensor::Rng;
use edgedistill::{Tensor, no_grad};

pub fn yolo_case(a: &Args, train: bool) -> Result<()> {
    let cfg = YoloConfig::yolov8('n', 80, true)?;
    let model = YoloModel::new(&cfg, &mut Rng::new(0))?;
    let dir = std::env::temp_dir().join(format!("ed-bench-yolo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| edgedistill::Error::msg(e.to_string()))?;
    let wpath = dir.join("weights.safetensors");
    let cpath = dir.join("config.json");
    edgedistill::io::save_safetensors(&wpath, &state_dict_of(&model), None)?;
    std::fs::write(&cpath, cfg.raw.to_string())
        .map_err(|e| edgedistill::Error::msg(e.to_string()))?;
    let (imgsz, batch) = if train { (320usize, 8usize) } else { (640, 1) };
    let mut rng = Rng::new(1);
    let x = Tensor::rand([batch, 3, imgsz, imgsz], 0.0, 1.0, &mut rng);
    let ours = if train {
        let n = 4 * batch;
        let targets = Targets {
            batch_idx: (0..n).map(|i| i / 4).collect(), // sorted by image, as ultralytics collates
            cls: (0..n).map(|i| i % 80).collect(),
            bboxes: (0..n)
                .map(|i| {
                    let f = (i as f32 + 0.5) / n as f32;
                    [0.25 + 0.5 * f, 0.75 - 0.5 * f, 0.1 + 0.3 * f, 0.4 - 0.3 * f]
                })
                .collect(),
            masks: Some(
                Tensor::rand([n, imgsz / 4, imgsz / 4], 0.0, 1.0, &mut rng)
                    .gt_scalar(0.5)?
                    .to_dtype(edgedistill::DType::F32)?,
            ),
        };
        let params: Vec<Tensor> = model
            .named_parameters()
            .into_iter()
            .map(|(_, p)| p)
            .filter(|p| p.requires_grad())
            .collect();
        let mut opt = Sgd::new(
            params,
            SgdConfig {
                lr: 1e-3,
                momentum: 0.937,
                nesterov: true,
                ..Default::default()
            },
        )?;
        let gains = LossGains::default();
        time("ours yolov8n-seg train step", a.iters, || {
            opt.zero_grad();
            let out = model.forward_train(&x)?;
            compute_loss(&model, &out, &targets, &gains)?
                .total
                .backward()?;
            opt.step()
        })?
    } else {
        let fused = model.fuse()?;
        time("ours yolov8n-seg forward (fused)", a.iters, || {
            let _g = no_grad();
            fused.forward_eval(&x).map(|_| ())
        })?
    };
    // EDGEDISTILL_PROFILE_BACKWARD=1: where the backward went, by op (all timed steps).
    for (op, d, n) in edgedistill::autograd::profile::take() {
        eprintln!(
            "  backward {op:<28} {:9.1} ms total {n:6} calls",
            d.as_secs_f64() * 1e3
        );
    }
    let (w, c) = (wpath.display().to_string(), cpath.display().to_string());
    let (sz, b) = (imgsz.to_string(), batch.to_string());
    let refs = reference_with(
        a,
        &[
            "--weights",
            &w,
            "--config",
            &c,
            "--imgsz",
            &sz,
            "--batch",
            &b,
        ],
    );
    let _ = std::fs::remove_dir_all(&dir);
    if train {
        report(
            "ours_yolov8n_seg_train_step_b8_320",
            ours,
            &refs,
            &["ultralytics_train_step"],
        );
    } else {
        report(
            "ours_yolov8n_seg_forward_640",
            ours,
            &refs,
            &["ultralytics_forward"],
        );
    }
    Ok(())
}
