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
        let (inputs, placements): (Vec<Tensor>, Vec<Placement>) = imgs
            .iter()
            .map(|im| self.preprocess(im))
            .collect::<Result<Vec<_>>>()?
            .into_iter()
            .unzip();
        let refs: Vec<&Tensor> = inputs.iter().collect();
        let batch = Tensor::stack(&refs, 0)?;
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
        match &out.proto {
            Some(proto) => predict_segment(&out.pred, proto, nc, &self.nms, placements, self.rule),
            None => {
                let dets = non_max_suppression(&out.pred, nc, &self.nms)?;
                if dets.len() != placements.len() {
                    return Err(Error::msg(format!(
                        "predictor: {} images in the output, {} placements",
                        dets.len(),
                        placements.len()
                    )));
                }
                dets.iter()
                    .zip(placements)
                    .map(|(d, p)| to_original(d, &[], p, self.rule))
                    .collect()
            }
        }
    }
}
