//! ultralytics 8.4.190 `ap_per_class` / `compute_ap` and the means of its `Metric` class:
//! per-class AP at the ten IoU thresholds (101-point interpolation integrated with the
//! trapezoid rule), precision/recall/F1-confidence curves on a 1000-point grid, and
//! P, R, F1 at the confidence where the smoothed class-mean F1 is largest.
//!
//! One deliberate difference: ultralytics orders detections with `np.argsort(-conf)`, which
//! is not stable, so detections of one class with equal confidence are taken in an order
//! that depends on numpy's SIMD sort (and can move AP by a few 1e-3). Here the sort is
//! stable: equal confidences keep their input order (image order, then each image's
//! descending-confidence order).
use super::numpy::{argmax, interp, linspace, mean, pairwise_sum, smooth, trapezoid};
use crate::{Error, Result};
use rayon::prelude::*;
use serde::Serialize;

/// Number of IoU thresholds (0.50:0.05:0.95).
pub const N_IOU: usize = 10;
/// Points of the confidence (and recall) grid of the curves.
pub const N_CURVE: usize = 1000;
const EPS: f64 = 1e-16;

/// Curves for plots, one row per class of [`DetectionMetrics::classes`]. All share the
/// x grid `px` (`np.linspace(0, 1, 1000)`): confidence for `precision`, `recall`, `f1`;
/// recall for `pr`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Curves {
    pub px: Vec<f64>,
    /// Precision-confidence per class (1 above the class's highest confidence).
    pub precision: Vec<Vec<f64>>,
    /// Recall-confidence per class.
    pub recall: Vec<Vec<f64>>,
    /// F1-confidence per class.
    pub f1: Vec<Vec<f64>>,
    /// Precision at recall `px` (the AP@0.5 envelope) per class: the PR curve. (With no
    /// class scored ultralytics returns one row of zeros here; this is empty like the rest.)
    pub pr: Vec<Vec<f64>>,
    /// Class-mean F1 curve smoothed by ultralytics' box filter (`smooth(f1.mean(0), 0.1)`);
    /// empty when no class has ground truth.
    pub f1_mean_smooth: Vec<f64>,
    /// Index into `px` of the first maximum of `f1_mean_smooth` (0 when it is empty).
    pub best: usize,
}

/// What ultralytics reports for one task (boxes or masks): `ap_per_class` plus `Metric`.
/// Per-class vectors follow `classes`: the classes with at least one ground-truth object,
/// ascending (classes that only have predictions are not scored, as in ultralytics).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DetectionMetrics {
    pub classes: Vec<usize>,
    /// Precision at the max-F1 confidence.
    pub p: Vec<f64>,
    /// Recall at the max-F1 confidence.
    pub r: Vec<f64>,
    pub f1: Vec<f64>,
    /// `round(r · n_gt)` and `round(tp / p − tp)`: true and false positives at that confidence.
    pub tp: Vec<f64>,
    pub fp: Vec<f64>,
    /// AP per class at IoU 0.50, 0.55, …, 0.95.
    pub ap: Vec<[f64; N_IOU]>,
    /// `ap[c][0]`.
    pub ap50: Vec<f64>,
    /// Mean of `ap[c]` (AP50-95).
    pub ap50_95: Vec<f64>,
    /// Class means (0 when no class has ground truth).
    pub mp: f64,
    pub mr: f64,
    pub map50: f64,
    pub map75: f64,
    /// mAP50-95.
    pub map: f64,
    /// ultralytics' fitness, `[0, 0, 0, 1] · [mp, mr, map50, map]` (= `map`).
    pub fitness: f64,
    /// AP50-95 for every class `0..nc`; classes without ground truth get `map`.
    pub maps: Vec<f64>,
    /// The confidence `px[best]` at which `p`, `r`, `f1` are taken.
    pub best_conf: f64,
    pub curves: Curves,
}

