//! ultralytics 8.4 `utils/nms.py::non_max_suppression` (single label per box, not rotated,
//! not end-to-end) with `TorchNMS.nms`, the path it takes when torchvision is not imported
//! (ultralytics' predictor does not import it). All arithmetic is f32 as in torch:
//! - candidates: `max(class scores) > conf` (f32 compare; a NaN score is no candidate);
//!   label = the first class with the maximum; xywh → xyxy as `c ∓ wh / 2`;
//! - optional class filter, then if more than `max_nms` remain, the `max_nms` best by
//!   torch's `argsort(descending=True)` ([`torch_argsort_desc`]);
//! - class-aware NMS by offsetting boxes by `label · max_wh` (0 when agnostic), then
//!   greedy suppression in score order: a box survives the kept box when
//!   `iou ≤ iou_thres`, `iou = inter / (area_i + area_j − inter)` on the offset boxes;
//! - the first `max_det` kept, in that order (score descending, ties as torch sorts them).
//!
//! Not reproduced: the time limit (ultralytics gives up after 2 s + 0.05 s per image; we
//! always finish) and `multi_label`.
use super::sort::torch_argsort_desc;
use crate::{Error, Result, Tensor};

/// NMS settings (ultralytics predictor defaults: conf 0.25, iou 0.7, max_det 300).
#[derive(Clone, Debug, PartialEq)]
pub struct NmsConfig {
    /// Minimum class score, exclusive (`conf_thres`).
    pub conf: f32,
    /// A box is suppressed by a better one when their IoU exceeds this (`iou_thres`).
    pub iou: f32,
    /// Detections kept per image.
    pub max_det: usize,
    /// One NMS over all classes instead of one per class.
    pub agnostic: bool,
    /// Keep only these class ids (`classes`); `None` keeps all.
    pub classes: Option<Vec<usize>>,
    /// Candidates entering NMS at most (the best by score).
    pub max_nms: usize,
    /// Per-class box offset separating classes in class-aware NMS (pixels).
    pub max_wh: f32,
}

impl NmsConfig {
    /// ultralytics' validator settings (conf 0.001, iou 0.7, max_det 300): training
    /// validation and every COCOeval of a model or engine use them.
    pub fn validation() -> Self {
        NmsConfig {
            conf: 0.001,
            ..NmsConfig::default()
        }
    }
}

impl Default for NmsConfig {
    fn default() -> Self {
        NmsConfig {
            conf: 0.25,
            iou: 0.7,
            max_det: 300,
            agnostic: false,
            classes: None,
            max_nms: 30000,
            max_wh: 7680.0,
        }
    }
}

/// Detections of one image, best first. Row `k` of every field is detection `k`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Detections {
    /// `[x0, y0, x1, y1]` in model-input pixels, not clipped.
    pub boxes: Vec<[f32; 4]>,
    pub scores: Vec<f32>,
    pub classes: Vec<usize>,
    /// Mask coefficients (`nm` each); empty vectors for a detect model (nm = 0).
    pub coefs: Vec<Vec<f32>>,
    /// The anchor (column of `pred`) each detection came from (`return_idxs`).
    pub anchors: Vec<usize>,
}

impl Detections {
    pub fn len(&self) -> usize {
        self.scores.len()
    }
    pub fn is_empty(&self) -> bool {
        self.scores.is_empty()
    }
}

/// The head's decoded output `pred` `[B, 4 + nc + nm, A]` (xywh in input pixels, class
/// scores after sigmoid, then mask coefficients) → per-image detections. Any float dtype;
/// computed in f32. Errors (never panics) on a wrong rank or a channel count below `4 + nc`.
pub fn non_max_suppression(pred: &Tensor, nc: usize, cfg: &NmsConfig) -> Result<Vec<Detections>> {
    let &[b, ch, a] = pred.dims() else {
        return Err(Error::msg(format!(
            "non_max_suppression: pred must be [B, 4 + nc + nm, A], got {}",
            pred.shape()
        )));
    };
    if nc == 0 || ch < 4 + nc {
        return Err(Error::msg(format!(
            "non_max_suppression: pred has {ch} channels, fewer than 4 + nc = {} (or nc = 0)",
            4 + nc
        )));
    }
    let v = pred.contiguous()?.to_vec_f32()?;
    Ok((0..b)
        .map(|i| nms_one(&v[i * ch * a..(i + 1) * ch * a], ch, a, nc, cfg))
        .collect())
}

