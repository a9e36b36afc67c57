//! ultralytics' detection `ConfusionMatrix` (8.4.190): `(nc + 1) × (nc + 1)` counts indexed
//! `[predicted][true]`, the last row and column being background. Per image:
//! - predictions with confidence `<= conf` are dropped (compared in f32, as torch does);
//! - with no ground truth every kept prediction is a background FP (`[pred][nc]`); with no
//!   predictions at all every object is a missed FN (`[nc][true]`);
//! - otherwise, **class-agnostic** greedy matching on ultralytics' f32 box IoU: predictions
//!   with some IoU `> iou` are visited in descending confidence (stable), each takes the
//!   object with the highest remaining IoU (lowest index on ties) if that IoU `> iou`, and
//!   the object is then removed. A matched pair counts at `[pred class][true class]` (the
//!   diagonal when the classes agree), an unmatched object at `[nc][true]`, an unmatched
//!   kept prediction at `[pred][nc]`.
use super::box_iou::box_iou_ultralytics;
use serde::Serialize;

/// Confidence and IoU thresholds of [`ConfusionMatrix::process_image`]. The defaults are
/// `ConfusionMatrix.process_batch`'s (0.25, 0.45); ultralytics' validator passes its
/// `conf` argument instead (0.001 by default).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct ConfusionOptions {
    pub conf: f64,
    pub iou: f64,
}

impl Default for ConfusionOptions {
    fn default() -> Self {
        ConfusionOptions {
            conf: 0.25,
            iou: 0.45,
        }
    }
}

/// Counts `[predicted][true]` over `0..nc` plus background at index `nc`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ConfusionMatrix {
    pub nc: usize,
    /// Row-major `(nc + 1) × (nc + 1)`.
    pub matrix: Vec<u64>,
}

impl ConfusionMatrix {
    /// An all-zero matrix for `nc` classes.
    pub fn new(nc: usize) -> Self {
        ConfusionMatrix {
            nc,
            matrix: vec![0; (nc + 1) * (nc + 1)],
        }
    }

    /// Count at `[pred][truth]` (`nc` = background). Panics outside `0..=nc`.
    pub fn get(&self, pred: usize, truth: usize) -> u64 {
        self.matrix[pred * (self.nc + 1) + truth]
    }

    fn bump(&mut self, pred: usize, truth: usize) {
        self.matrix[pred * (self.nc + 1) + truth] += 1;
    }

    /// Adds another matrix of the same size (per-image matrices summed in image order).
    /// Panics when the class counts differ.
    pub fn add(&mut self, other: &ConfusionMatrix) {
        assert_eq!(self.nc, other.nc, "confusion matrices of different sizes");
        for (a, b) in self.matrix.iter_mut().zip(&other.matrix) {
            *a += b;
        }
    }

    /// `tp_fp()`: the diagonal and the row sums minus it, for classes `0..nc`.
    pub fn tp_fp(&self) -> (Vec<u64>, Vec<u64>) {
        let n = self.nc + 1;
        (0..self.nc)
            .map(|c| {
                let tp = self.get(c, c);
                let row: u64 = self.matrix[c * n..(c + 1) * n].iter().sum();
                (tp, row - tp)
            })
            .unzip()
    }

    /// `process_batch` for one image (module docs). Boxes are xyxy; classes must be `< nc`
    /// (checked by the callers that take user data; panics otherwise).
    pub fn process_image(
        &mut self,
        gt_boxes: &[[f64; 4]],
        gt_cls: &[usize],
        det_boxes: &[[f64; 4]],
        det_cls: &[usize],
        det_conf: &[f64],
        opts: ConfusionOptions,
    ) {
        let nc = self.nc;
        let conf32 = opts.conf as f32;
        let kept: Vec<usize> = (0..det_cls.len())
            .filter(|&d| det_conf[d] as f32 > conf32)
            .collect();
        if gt_cls.is_empty() {
            for &d in &kept {
                self.bump(det_cls[d], nc);
            }
            return;
        }
        if det_cls.is_empty() {
            for &g in gt_cls {
                self.bump(nc, g);
            }
            return;
        }
        let kb: Vec<[f64; 4]> = kept.iter().map(|&d| det_boxes[d]).collect();
        // [gt, kept] as ultralytics holds it
        let mut iou = box_iou_ultralytics(gt_boxes, &kb);
        let k = kept.len();
        let thr = opts.iou as f32;
        let mut cand: Vec<usize> = (0..k)
            .filter(|&j| (0..gt_cls.len()).any(|g| iou[g * k + j] > thr))
            .collect();
        cand.sort_by(|&a, &b| {
            let (ca, cb) = (det_conf[kept[a]] as f32, det_conf[kept[b]] as f32);
            cb.partial_cmp(&ca).unwrap_or(std::cmp::Ordering::Equal)
        });
        let mut gt_match: Vec<Option<usize>> = vec![None; gt_cls.len()];
        for j in cand {
            let (mut g, mut best) = (0, f32::NEG_INFINITY);
            for gi in 0..gt_cls.len() {
                if iou[gi * k + j] > best {
                    (g, best) = (gi, iou[gi * k + j]);
                }
            }
            if best > thr {
                gt_match[g] = Some(j);
                iou[g * k..(g + 1) * k].fill(0.0);
            }
        }
        let mut det_matched = vec![false; k];
        for (g, &gc) in gt_cls.iter().enumerate() {
            match gt_match[g] {
                Some(j) => {
                    det_matched[j] = true;
                    self.bump(det_cls[kept[j]], gc);
                }
                None => self.bump(nc, gc),
            }
        }
        for (j, &d) in kept.iter().enumerate() {
            if !det_matched[j] {
                self.bump(det_cls[d], nc);
            }
        }
    }
}
