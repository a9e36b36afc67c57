//! COCOeval's `accumulate`: for every (category, area range, detection limit) the
//! detections of all images ranked by score, cumulative true/false positives per IoU
//! threshold, precision made monotone and read at the recall points
//! (`np.searchsorted(side="left")`), with pycocotools' arithmetic step by step.
use super::evaluate::EvalCell;
use super::params::Params;
use rayon::prelude::*;

/// `np.spacing(1)`, added to the precision's denominator.
const EPS: f64 = f64::EPSILON;

/// pycocotools' `eval` arrays, row-major, −1 where a setting has no ground truth to count.
#[derive(Clone, Debug, PartialEq)]
pub struct Accumulated {
    /// `[T, R, K, A, M]`: thresholds, recall points, categories, area ranges, limits.
    pub dims: [usize; 5],
    /// `[T, R, K, A, M]` interpolated precision.
    pub precision: Vec<f64>,
    /// `[T, K, A, M]` final recall.
    pub recall: Vec<f64>,
    /// `[T, R, K, A, M]` score of the detection where each recall point is reached.
    pub scores: Vec<f64>,
}

impl Accumulated {
    /// `precision[t, r, k, a, m]`.
    pub fn precision_at(&self, t: usize, r: usize, k: usize, a: usize, m: usize) -> f64 {
        let [_, rn, kn, an, mn] = self.dims;
        self.precision[(((t * rn + r) * kn + k) * an + a) * mn + m]
    }

    /// `recall[t, k, a, m]`.
    pub fn recall_at(&self, t: usize, k: usize, a: usize, m: usize) -> f64 {
        let [_, _, kn, an, mn] = self.dims;
        self.recall[((t * kn + k) * an + a) * mn + m]
    }
}

/// One (k, a, m) slice: `[T × R]` precision and scores, `[T]` recall.
struct Slice {
    precision: Vec<f64>,
    scores: Vec<f64>,
    recall: Vec<f64>,
}

/// Accumulates `cells` (sorted by category, then image) over `k_n` categories.
pub(crate) fn accumulate(cells: &[EvalCell], k_n: usize, p: &Params) -> Accumulated {
    let (t_n, r_n, a_n, m_n) = (
        p.iou_thrs.len(),
        p.rec_thrs.len(),
        p.area_rng.len(),
        p.max_dets.len(),
    );
    // The cells of category k are one run of the sorted list.
    let mut runs = vec![0..0; k_n];
    let mut s = 0;
    while s < cells.len() {
        let k = cells[s].k;
        let e = s + cells[s..].iter().take_while(|c| c.k == k).count();
        runs[k] = s..e;
        s = e;
    }
    // The ranking of a category's detections is the same for every area range and limit
    // (a limit keeps a subsequence, and a stable sort keeps a subsequence's order).
    let ranked: Vec<Vec<Ranked>> = (0..k_n)
        .into_par_iter()
        .map(|k| rank(&cells[runs[k].clone()]))
        .collect();
    let units: Vec<(usize, usize)> = (0..k_n)
        .flat_map(|k| (0..a_n).map(move |a| (k, a)))
        .collect();
    let slices: Vec<Vec<Option<Slice>>> = units
        .par_iter()
        .map(|&(k, a)| accumulate_ka(&cells[runs[k].clone()], &ranked[k], a, p))
        .collect();
    let dims = [t_n, r_n, k_n, a_n, m_n];
    let mut out = Accumulated {
        dims,
        precision: vec![-1.0; t_n * r_n * k_n * a_n * m_n],
        recall: vec![-1.0; t_n * k_n * a_n * m_n],
        scores: vec![-1.0; t_n * r_n * k_n * a_n * m_n],
    };
    for (&(k, a), per_m) in units.iter().zip(slices) {
        for (m, sl) in per_m.into_iter().enumerate() {
            let Some(sl) = sl else { continue };
            for t in 0..t_n {
                out.recall[((t * k_n + k) * a_n + a) * m_n + m] = sl.recall[t];
                for r in 0..r_n {
                    let at = (((t * r_n + r) * k_n + k) * a_n + a) * m_n + m;
                    out.precision[at] = sl.precision[t * r_n + r];
                    out.scores[at] = sl.scores[t * r_n + r];
                }
            }
        }
    }
    out
}