/// `compute_ap(recall, precision)`: the envelope `mpre` (running max from the right) over
/// `mrec = [0, recall…, recall[last] (or 1 if empty), 1]`, `mpre = [1, precision…, 0, 0]`,
/// sampled at 101 recall points and integrated with the trapezoid rule. Returns
/// `(ap, mpre, mrec)`.
pub fn compute_ap(recall: &[f64], precision: &[f64]) -> (f64, Vec<f64>, Vec<f64>) {
    let mut mrec = Vec::with_capacity(recall.len() + 3);
    mrec.push(0.0);
    mrec.extend_from_slice(recall);
    mrec.push(recall.last().copied().unwrap_or(1.0));
    mrec.push(1.0);
    let mut mpre = Vec::with_capacity(precision.len() + 3);
    mpre.push(1.0);
    mpre.extend_from_slice(precision);
    mpre.extend([0.0, 0.0]);
    for i in (0..mpre.len() - 1).rev() {
        mpre[i] = mpre[i].max(mpre[i + 1]);
    }
    let x = linspace(0.0, 1.0, 101);
    let ap = trapezoid(&interp(&x, &mrec, &mpre, None, None), &x);
    (ap, mpre, mrec)
}

/// One class's rows: AP per threshold and the four curves.
struct ClassRows {
    ap: [f64; N_IOU],
    p: Vec<f64>,
    r: Vec<f64>,
    pr: Vec<f64>,
}

fn class_rows(
    tp: &[[bool; N_IOU]],
    conf: &[f64],
    members: &[usize],
    n_l: u64,
    px: &[f64],
) -> ClassRows {
    if members.is_empty() || n_l == 0 {
        let z = vec![0.0; px.len()];
        return ClassRows {
            ap: [0.0; N_IOU],
            p: z.clone(),
            r: z.clone(),
            pr: z,
        };
    }
    let n = members.len();
    let n_l_eps = n_l as f64 + EPS;
    // recall[t][k], precision[t][k] after the first k+1 detections of the class
    let mut recall = vec![vec![0.0; n]; N_IOU];
    let mut precision = vec![vec![0.0; n]; N_IOU];
    let mut tpc = [0u64; N_IOU];
    for (k, &d) in members.iter().enumerate() {
        for t in 0..N_IOU {
            tpc[t] += u64::from(tp[d][t]);
            recall[t][k] = tpc[t] as f64 / n_l_eps;
            precision[t][k] = tpc[t] as f64 / (k + 1) as f64;
        }
    }
    let neg_px: Vec<f64> = px.iter().map(|v| -v).collect();
    let neg_conf: Vec<f64> = members.iter().map(|&d| -conf[d]).collect();
    let r = interp(&neg_px, &neg_conf, &recall[0], Some(0.0), None);
    let p = interp(&neg_px, &neg_conf, &precision[0], Some(1.0), None);
    let mut ap = [0.0; N_IOU];
    let mut pr = Vec::new();
    for t in 0..N_IOU {
        let (a, mpre, mrec) = compute_ap(&recall[t], &precision[t]);
        ap[t] = a;
        if t == 0 {
            pr = interp(px, &mrec, &mpre, None, None);
        }
    }
    ClassRows { ap, p, r, pr }
}

