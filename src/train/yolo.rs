//! The YOLOv8 student as a `TrainTask`: the data loader (mosaic until the last
//! `close_mosaic` epochs), the model's train-mode forward, ultralytics' v8 loss, and
//! per-epoch validation on the EMA weights (`yolo_val`).
use super::trainer::{EpochCtx, StepCtx, StepLoss, TrainTask};
use super::yolo_val::{batch_evals, evaluate, metrics_map};
use crate::data::augment::{Augmenter, Transform, TransformSpec};
use crate::data::dataset::Dataset;
use crate::data::loader::{Batches, Loader, LoaderConfig};
use crate::loss::yolo::Targets;
use crate::models::yolov8::{LossGains, YoloModel, compute_loss};
use crate::nn::Module;
use crate::{Error, Result};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Data and loss settings of a student run.
#[derive(Clone, Debug)]
pub struct YoloTaskConfig {
    pub imgsz: u32,
    pub batch: usize,
    /// Seeds the loader's shuffle and augmentation.
    pub seed: u64,
    pub gains: LossGains,
    /// Augmentations for training; mosaic, mixup and copy-paste are dropped in the
    /// close-mosaic epochs, as ultralytics does.
    pub augment: Vec<TransformSpec>,
    /// Validation batch size.
    pub val_batch: usize,
}

/// The student being trained, with its loaders.
pub struct YoloTask {
    model: YoloModel,
    train: Loader,
    train_closed: Loader,
    val: Loader,
    cfg: YoloTaskConfig,
    /// The current epoch's batches: (epoch, index of the next batch, iterator).
    cursor: Option<(usize, usize, Batches)>,
    closed: bool,
    /// Loss items of the last step, per image (box, seg, cls, dfl), for error analysis.
    pub last_per_image: Vec<[f32; 4]>,
}

impl YoloTask {
    pub fn new(
        model: YoloModel,
        train: Arc<Dataset>,
        val: Arc<Dataset>,
        cfg: YoloTaskConfig,
    ) -> Result<Self> {
        if train.is_empty() {
            return Err(Error::msg("the training set has no images"));
        }
        if val.is_empty() {
            return Err(Error::msg("the validation set has no images"));
        }
        if model.is_seg() && !train.with_masks {
            return Err(Error::msg(
                "the training set has no instance masks, so a segmentation model cannot learn \
                 from it: train a detect model (boxes only) or add masks",
            ));
        }
        if train.classes.len() != model.nc() {
            return Err(Error::msg(format!(
                "the model has {} classes but the training set has {}",
                model.nc(),
                train.classes.len()
            )));
        }
        let lcfg = |batch: usize, shuffle: bool| LoaderConfig {
            batch_size: batch,
            imgsz: cfg.imgsz,
            shuffle,
            seed: cfg.seed,
            prefetch: 2,
            mask_ratio: 4,
            drop_last: false,
        };
        let aug = |specs: Vec<TransformSpec>| -> Result<Option<Augmenter>> {
            if specs.is_empty() {
                Ok(None)
            } else {
                Augmenter::new(specs, cfg.imgsz).map(Some)
            }
        };
        let closed: Vec<TransformSpec> = cfg
            .augment
            .iter()
            .filter(|s| {
                !matches!(
                    s.transform,
                    Transform::Mosaic | Transform::MixUp | Transform::CopyPaste(_)
                )
            })
            .cloned()
            .collect();
        Ok(YoloTask {
            train: Loader::new(
                train.clone(),
                aug(cfg.augment.clone())?,
                lcfg(cfg.batch, true),
            )?,
            train_closed: Loader::new(train, aug(closed)?, lcfg(cfg.batch, true))?,
            val: Loader::new(val, None, lcfg(cfg.val_batch, false))?,
            model,
            cfg,
            cursor: None,
            closed: false,
            last_per_image: Vec::new(),
        })
    }

    pub fn model(&self) -> &YoloModel {
        &self.model
    }

    /// Validate the model as it is now (the trainer swaps the EMA weights in first).
    pub fn evaluate_val(&self) -> Result<crate::eval::metrics::Evaluation> {
        let nms = crate::models::yolov8::postprocess::NmsConfig::validation();
        let mut images = Vec::new();
        for b in self.val.epoch(0) {
            images.extend(batch_evals(&self.model, &b?, &nms)?);
        }
        evaluate(&images, self.model.nc())
    }
}

impl TrainTask for YoloTask {
    fn module(&self) -> &dyn Module {
        &self.model
    }

    fn batches_per_epoch(&self) -> usize {
        self.train.num_batches()
    }

    fn on_epoch_start(&mut self, ctx: &EpochCtx) -> Result<()> {
        self.closed = ctx.close_mosaic;
        self.cursor = None;
        Ok(())
    }

    fn train_step(&mut self, ctx: &mut StepCtx) -> Result<StepLoss> {
        let stale =
            !matches!(&self.cursor, Some((e, next, _)) if *e == ctx.epoch && *next <= ctx.batch);
        if stale {
            let loader = if self.closed {
                &self.train_closed
            } else {
                &self.train
            };
            self.cursor = Some((ctx.epoch, 0, loader.epoch(ctx.epoch as u64)));
        }
        let Some((_, next, it)) = self.cursor.as_mut() else {
            return Err(Error::msg("internal: no batch iterator"));
        };
        // A resume lands mid-epoch: batches are seeded by position, so skipping is exact.
        let batch = loop {
            let b = it.next().ok_or_else(|| {
                Error::msg(format!(
                    "epoch {} ended before batch {}",
                    ctx.epoch, ctx.batch
                ))
            })??;
            *next += 1;
            if *next > ctx.batch {
                break b;
            }
        };
        let targets = Targets::from_batch(&batch)?;
        let out = self.model.forward_train(&batch.images)?;
        let loss = compute_loss(&self.model, &out, &targets, &self.cfg.gains)?;
        self.last_per_image = loss.per_image;
        let mut items = vec![("box".to_string(), loss.items[0] as f64)];
        if self.model.is_seg() {
            items.push(("seg".into(), loss.items[1] as f64));
        }
        items.push(("cls".into(), loss.items[2] as f64));
        items.push(("dfl".into(), loss.items[3] as f64));
        Ok(StepLoss {
            loss: loss.total,
            items,
        })
    }

    fn validate(&mut self, _epoch: usize) -> Result<BTreeMap<String, f64>> {
        Ok(metrics_map(&self.evaluate_val()?))
    }
}
