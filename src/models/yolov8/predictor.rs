//! Prediction from a model file: ultralytics' predictor with `rect=False` — letterbox to the
//! model's square `imgsz` (`auto=False`), `/ 255`, the BN-fused model's eval forward, NMS,
//! masks at the input size ([`predict_segment`]), everything mapped to the original image.
//! Detect models (no prototypes) give boxes only.
use super::postprocess::{
    Binarize, NmsConfig, Prediction, non_max_suppression, predict_segment, to_original,
};
use super::{ModelMeta, YoloModel, load_model};
use crate::data::preprocess::{Letterbox, Placement};
use crate::{Error, Result, Tensor};
use image::RgbImage;
use std::path::Path;

/// A loaded, fused model with its metadata and NMS settings.
pub struct Predictor {
    model: YoloModel,
    meta: ModelMeta,
    nms: NmsConfig,
    rule: Binarize,
}

impl Predictor {
    /// Load a model file (or run directory, see [`load_model`]) and fold its BNs once.
    /// NMS defaults to ultralytics' predictor (conf 0.25, iou 0.7, max_det 300).
    pub fn load(path: &Path) -> Result<Predictor> {
        let (model, meta) = load_model(path)?;
        Self::new(model, meta)
    }

    /// A predictor over an in-memory model, fused here unless it already is.
    pub fn new(model: YoloModel, meta: ModelMeta) -> Result<Predictor> {
        if meta.imgsz == 0 {
            return Err(Error::msg("predictor: model imgsz is 0"));
        }
        let model = if model.is_fused() {
            model
        } else {
            model.fuse()?
        };
        Ok(Predictor {
            model,
            meta,
            nms: NmsConfig::default(),
            rule: Binarize::Half,
        })
    }

    /// The same predictor with other NMS settings.
    pub fn with_nms(mut self, nms: NmsConfig) -> Predictor {
        self.nms = nms;
        self
    }

    /// The same predictor binarising resized masks by `rule` (default [`Binarize::Half`]).
    pub fn with_binarize(mut self, rule: Binarize) -> Predictor {
        self.rule = rule;
        self
    }

    /// NMS settings in use.
    pub fn nms(&self) -> &NmsConfig {
        &self.nms
    }

    /// The model file's metadata (config, imgsz).
    pub fn meta(&self) -> &ModelMeta {
        &self.meta
    }

    /// Class names, index = the class of [`Prediction::classes`].
    pub fn names(&self) -> &[String] {
        &self.meta.names
    }

    /// COCO category id of each class (same order as [`Self::names`]).
    pub fn category_ids(&self) -> &[u64] {
        &self.meta.category_ids
    }

    /// Whether predictions carry masks.
    pub fn is_seg(&self) -> bool {
        self.model.is_seg()
    }

    /// The fused model (for benchmarks and by-hand comparisons).
    pub fn model(&self) -> &YoloModel {
        &self.model
    }

    /// The model input of one image: `[3, imgsz, imgsz]` and its placement.
    pub fn preprocess(&self, img: &RgbImage) -> Result<(Tensor, Placement)> {
        let p = Letterbox {
            size: self.meta.imgsz,
        }
        .apply(img)?;
        Ok((p.pixel_values, p.placement))
    }

    /// Detections of one image, in its own pixels.
    pub fn predict(&self, img: &RgbImage) -> Result<Prediction> {
        let mut v = self.predict_batch(std::slice::from_ref(img))?;
        v.pop()
            .ok_or_else(|| Error::msg("predictor: no output for the image"))
    }

    /// Detections of several images, run through the model as one batch (same results as
    /// one by one: every image is letterboxed to the same square).
    pub fn predict_batch(&self, imgs: &[RgbImage]) -> Result<Vec<Prediction>> {
        if imgs.is_empty() {
            return Ok(Vec::new());
        }
        let (batch, placements) = letterbox_batch(imgs, self.meta.imgsz)?;
        self.predict_tensor(&batch, &placements)
    }

    /// Detections from a ready `[B, 3, imgsz, imgsz]` input with one placement per image.
    pub fn predict_tensor(
        &self,
        batch: &Tensor,
        placements: &[Placement],
    ) -> Result<Vec<Prediction>> {
        let out = self.model.forward_eval(batch)?;
        let nc = self.model.nc();
        postprocess(
            &out.pred,
            out.proto.as_ref(),
            nc,
            &self.nms,
            placements,
            self.rule,
        )
    }
}

/// Images letterboxed to `imgsz` (ultralytics' predictor, `auto=False`) and stacked into
/// one `[B, 3, imgsz, imgsz]` input, with each image's placement.
pub fn letterbox_batch(imgs: &[RgbImage], imgsz: u32) -> Result<(Tensor, Vec<Placement>)> {
    let (inputs, placements): (Vec<Tensor>, Vec<Placement>) = imgs
        .iter()
        .map(|im| {
            let p = Letterbox { size: imgsz }.apply(im)?;
            Ok((p.pixel_values, p.placement))
        })
        .collect::<Result<Vec<_>>>()?
        .into_iter()
        .unzip();
    let refs: Vec<&Tensor> = inputs.iter().collect();
    Ok((Tensor::stack(&refs, 0)?, placements))
}

/// The student's postprocess on its raw outputs: NMS, masks from `proto` when present
/// (seg), everything mapped back to each image through its placement.
pub fn postprocess(
    pred: &Tensor,
    proto: Option<&Tensor>,
    nc: usize,
    nms: &NmsConfig,
    placements: &[Placement],
    rule: Binarize,
) -> Result<Vec<Prediction>> {
    match proto {
        Some(proto) => predict_segment(pred, proto, nc, nms, placements, rule),
        None => {
            let dets = non_max_suppression(pred, nc, nms)?;
            if dets.len() != placements.len() {
                return Err(Error::msg(format!(
                    "predictor: {} images in the output, {} placements",
                    dets.len(),
                    placements.len()
                )));
            }
            dets.iter()
                .zip(placements)
                .map(|(d, p)| to_original(d, &[], p, rule))
                .collect()
        }
    }
}

/// What `ed-predict`, `ed-eval` and `ed-bench` need of a predictor: a model file
/// ([`Predictor`]) or an engine (`engine::Engine`).
pub trait Detector: Send + Sync {
    /// Detections of each image, in its own pixels.
    fn detect(&self, imgs: &[RgbImage]) -> Result<Vec<Prediction>>;
    /// Class names, index = class id.
    fn class_names(&self) -> &[String];
    /// COCO category id of each class.
    fn class_category_ids(&self) -> &[u64];
    /// Whether detections carry masks.
    fn has_masks(&self) -> bool;
    /// Square input side.
    fn input_size(&self) -> u32;
    /// Set NMS settings and the mask binarisation rule.
    fn configure(&mut self, nms: NmsConfig, rule: Binarize);
}

impl Detector for Predictor {
    fn detect(&self, imgs: &[RgbImage]) -> Result<Vec<Prediction>> {
        self.predict_batch(imgs)
    }
    fn class_names(&self) -> &[String] {
        self.names()
    }
    fn class_category_ids(&self) -> &[u64] {
        self.category_ids()
    }
    fn has_masks(&self) -> bool {
        self.is_seg()
    }
    fn input_size(&self) -> u32 {
        self.meta.imgsz
    }
    fn configure(&mut self, nms: NmsConfig, rule: Binarize) {
        self.nms = nms;
        self.rule = rule;
    }
}
