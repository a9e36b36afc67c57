//! `ed-train-student`'s job as a function: COCO train/val → YOLOv8-seg (masks present) or
//! YOLOv8 detect (boxes only) trained with `fit`, then the best EMA weights written as a
//! model file (`weights/best.model.safetensors`) that `ed-predict` and `ed-eval` read.
use super::config::TrainConfig;
use super::trainer::{FitSummary, fit};
use super::yolo::{YoloTask, YoloTaskConfig};
use crate::data::Coco;
use crate::data::augment::TransformSpec;
use crate::data::dataset::Dataset;
use crate::eval::metrics::Evaluation;
use crate::io::atomic::write_atomic;
use crate::models::yolov8::{LossGains, ModelMeta, YoloConfig, YoloModel, save_model};
use crate::nn::load_state_dict;
use crate::tensor::Rng;
use crate::train::checkpoint::Checkpoint;
use crate::{Error, Result};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Everything a student run needs.
#[derive(Clone, Debug)]
pub struct StudentOptions {
    pub train_json: PathBuf,
    pub val_json: PathBuf,
    /// Folder the `file_name`s of both files are relative to.
    pub images: PathBuf,
    pub out: PathBuf,
    /// YOLOv8 scale n/s/m/l/x (ignored when `config` is given).
    pub scale: char,
    /// A full ultralytics model config (yaml as JSON) instead of the stock one.
    pub config: Option<serde_json::Value>,
    pub imgsz: u32,
    pub train: TrainConfig,
    pub gains: LossGains,
    pub augment: Vec<TransformSpec>,
    pub resume: bool,
}

/// What a finished (or interrupted) run leaves.
pub struct StudentResult {
    pub fit: FitSummary,
    /// The best EMA weights as a model file.
    pub model_path: PathBuf,
    /// Validation of that model.
    pub val: Evaluation,
    pub seg: bool,
    pub names: Vec<String>,
}

fn load(path: &Path, images: &Path) -> Result<(Coco, Arc<Dataset>)> {
    let coco = Coco::read_strict(path)?;
    let ds = Dataset::from_coco(&coco, images, &path.display().to_string())?;
    if ds.is_empty() {
        return Err(Error::Format {
            path: path.display().to_string(),
            record: "images".into(),
            msg: "the dataset has no images".into(),
        });
    }
    Ok((coco, Arc::new(ds)))
}

/// Train, then export the best weights. The dataset decides the model: masks on every
/// annotation → seg, else detect.
pub fn train_student(o: &StudentOptions) -> Result<StudentResult> {
    let (coco, train) = load(&o.train_json, &o.images)?;
    let (_, val) = load(&o.val_json, &o.images)?;
    if val.classes.len() != train.classes.len() {
        return Err(Error::msg(format!(
            "{} has {} categories but {} has {}",
            o.train_json.display(),
            train.classes.len(),
            o.val_json.display(),
            val.classes.len()
        )));
    }
    let nc = train.classes.len();
    let seg = train.with_masks;
    let cfg = match &o.config {
        Some(v) => {
            let mut v = v.clone();
            v["nc"] = serde_json::json!(nc);
            YoloConfig::from_json(&v)?
        }
        None => YoloConfig::yolov8(o.scale, nc, seg)?,
    };
    let model = YoloModel::new(&cfg, &mut Rng::new(o.train.seed))?;
    if model.is_seg() && !seg {
        return Err(Error::msg(format!(
            "{}: not every annotation has a mask, so a segmentation model cannot be trained; \
             use the stock config (a detect model is chosen for boxes-only data)",
            o.train_json.display()
        )));
    }
    let names: Vec<String> = (0..nc).map(|i| train.classes.name(i).to_string()).collect();
    let mut cat_ids: Vec<u64> = coco.categories.iter().map(|c| c.id).collect();
    cat_ids.sort_unstable();
    let meta = ModelMeta {
        config: cfg.raw.clone(),
        names: names.clone(),
        category_ids: cat_ids,
        imgsz: o.imgsz,
    };
    std::fs::create_dir_all(o.out.join("weights")).map_err(|source| Error::Io {
        path: o.out.clone(),
        source,
    })?;
    write_json(&o.out.join("config.json"), &run_config(o, &meta, seg))?;

    let mut train_cfg = o.train.clone();
    if train_cfg.fitness_key == "fitness" && seg {
        train_cfg.fitness_key = "mAP50(M)".into(); // the default for mask data
    }
    let tcfg = YoloTaskConfig {
        imgsz: o.imgsz,
        batch: train_cfg.batch,
        seed: train_cfg.seed,
        gains: o.gains.clone(),
        augment: o.augment.clone(),
        val_batch: 16,
    };
    let mut task = YoloTask::new(model, train, val, tcfg)?;
    let summary = fit(&mut task, &train_cfg, &o.out, o.resume)?;

    let best = summary
        .best_checkpoint
        .clone()
        .unwrap_or_else(|| summary.last_checkpoint.clone());
    let ck = Checkpoint::open(&best)?;
    load_state_dict(task.model(), &ck.ema_state(), true)?;
    let model_path = o.out.join("weights").join("best.model.safetensors");
    save_model(&model_path, task.model(), &meta)?;
    let val = task.evaluate_val()?;
    Ok(StudentResult {
        fit: summary,
        model_path,
        val,
        seg,
        names,
    })
}

fn run_config(o: &StudentOptions, meta: &ModelMeta, seg: bool) -> serde_json::Value {
    serde_json::json!({
        "task": if seg { "segment" } else { "detect" },
        "train": o.train_json, "val": o.val_json, "images": o.images,
        "imgsz": o.imgsz, "model": meta.config, "names": meta.names,
        "train_config": format!("{:?}", o.train),
        "gains": {"box": o.gains.box_gain, "cls": o.gains.cls_gain, "dfl": o.gains.dfl_gain},
        "augment": o.augment,
    })
}

/// Pretty JSON written atomically.
pub fn write_json(path: &Path, v: &serde_json::Value) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(v).map_err(|e| Error::msg(e.to_string()))?;
    write_atomic(path, |w| {
        w.write_all(&bytes).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })
    })
}

impl StudentResult {
    /// The lines `ed-train-student` and `ed-demo` print.
    pub fn summary_text(&self) -> String {
        let mut s = format!(
            "{} after {} epochs ({:?}); model: {}\n",
            if self.seg {
                "YOLOv8-seg"
            } else {
                "YOLOv8 detect"
            },
            self.fit.epochs_completed,
            self.fit.status,
            self.model_path.display()
        );
        for (tag, m) in [
            ("box", Some(&self.val.boxes)),
            ("mask", self.val.masks.as_ref()),
        ] {
            if let Some(m) = m {
                s += &format!(
                    "val {tag:4}: P {:.3}  R {:.3}  mAP50 {:.3}  mAP50-95 {:.3}\n",
                    m.mp, m.mr, m.map50, m.map
                );
            }
        }
        s.trim_end().to_string()
    }
}