/// ultralytics `ap_per_class(tp, conf, pred_cls, target_cls)` followed by its `Metric`
/// means. `tp[d][t]`: detection `d` is a true positive at IoU threshold `t`; `conf[d]`,
/// `pred_cls[d]` its confidence and class; `target_cls` the class of every ground-truth
/// object; `nc` the number of classes (for `maps`). Detections are taken in descending
/// confidence, ties in input order (module docs). Errors on mismatched lengths, a class
/// `>= nc`, or a non-finite confidence.
pub fn ap_per_class(
    tp: &[[bool; N_IOU]],
    conf: &[f64],
    pred_cls: &[usize],
    target_cls: &[usize],
    nc: usize,
) -> Result<DetectionMetrics> {
    let shape = |msg: String| Error::Shape {
        op: "ap_per_class",
        msg,
    };
    if tp.len() != conf.len() || conf.len() != pred_cls.len() {
        return Err(shape(format!(
            "{} tp rows, {} confidences and {} classes must be one per detection",
            tp.len(),
            conf.len(),
            pred_cls.len()
        )));
    }
    if let Some(c) = pred_cls.iter().chain(target_cls).find(|&&c| c >= nc) {
        return Err(shape(format!("class {c} is not below nc = {nc}")));
    }
    if let Some(i) = conf.iter().position(|c| !c.is_finite()) {
        return Err(shape(format!("detection {i} has confidence {}", conf[i])));
    }
    let mut order: Vec<usize> = (0..conf.len()).collect();
    // Stable, descending; finite values only, so partial_cmp never fails.
    order.sort_by(|&a, &b| {
        conf[b]
            .partial_cmp(&conf[a])
            .unwrap_or(std::cmp::Ordering::Equal)
    });

    let mut nt = vec![0u64; nc];
    for &c in target_cls {
        nt[c] += 1;
    }
    let classes: Vec<usize> = (0..nc).filter(|&c| nt[c] > 0).collect();
    let mut members = vec![Vec::new(); nc];
    for &d in &order {
        members[pred_cls[d]].push(d);
    }
    let px = linspace(0.0, 1.0, N_CURVE);
    let rows: Vec<ClassRows> = classes
        .par_iter()
        .map(|&c| class_rows(tp, conf, &members[c], nt[c], &px))
        .collect();

    let f1_rows: Vec<Vec<f64>> = rows
        .iter()
        .map(|row| {
            row.p
                .iter()
                .zip(&row.r)
                .map(|(&p, &r)| 2.0 * p * r / (p + r + EPS))
                .collect()
        })
        .collect();
    // f1_curve.mean(0): a reduction across rows, summed row after row.
    let (f1_mean_smooth, best) = if rows.is_empty() {
        (Vec::new(), 0)
    } else {
        let mut sum = vec![0.0; N_CURVE];
        for row in &f1_rows {
            for (s, v) in sum.iter_mut().zip(row) {
                *s += v;
            }
        }
        let m: Vec<f64> = sum.iter().map(|s| s / rows.len() as f64).collect();
        let sm = smooth(&m, 0.1);
        let best = argmax(&sm);
        (sm, best)
    };
    let pick = |curves: &[Vec<f64>]| -> Vec<f64> { curves.iter().map(|c| c[best]).collect() };
    let p_rows: Vec<Vec<f64>> = rows.iter().map(|r| r.p.clone()).collect();
    let r_rows: Vec<Vec<f64>> = rows.iter().map(|r| r.r.clone()).collect();
    let (p, r, f1) = (pick(&p_rows), pick(&r_rows), pick(&f1_rows));
    let tp_n: Vec<f64> = r
        .iter()
        .zip(&classes)
        .map(|(r, &c)| (r * nt[c] as f64).round_ties_even())
        .collect();
    let fp_n: Vec<f64> = tp_n
        .iter()
        .zip(&p)
        .map(|(t, p)| (t / (p + EPS) - t).round_ties_even())
        .collect();
    let ap: Vec<[f64; N_IOU]> = rows.iter().map(|r| r.ap).collect();
    let ap50: Vec<f64> = ap.iter().map(|a| a[0]).collect();
    let ap75: Vec<f64> = ap.iter().map(|a| a[5]).collect();
    let ap50_95: Vec<f64> = ap.iter().map(|a| pairwise_sum(a) / N_IOU as f64).collect();
    let flat: Vec<f64> = ap.iter().flatten().copied().collect();
    let map = mean(&flat).unwrap_or(0.0);
    let mut maps = vec![map; nc];
    for (&c, &v) in classes.iter().zip(&ap50_95) {
        maps[c] = v;
    }
    Ok(DetectionMetrics {
        mp: mean(&p).unwrap_or(0.0),
        mr: mean(&r).unwrap_or(0.0),
        map50: mean(&ap50).unwrap_or(0.0),
        map75: mean(&ap75).unwrap_or(0.0),
        map,
        fitness: if map.is_finite() { map } else { 0.0 },
        maps,
        best_conf: px[best],
        classes,
        p,
        r,
        f1,
        tp: tp_n,
        fp: fp_n,
        ap,
        ap50,
        ap50_95,
        curves: Curves {
            px,
            precision: p_rows,
            recall: r_rows,
            f1: f1_rows,
            pr: rows.into_iter().map(|r| r.pr).collect(),
            f1_mean_smooth,
            best,
        },
    })
}
