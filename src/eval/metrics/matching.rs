//! Matching predictions to ground truth as ultralytics' validator does
//! (`BaseValidator.match_predictions`, greedy, `use_scipy=False`).
//!
//! # Rule
//! Predictions are visited in the order given, which must be descending confidence. For
//! each IoU threshold `t` separately, a prediction looks at the ground-truth objects **of
//! its own class** not yet claimed at `t`, takes the one with the highest IoU (the lowest
//! index among equal IoUs), and if that IoU is `>= t` claims it and is a true positive at
//! `t`; otherwise it is a false positive at `t` and claims nothing. Objects of other classes
//! count as IoU 0. This is exactly ultralytics' loop (the `available.argmax(0)` step per
//! threshold column), including its tie-breaking.
use super::ap::N_IOU;

/// ultralytics' IoU thresholds `torch.linspace(0.5, 0.95, 10)`, float32 values widened to
/// f64, so comparing an f64 IoU against them is the comparison numpy makes.
pub const IOU_THRESHOLDS: [f64; N_IOU] = [
    0.5,
    0.550000011920929,
    0.6000000238418579,
    0.6499999761581421,
    0.699999988079071,
    0.75,
    0.800000011920929,
    0.8500000238418579,
    0.8999999761581421,
    0.949999988079071,
];

/// Greedy matching at one threshold (module docs). `iou` is row-major
/// `[pred_cls.len(), gt_cls.len()]`; predictions in descending confidence. Returns the
/// matched ground-truth index of each prediction.
pub fn greedy_match(
    pred_cls: &[usize],
    gt_cls: &[usize],
    iou: &[f64],
    threshold: f64,
) -> Vec<Option<usize>> {
    let m = gt_cls.len();
    let mut claimed = vec![false; m];
    pred_cls
        .iter()
        .enumerate()
        .map(|(p, &pc)| {
            let row = &iou[p * m..(p + 1) * m];
            // argmax over all objects, claimed and other-class ones counting as 0
            let (mut best, mut best_v) = (0, f64::NEG_INFINITY);
            for (g, (&v, &gc)) in row.iter().zip(gt_cls).enumerate() {
                let v = if claimed[g] || gc != pc { 0.0 } else { v };
                if v > best_v {
                    (best, best_v) = (g, v);
                }
            }
            (m > 0 && best_v >= threshold).then(|| {
                claimed[best] = true;
                best
            })
        })
        .collect()
}

/// `match_predictions`: true-positive flags of each prediction at the ten
/// [`IOU_THRESHOLDS`], with `iou` as in [`greedy_match`]. Panics if `iou` is not
/// `pred_cls.len() × gt_cls.len()` (an internal contract, not user data).
pub fn match_predictions(pred_cls: &[usize], gt_cls: &[usize], iou: &[f64]) -> Vec<[bool; N_IOU]> {
    assert_eq!(iou.len(), pred_cls.len() * gt_cls.len(), "iou matrix size");
    let mut tp = vec![[false; N_IOU]; pred_cls.len()];
    for (t, &thr) in IOU_THRESHOLDS.iter().enumerate() {
        for (row, m) in tp.iter_mut().zip(greedy_match(pred_cls, gt_cls, iou, thr)) {
            row[t] = m.is_some();
        }
    }
    tp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_takes_best_unclaimed_same_class() {
        // two predictions of class 0 both best on gt 0; gt 1 is class 1
        let iou = [0.9, 0.95, 0.8, 0.0];
        let m = greedy_match(&[0, 0], &[0, 1], &[iou[0], iou[1], iou[2], iou[3]], 0.5);
        assert_eq!(m, vec![Some(0), None]);
        // equal IoUs: the lower index
        let m = greedy_match(&[0], &[0, 0], &[0.7, 0.7], 0.5);
        assert_eq!(m, vec![Some(0)]);
        let tp = match_predictions(&[0], &[0], &[0.7]);
        assert_eq!(
            tp[0],
            [
                true, true, true, true, true, false, false, false, false, false
            ]
        );
    }
}
