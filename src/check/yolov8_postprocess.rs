//! Replays a `yolov8-postprocess` fixture (tools/reference/make_yolov8_postprocess_fixture.py)
//! with models::yolov8::postprocess: ultralytics `non_max_suppression` then
//! `process_mask(upsample=True)` for one image.
//!
//! - `config`: `nc`, `nm`, `conf_thres`, `iou_thres`, `max_det`, `agnostic`, `imgsz`
//!   (`[h, w]` of the model input), optional `classes`, `max_nms`, `max_wh`;
//! - `inputs.pred` `[1, 4 + nc + nm, A]`, `inputs.proto` `[1, nm, h/4, w/4]`;
//! - `outputs.boxes` `[n, 4]` (xyxy input px), `outputs.scores` `[n]`, `outputs.classes`
//!   `[n]` (f32), `outputs.masks` u8 `[n, h, w]`, rows in the reference's order.
use super::{CheckLine, Fixture};
use crate::models::yolov8::postprocess::{NmsConfig, non_max_suppression, process_mask};
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
    let boxes: Vec<f32> = d.boxes.iter().flatten().copied().collect();
    let classes: Vec<f32> = d.classes.iter().map(|&c| c as f32).collect();
    let mut full = Vec::with_capacity(n * h * w);
    for m in &masks {
        full.extend(m.to_full());
    }
    Ok(vec![
        ("boxes", Tensor::from_vec(boxes, [n, 4])?),
        ("scores", Tensor::from_vec(d.scores, [n])?),
        ("classes", Tensor::from_vec(classes, [n])?),
        ("masks", Tensor::from_vec(full, [n, h, w])?),
    ])
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
