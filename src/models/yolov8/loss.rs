//! The model's training outputs fed to ultralytics' v8 loss (`loss::yolo`): the head's
//! box and class maps per level, the strides and class count taken from the model.
use super::{TrainOutput, YoloModel};
use crate::loss::yolo::{self, LossOutput, Targets, YoloLossConfig};
use crate::{Error, Result, Tensor};

/// Loss gains and assigner settings (ultralytics `hyp`: box 7.5, cls 0.5, dfl 1.5,
/// tal_topk 10).
#[derive(Clone, Debug, PartialEq)]
pub struct LossGains {
    pub box_gain: f32,
    pub cls_gain: f32,
    pub dfl_gain: f32,
    pub tal_topk: usize,
}

impl Default for LossGains {
    fn default() -> Self {
        LossGains {
            box_gain: 7.5,
            cls_gain: 0.5,
            dfl_gain: 1.5,
            tal_topk: 10,
        }
    }
}

impl LossGains {
    /// From an ultralytics `hyp` dict (missing keys keep their defaults).
    pub fn from_hyp(hyp: Option<&serde_json::Value>) -> LossGains {
        let mut g = LossGains::default();
        if let Some(h) = hyp {
            let f = |k: &str, d: f32| h.get(k).and_then(|v| v.as_f64()).map_or(d, |v| v as f32);
            g.box_gain = f("box", g.box_gain);
            g.cls_gain = f("cls", g.cls_gain);
            g.dfl_gain = f("dfl", g.dfl_gain);
            g.tal_topk = h
                .get("tal_topk")
                .and_then(|v| v.as_u64())
                .map_or(g.tal_topk, |v| v as usize);
        }
        g
    }
}

/// The loss configuration for `model` with `gains`.
pub fn loss_config(model: &YoloModel, gains: &LossGains) -> YoloLossConfig {
    let mut c = YoloLossConfig::new(model.nc());
    c.reg_max = model.reg_max();
    c.strides = model.strides().to_vec();
    c.box_gain = gains.box_gain;
    c.cls_gain = gains.cls_gain;
    c.dfl_gain = gains.dfl_gain;
    c.tal_topk = gains.tal_topk;
    c
}

/// Per level `[B, 4·reg_max + nc, h, w]`: `cat(boxes, scores)` cut back to the grid of
/// each head input (the layout `loss::yolo` takes, ultralytics' pre-8.4 `feats`).
pub fn head_maps(out: &TrainOutput) -> Result<Vec<Tensor>> {
    let both = Tensor::cat(&[&out.boxes, &out.scores], 1)?;
    let (b, c) = (both.dims()[0], both.dims()[1]);
    let mut start = 0;
    let mut maps = Vec::with_capacity(out.feats.len());
    for f in &out.feats {
        let d = f.dims();
        if d.len() != 4 {
            return Err(Error::msg(format!(
                "head input of shape {} is not 4-d",
                f.shape()
            )));
        }
        let n = d[2] * d[3];
        maps.push(both.narrow(2, start, n)?.reshape([b, c, d[2], d[3]])?);
        start += n;
    }
    if start != both.dims()[2] {
        return Err(Error::msg(format!(
            "head outputs have {} anchors but the levels' grids hold {start}",
            both.dims()[2]
        )));
    }
    Ok(maps)
}

/// v8SegmentationLoss for a seg model (its mask targets required), v8DetectionLoss for a
/// detect model. `total` backpropagates into every trainable weight through `out`.
pub fn compute_loss(
    model: &YoloModel,
    out: &TrainOutput,
    targets: &Targets,
    gains: &LossGains,
) -> Result<LossOutput> {
    let cfg = loss_config(model, gains);
    let maps = head_maps(out)?;
    match (&out.mask_coef, &out.proto) {
        (Some(mc), Some(proto)) => {
            if targets.masks.is_none() && !targets.is_empty() {
                return Err(Error::msg(
                    "a segmentation model needs instance masks, but the dataset has none \
                     (train a detect model on a boxes-only dataset)",
                ));
            }
            yolo::segmentation_loss(&cfg, &maps, mc, proto, targets)
        }
        _ => yolo::detection_loss(&cfg, &maps, targets),
    }
}
