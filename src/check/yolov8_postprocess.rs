//! Replays a `yolov8-postprocess` fixture (tools/reference/make_yolov8_postprocess_fixture.py)
//! with models::yolov8::postprocess: ultralytics `non_max_suppression` then
//! `process_mask(upsample=True)` for one image.
//!
//! - `config`: `nc`, `nm`, `conf_thres`, `iou_thres`, `max_det`, `agnostic`, `imgsz`
//!   (`[h, w]` of the model input), optional `classes`, `max_nms`, `max_wh`;
//! - `inputs.pred` `[1, 4 + nc + nm, A]`, `inputs.proto` `[1, nm, h/4, w/4]`;
//! - `outputs.boxes` `[n, 4]` (xyxy input px), `outputs.scores` `[n]`, `outputs.classes`
//!   `[n]` (f32), `outputs.masks` u8 `[n, h, w]`, rows in the reference's order;
//! - with `orig_shape` `[h0, w0]` in the config (square `imgsz` only), the mapping back
//!   through the letterbox: `outputs.orig_boxes` `[n, 4]`, `outputs.orig_masks` u8
//!   `[n, h0, w0]` (ultralytics val's `scale_masks(..).byte()`, [`Binarize::Truncate`]) and
//!   `outputs.orig_masks_half` (the same resize `> 0.5`, [`Binarize::Half`]).
use super::{CheckLine, Fixture};
use crate::data::preprocess::Letterbox;
use crate::models::yolov8::postprocess::{
    Binarize, CropMask, NmsConfig, non_max_suppression, process_mask, to_original,
};
use crate::{Error, Result, Tensor};
use serde::Deserialize;

/// The fixture's `config`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostprocessConfig {
    pub nc: usize,
    pub nm: usize,
    pub conf_thres: f32,
    pub iou_thres: f32,
    pub max_det: usize,
    pub agnostic: bool,
    /// Model input `[h, w]`.
    pub imgsz: [usize; 2],
    #[serde(default)]
    pub classes: Option<Vec<usize>>,
    #[serde(default)]
    pub max_nms: Option<usize>,
    #[serde(default)]
    pub max_wh: Option<f32>,
    /// Original image `[h, w]` to map back to.
    #[serde(default)]
    pub orig_shape: Option<[usize; 2]>,
}

impl PostprocessConfig {
    pub fn nms(&self) -> NmsConfig {
        let d = NmsConfig::default();
        NmsConfig {
            conf: self.conf_thres,
            iou: self.iou_thres,
            max_det: self.max_det,
            agnostic: self.agnostic,
            classes: self.classes.clone(),
            max_nms: self.max_nms.unwrap_or(d.max_nms),
            max_wh: self.max_wh.unwrap_or(d.max_wh),
        }
    }
}

/// Our four outputs for `pred` `[1, 4 + nc + nm, A]` and `proto` `[1, nm, mh, mw]`:
/// boxes, scores, classes (f32) and masks (u8 `[n, h, w]`), by output name.
pub fn run(
    pred: &Tensor,
    proto: &Tensor,
    cfg: &PostprocessConfig,
) -> Result<Vec<(&'static str, Tensor)>> {
    let [h, w] = cfg.imgsz;
    let want_ch = 4 + cfg.nc + cfg.nm;
    match pred.dims() {
        &[1, ch, _] if ch == want_ch => {}
        _ => {
            return Err(Error::msg(format!(
                "inputs.pred: expected [1, {want_ch}, A] (4 + nc + nm), got {}",
                pred.shape()
            )));
        }
    }
    match proto.dims() {
        &[1, nm, mh, mw] if nm == cfg.nm && mh > 0 && mw > 0 => {}
        _ => {
            return Err(Error::msg(format!(
                "inputs.proto: expected [1, {}, mh, mw], got {}",
                cfg.nm,
                proto.shape()
            )));
        }
    }
    let dets = non_max_suppression(pred, cfg.nc, &cfg.nms())?;
    let d = dets.into_iter().next().unwrap_or_default();
    let masks = process_mask(proto, &d, (h, w))?;
    let n = d.len();
    let classes: Vec<f32> = d.classes.iter().map(|&c| c as f32).collect();
    let mut out = vec![
        ("boxes", boxes_tensor(&d.boxes)?),
        ("scores", Tensor::from_vec(d.scores.clone(), [n])?),
        ("classes", Tensor::from_vec(classes, [n])?),
        ("masks", masks_tensor(&masks, h, w)?),
    ];
    if let Some([h0, w0]) = cfg.orig_shape {
        if h != w || h0 == 0 || w0 == 0 {
            return Err(Error::msg(format!(
                "orig_shape {h0}x{w0} with imgsz {h}x{w}: needs a square imgsz and a non-empty original"
            )));
        }
        let size = u32::try_from(h).map_err(|_| Error::msg("imgsz too large"))?;
        let (w0u, h0u) = (
            u32::try_from(w0).map_err(|_| Error::msg("orig_shape too large"))?,
            u32::try_from(h0).map_err(|_| Error::msg("orig_shape too large"))?,
        );
        let p = Letterbox { size }.placement(w0u, h0u);
        let trunc = to_original(&d, &masks, &p, Binarize::Truncate)?;
        let half = to_original(&d, &masks, &p, Binarize::Half)?;
        out.push(("orig_boxes", boxes_tensor(&trunc.boxes)?));
        out.push(("orig_masks", masks_tensor(&trunc.masks, h0, w0)?));
        out.push(("orig_masks_half", masks_tensor(&half.masks, h0, w0)?));
    }
    Ok(out)
}

fn boxes_tensor(b: &[[f32; 4]]) -> Result<Tensor> {
    Tensor::from_vec(
        b.iter().flatten().copied().collect::<Vec<f32>>(),
        [b.len(), 4],
    )
}

/// u8 `[n, h, w]` of whole masks.
fn masks_tensor(masks: &[CropMask], h: usize, w: usize) -> Result<Tensor> {
    let mut full = Vec::with_capacity(masks.len() * h * w);
    for m in masks {
        full.extend(m.to_full());
    }
    Tensor::from_vec(full, [masks.len(), h, w])
}

/// The `yolov8-postprocess` kind: one line per `outputs.*` tensor; an output we do not make
/// is a failed line.
pub fn check(fx: &Fixture) -> Result<Vec<CheckLine>> {
    let cfg: PostprocessConfig =
        serde_json::from_value(fx.config()?).map_err(|e| Error::Format {
            path: fx.path().to_string(),
            record: "metadata config".into(),
            msg: format!("not a yolov8-postprocess config: {e}"),
        })?;
    let ours = run(
        &fx.tensor("inputs.pred")?,
        &fx.tensor("inputs.proto")?,
        &cfg,
    )?;
    Ok(fx
        .names_with_prefix("outputs.")
        .iter()
        .map(|name| {
            let key = &name["outputs.".len()..];
            match ours.iter().find(|(k, _)| *k == key) {
                Some((_, t)) => fx.compare(name, t),
                None => CheckLine::failed(
                    name,
                    fx.file()
                        .info(name)
                        .map(|i| i.shape.clone())
                        .unwrap_or_default(),
                    "no yolov8-postprocess output of that name",
                ),
            }
        })
        .collect())
}
