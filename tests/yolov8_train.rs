//! The student's training path end to end on a tiny generated dataset: an interrupted and
//! resumed run ends with the same weights as an uninterrupted one; bad inputs are errors.
use edgedistill::Result;
use edgedistill::data::Coco;
use edgedistill::data::augment::{Environment, plan};
use edgedistill::data::dataset::Dataset;
use edgedistill::data::synth::{SynthConfig, SynthOutput, generate};
use edgedistill::io::StateDict;
use edgedistill::models::yolov8::{LossGains, YoloConfig, YoloModel};
use edgedistill::nn::Module;
use edgedistill::optim::OptimizerKind;
use edgedistill::tensor::Rng;
use edgedistill::train::yolo::{YoloTask, YoloTaskConfig};
use edgedistill::train::{
    EpochCtx, FitStatus, StepCtx, StepLoss, TrainConfig, TrainTask, fit, request_interrupt,
};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

const SIZE: u32 = 64;

fn data(dir: &Path) -> SynthOutput {
    let cfg = SynthConfig {
        n_train: 8,
        n_val: 4,
        size: SIZE,
        classes: vec!["circle".into(), "square".into()],
        max_objects: 3,
        seed: 3,
    };
    generate(&cfg, dir).unwrap()
}

fn tiny(nc: usize, seg: bool, seed: u64) -> YoloModel {
    let mut raw = YoloConfig::yolov8('n', nc, seg).unwrap().raw;
    raw["scales"]["n"] = serde_json::json!([0.33, 0.0625, 1024]);
    YoloModel::new(&YoloConfig::from_json(&raw).unwrap(), &mut Rng::new(seed)).unwrap()
}

fn dataset(json: &Path, images: &Path) -> Arc<Dataset> {
    let coco = Coco::read_strict(json).unwrap();
    Arc::new(Dataset::from_coco(&coco, images, "test").unwrap())
}

/// The YOLO task, interrupted after global batch `at` when set.
struct Interrupting {
    inner: YoloTask,
    at: Option<usize>,
}

impl TrainTask for Interrupting {
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
        let r = self.inner.train_step(ctx)?;
        if self.at == Some(ctx.ni) {
            request_interrupt();
        }
        Ok(r)
    }
    fn validate(&mut self, epoch: usize) -> Result<BTreeMap<String, f64>> {
        self.inner.validate(epoch)
    }
}

fn task(d: &SynthOutput, model_seed: u64, at: Option<usize>) -> Interrupting {
    let cfg = YoloTaskConfig {
        imgsz: SIZE,
        batch: 4,
        seed: 11,
        gains: LossGains::default(),
        augment: plan(&[], &Environment::default(), "low").unwrap(),
        val_batch: 4,
    };
    let inner = YoloTask::new(
        tiny(2, true, model_seed),
        dataset(&d.train_json, &d.images_dir),
        dataset(&d.val_json, &d.images_dir),
        cfg,
    )
    .unwrap();
    Interrupting { inner, at }
}

fn train_cfg() -> TrainConfig {
    TrainConfig {
        epochs: 2,
        batch: 4,
        nbs: 8, // accumulate 2: the interrupt lands between optimizer steps
        optimizer: OptimizerKind::sgd(),
        lr0: 0.01,
        warmup_epochs: 1.0,
        close_mosaic: 1,
        seed: 5,
        progress: false,
        ..TrainConfig::default()
    }
}

fn weights(path: &Path) -> Vec<(String, Vec<u8>)> {
    let sd = StateDict::open(path).unwrap();
    let mut v: Vec<(String, Vec<u8>)> = sd
        .names()
        .filter(|n| n.starts_with("model.") || n.starts_with("ema.") || n.starts_with("optim."))
        .map(|n| {
            (
                n.to_string(),
                sd.get(n)
                    .unwrap()
                    .to_vec_f64()
                    .unwrap()
                    .iter()
                    .flat_map(|x| x.to_le_bytes())
                    .collect(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn interrupted_and_resumed_run_equals_uninterrupted_run() {
    let tmp = std::env::temp_dir().join(format!("ed-yolo-train-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let d = data(&tmp.join("data"));
    let cfg = train_cfg();

    let full = fit(&mut task(&d, 1, None), &cfg, &tmp.join("full"), false).unwrap();
    assert_eq!(full.status, FitStatus::Completed);
    assert_eq!(full.epochs_completed, 2);

    let cut = fit(&mut task(&d, 1, Some(2)), &cfg, &tmp.join("cut"), false).unwrap();
    assert_eq!(cut.status, FitStatus::Interrupted);
    // The resumed task starts from other weights: everything must come from the checkpoint.
    let resumed = fit(&mut task(&d, 99, None), &cfg, &tmp.join("cut"), true).unwrap();
    assert_eq!(resumed.status, FitStatus::Completed);

    let a = weights(&tmp.join("full/weights/last.safetensors"));
    let b = weights(&tmp.join("cut/weights/last.safetensors"));
    assert!(
        a.iter().any(|(n, _)| n.starts_with("ema."))
            && a.iter().any(|(n, _)| n.starts_with("optim."))
    );
    assert_eq!(a.len(), b.len());
    for ((na, va), (nb, vb)) in a.iter().zip(&b) {
        assert_eq!(na, nb);
        assert!(
            va == vb,
            "{na} differs between the uninterrupted and the resumed run"
        );
    }
    let _ = std::fs::remove_dir_all(&tmp);
}

#[test]
fn bad_inputs_are_errors() {
    let tmp = std::env::temp_dir().join(format!("ed-yolo-bad-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let d = data(&tmp.join("data"));
    let cfg = |batch| YoloTaskConfig {
        imgsz: SIZE,
        batch,
        seed: 0,
        gains: LossGains::default(),
        augment: Vec::new(),
        val_batch: 4,
    };
    let train = dataset(&d.train_json, &d.images_dir);
    let val = dataset(&d.val_json, &d.images_dir);

    // boxes only, given to a seg model
    let mut coco = Coco::read_strict(&d.train_json).unwrap();
    coco.annotations
        .iter_mut()
        .for_each(|a| a.segmentation = None);
    let boxes_only = Arc::new(Dataset::from_coco(&coco, &d.images_dir, "boxes.json").unwrap());
    let e = YoloTask::new(tiny(2, true, 0), boxes_only.clone(), val.clone(), cfg(4))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("no instance masks"), "{e}");
    // ... a detect model trains on it
    assert!(YoloTask::new(tiny(2, false, 0), boxes_only, val.clone(), cfg(4)).is_ok());

    // class count mismatch
    let e = YoloTask::new(tiny(3, true, 0), train.clone(), val.clone(), cfg(4))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("3 classes") && e.contains("has 2"), "{e}");

    // an empty training set
    let mut empty = Coco::read_strict(&d.train_json).unwrap();
    empty.images.clear();
    empty.annotations.clear();
    let empty = Arc::new(Dataset::from_coco(&empty, &d.images_dir, "empty.json").unwrap());
    let e = YoloTask::new(tiny(2, true, 0), empty, val, cfg(4))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("no images"), "{e}");
    let _ = std::fs::remove_dir_all(&tmp);
}