/// One image: `p` is `[ch, a]` row-major.
fn nms_one(p: &[f32], ch: usize, a: usize, nc: usize, cfg: &NmsConfig) -> Detections {
    let nm = ch - 4 - nc;
    // (anchor, score, label) of every candidate, in anchor order.
    let mut cand: Vec<(usize, f32, usize)> = Vec::new();
    for k in 0..a {
        let (mut best, mut label, mut nan) = (f32::NEG_INFINITY, 0, false);
        for c in 0..nc {
            let s = p[(4 + c) * a + k];
            nan |= s.is_nan();
            if s > best {
                (best, label) = (s, c);
            }
        }
        // Not `best <= conf`: a NaN threshold must reject everything, as torch's `>` does.
        if nan || best.partial_cmp(&cfg.conf) != Some(std::cmp::Ordering::Greater) {
            continue;
        }
        if cfg.classes.as_ref().is_some_and(|cl| !cl.contains(&label)) {
            continue;
        }
        cand.push((k, best, label));
    }
    if cand.len() > cfg.max_nms {
        let scores: Vec<f32> = cand.iter().map(|c| c.1).collect();
        let order = torch_argsort_desc(&scores);
        cand = order[..cfg.max_nms].iter().map(|&i| cand[i]).collect();
    }
    let xyxy = |k: usize| {
        let (cx, cy) = (p[k], p[a + k]);
        let (hw, hh) = (p[2 * a + k] / 2.0, p[3 * a + k] / 2.0);
        [cx - hw, cy - hh, cx + hw, cy + hh]
    };
    let boxes: Vec<[f32; 4]> = cand.iter().map(|c| xyxy(c.0)).collect();
    let offset: Vec<[f32; 4]> = boxes
        .iter()
        .zip(&cand)
        .map(|(b, c)| {
            let o = c.2 as f32 * if cfg.agnostic { 0.0 } else { cfg.max_wh };
            b.map(|v| v + o)
        })
        .collect();
    let scores: Vec<f32> = cand.iter().map(|c| c.1).collect();
    let keep = torch_nms(&offset, &scores, cfg.iou, cfg.max_det);
    let mut d = Detections::default();
    for i in keep {
        let k = cand[i].0;
        d.boxes.push(boxes[i]);
        d.scores.push(cand[i].1);
        d.classes.push(cand[i].2);
        d.coefs
            .push((0..nm).map(|m| p[(4 + nc + m) * a + k]).collect());
        d.anchors.push(k);
    }
    d
}

/// torch's `maximum`/`minimum` propagate NaN; Rust's `max`/`min` do not.
fn tmax(x: f32, y: f32) -> f32 {
    if x.is_nan() || y.is_nan() {
        f32::NAN
    } else {
        x.max(y)
    }
}
fn tmin(x: f32, y: f32) -> f32 {
    if x.is_nan() || y.is_nan() {
        f32::NAN
    } else {
        x.min(y)
    }
}

/// ultralytics `TorchNMS.nms` (greedy, score order from torch's argsort), stopping once
/// `max_det` boxes are kept (later ones would be cut anyway): indices into `boxes`.
pub fn torch_nms(boxes: &[[f32; 4]], scores: &[f32], iou: f32, max_det: usize) -> Vec<usize> {
    let area: Vec<f32> = boxes
        .iter()
        .map(|b| (b[2] - b[0]) * (b[3] - b[1]))
        .collect();
    let mut order = torch_argsort_desc(scores);
    let mut keep = Vec::new();
    let mut inter = Vec::with_capacity(order.len());
    let mut start = 0;
    while start < order.len() && keep.len() < max_det {
        let i = order[start];
        keep.push(i);
        let rest = &order[start + 1..];
        let bi = boxes[i];
        inter.clear();
        inter.extend(rest.iter().map(|&j| {
            let bj = boxes[j];
            let w = tmin(bi[2], bj[2]) - tmax(bi[0], bj[0]);
            let h = tmin(bi[3], bj[3]) - tmax(bi[1], bj[1]);
            // clamp_(min=0) keeps NaN.
            (if w < 0.0 { 0.0 } else { w }) * (if h < 0.0 { 0.0 } else { h })
        }));
        start += 1;
        // The reference keeps everything when no box intersects (its early exit), even
        // where 0 / 0 would have been NaN; the f32 sum of non-negatives is 0 only then.
        if inter.iter().sum::<f32>() == 0.0 {
            continue;
        }
        let mut w = start;
        for (r, &it) in inter.iter().enumerate() {
            let j = order[start + r];
            let o = it / (area[i] + area[j] - it);
            if o <= iou {
                order[w] = j;
                w += 1;
            }
        }
        order.truncate(w);
    }
    keep
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_order_and_class_offset() {
        let b = [
            [0.0, 0.0, 10.0, 10.0],
            [1.0, 1.0, 11.0, 11.0],
            [20.0, 0.0, 30.0, 10.0],
        ];
        assert_eq!(torch_nms(&b, &[0.8, 0.9, 0.5], 0.5, 300), vec![1, 2]);
        assert_eq!(torch_nms(&b, &[0.8, 0.9, 0.5], 0.9, 300), vec![1, 0, 2]);
        assert_eq!(torch_nms(&b, &[0.8, 0.9, 0.5], 0.9, 2), vec![1, 0]);
        // [B=1, 4 + 2 classes, 3 anchors]: anchors 0 and 1 overlap; 1 has class 1.
        let pred = vec![
            5.0, 5.5, 25.0, // cx
            5.0, 5.5, 5.0, // cy
            10.0, 10.0, 10.0, // w
            10.0, 10.0, 10.0, // h
            0.9, 0.1, 0.3, // class 0
            0.1, 0.8, 0.2, // class 1
        ];
        let t = Tensor::from_vec(pred, [1, 6, 3]).unwrap();
        let d = &non_max_suppression(&t, 2, &NmsConfig::default()).unwrap()[0];
        assert_eq!(
            (d.anchors.clone(), d.classes.clone()),
            (vec![0, 1, 2], vec![0, 1, 0])
        );
        assert_eq!(d.boxes[0], [0.0, 0.0, 10.0, 10.0]);
        let ag = NmsConfig {
            agnostic: true,
            ..NmsConfig::default()
        };
        let d = &non_max_suppression(&t, 2, &ag).unwrap()[0];
        assert_eq!(d.anchors, vec![0, 2]);
        let only1 = NmsConfig {
            classes: Some(vec![1]),
            ..NmsConfig::default()
        };
        assert_eq!(
            non_max_suppression(&t, 2, &only1).unwrap()[0].anchors,
            vec![1]
        );
        assert!(non_max_suppression(&t, 3, &ag).is_err());
        assert!(non_max_suppression(&t.reshape([6, 3]).unwrap(), 2, &ag).is_err());
    }
}