/// A detection in a category's ranking: score, cell (within the category), position in
/// the cell's score-ordered list.
#[derive(Clone, Copy)]
struct Ranked {
    score: f64,
    cell: u32,
    d: u32,
}

/// Every image's detections concatenated in image order, then ranked highest score first,
/// stable: `np.argsort(-scores, kind="mergesort")`.
fn rank(cells: &[EvalCell]) -> Vec<Ranked> {
    let mut v: Vec<Ranked> = Vec::new();
    for (ci, c) in cells.iter().enumerate() {
        // Area range 0 carries the same detections and scores as every other one.
        if let Some(e) = c.by_area.first() {
            v.extend(e.dt_scores.iter().enumerate().map(|(d, &score)| Ranked {
                score,
                cell: ci as u32,
                d: d as u32,
            }));
        }
    }
    v.sort_by(|x, y| {
        y.score
            .partial_cmp(&x.score)
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    v
}

/// What a ranked detection counts as at one threshold.
const IGNORED: u8 = 0;
const TP: u8 = 1;
const FP: u8 = 2;

/// One (category, area range), every limit: `None` where pycocotools leaves −1 (no image
/// has this category, or all its ground truth is ignored).
fn accumulate_ka(
    cells: &[EvalCell],
    ranked: &[Ranked],
    a: usize,
    p: &Params,
) -> Vec<Option<Slice>> {
    let m_n = p.max_dets.len();
    let npig: usize = (cells.iter())
        .map(|c| c.by_area[a].gt_ignore.iter().filter(|&&g| !g).count())
        .sum();
    if cells.is_empty() || npig == 0 {
        return (0..m_n).map(|_| None).collect();
    }
    let (t_n, r_n, n) = (p.iou_thrs.len(), p.rec_thrs.len(), ranked.len());
    // [T × n] outcome of each ranked detection, threshold-major for the cumulative sums.
    let mut kind = vec![IGNORED; t_n * n];
    for (i, r) in ranked.iter().enumerate() {
        let e = &cells[r.cell as usize].by_area[a];
        let dn = e.dt_ids.len();
        for t in 0..t_n {
            let at = t * dn + r.d as usize;
            kind[t * n + i] = match (e.dt_ignore[at], e.dt_matches[at] != 0) {
                (true, _) => IGNORED,
                (false, true) => TP,
                (false, false) => FP,
            };
        }
    }
    let (mut rc, mut pr, mut keep) = (Vec::new(), Vec::new(), Vec::new());
    (p.max_dets.iter())
        .map(|&max_det| {
            // This limit's detections, still in rank order.
            keep.clear();
            keep.extend((0..n).filter(|&i| (ranked[i].d as usize) < max_det));
            let nd = keep.len();
            let mut sl = Slice {
                precision: vec![0.0; t_n * r_n],
                scores: vec![0.0; t_n * r_n],
                recall: vec![0.0; t_n],
            };
            for t in 0..t_n {
                let kt = &kind[t * n..(t + 1) * n];
                rc.clear();
                pr.clear();
                let (mut tp, mut fp) = (0u64, 0u64);
                for &i in &keep {
                    match kt[i] {
                        TP => tp += 1,
                        FP => fp += 1,
                        _ => {}
                    }
                    let (tpf, fpf) = (tp as f64, fp as f64);
                    rc.push(tpf / npig as f64);
                    pr.push(tpf / (fpf + tpf + EPS));
                }
                sl.recall[t] = rc.last().copied().unwrap_or(0.0);
                for i in (1..nd).rev() {
                    if pr[i] > pr[i - 1] {
                        pr[i - 1] = pr[i];
                    }
                }
                for (r, &thr) in p.rec_thrs.iter().enumerate() {
                    let pi = rc.partition_point(|&x| x < thr);
                    if pi >= nd {
                        break; // pycocotools' IndexError: this and later points stay 0
                    }
                    sl.precision[t * r_n + r] = pr[pi];
                    sl.scores[t * r_n + r] = ranked[keep[pi]].score;
                }
            }
            Some(sl)
        })
        .collect()
}
