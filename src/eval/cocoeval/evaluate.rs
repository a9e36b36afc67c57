//! COCOeval's `evaluate`: per (image, category) cell the IoU matrix once, then for every
//! area range the greedy matching of `evaluateImg`, giving one [`EvalImage`] per
//! (image, category, area range) as pycocotools' `evalImgs`.
use super::iou::{box_iou, mask_iou};
use super::params::{IouType, Params};
use super::prepare::{Cell, gt_box, gt_mask};
use crate::Result;

/// One (image, category, area range) result: pycocotools' `evalImgs` entry, with the same
/// fields. `T` = number of IoU thresholds, `D` = detections kept, `G` = ground truth.
#[derive(Clone, Debug, PartialEq)]
pub struct EvalImage {
    pub image_id: u64,
    pub category_id: u64,
    /// `[lo, hi]` area range (inclusive) this entry was matched under.
    pub area_rng: [f64; 2],
    /// Detections kept before matching (the largest `max_dets`).
    pub max_det: usize,
    /// Detection ids (results index + 1), highest score first (stable), at most `max_det`.
    pub dt_ids: Vec<u64>,
    /// Ground-truth annotation ids, not-ignored first (stable, as `np.argsort(kind="mergesort")`).
    pub gt_ids: Vec<u64>,
    /// `[T × D]` row-major: the id of the ground truth each detection matched at each
    /// threshold, 0 when none. As in pycocotools, a match to an annotation whose id is 0
    /// reads as no match when precision is accumulated.
    pub dt_matches: Vec<u64>,
    /// `[T × G]`: the id of the detection each ground truth matched, 0 when none.
    pub gt_matches: Vec<u64>,
    /// `[D]` scores of `dt_ids`.
    pub dt_scores: Vec<f64>,
    /// `[G]` crowd or outside the area range.
    pub gt_ignore: Vec<bool>,
    /// `[T × D]` matched to an ignored ground truth, or unmatched and outside the area range.
    pub dt_ignore: Vec<bool>,
    /// `[T × D]` IoU with the matched ground truth, 0 when unmatched (not in pycocotools;
    /// kept for per-image records).
    pub dt_match_iou: Vec<f64>,
}

/// All of one (image, category) pair: the IoU matrix and one [`EvalImage`] per area range.
#[derive(Clone, Debug, PartialEq)]
pub struct EvalCell {
    pub image_id: u64,
    pub category_id: u64,
    /// Index of `category_id` in the sorted category ids.
    pub k: usize,
    /// Detection ids in score order, at most the largest `max_dets` (the rows of `ious`).
    pub dt_ids: Vec<u64>,
    /// Ground-truth ids in file order (the columns of `ious`).
    pub gt_ids: Vec<u64>,
    /// `[D × G]` row-major IoU (pycocotools' `self.ious[imgId, catId]`).
    pub ious: Vec<f64>,
    /// One entry per `params.area_rng`, in that order.
    pub by_area: Vec<EvalImage>,
}

/// Per-detection fields the matching reads.
struct DtInfo {
    id: u64,
    score: f64,
    area: f64,
}

/// Evaluates one cell (`computeIoU` + `evaluateImg` for every area range).
pub(crate) fn eval_cell(c: &Cell<'_>, p: &Params) -> Result<EvalCell> {
    // Highest score first; `sort_by` is stable like numpy's mergesort, and scores are finite.
    let mut dts = c.dts.clone();
    dts.sort_by(|a, b| {
        b.score
            .partial_cmp(&a.score)
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    dts.truncate(p.max_det());
    let crowd: Vec<bool> = c.gts.iter().map(|a| a.is_crowd()).collect();
    let ious = if dts.is_empty() || c.gts.is_empty() {
        Vec::new()
    } else {
        match p.iou_type {
            IouType::Bbox => {
                let g = c
                    .gts
                    .iter()
                    .map(|a| gt_box(a))
                    .collect::<Result<Vec<_>>>()?;
                let d: Vec<[f64; 4]> = dts.iter().map(|d| d.bbox.unwrap_or([0.0; 4])).collect();
                box_iou(&d, &g, &crowd)
            }
            IouType::Segm => {
                let g = (c.gts.iter())
                    .map(|a| gt_mask(a, c.size))
                    .collect::<Result<Vec<_>>>()?;
                mask_iou(&dts, &g, &crowd)?
            }
        }
    };
    let info: Vec<DtInfo> = dts
        .iter()
        .map(|d| DtInfo {
            id: d.id,
            score: d.score,
            area: d.area,
        })
        .collect();
    let gt_area: Vec<f64> = c.gts.iter().map(|a| a.area.unwrap_or(f64::NAN)).collect();
    let gt_ids: Vec<u64> = c.gts.iter().map(|a| a.id).collect();
    let by_area = (p.area_rng.iter())
        .map(|&rng| {
            let mut e = evaluate_img(&info, &gt_ids, &gt_area, &crowd, &ious, rng, p);
            e.image_id = c.image_id;
            e.category_id = c.category_id;
            e
        })
        .collect();
    Ok(EvalCell {
        image_id: c.image_id,
        category_id: c.category_id,
        k: c.k,
        dt_ids: info.iter().map(|d| d.id).collect(),
        gt_ids,
        ious,
        by_area,
    })
}

/// `evaluateImg` for one area range. `ious` is `[D × G]` with G in file order (empty when
/// either side is empty).
fn evaluate_img(
    dts: &[DtInfo],
    gt_ids: &[u64],
    gt_area: &[f64],
    crowd: &[bool],
    ious: &[f64],
    [lo, hi]: [f64; 2],
    p: &Params,
) -> EvalImage {
    let (t_n, d_n, g_n) = (p.iou_thrs.len(), dts.len(), gt_ids.len());
    let ignore: Vec<bool> = (0..g_n)
        .map(|g| crowd[g] || gt_area[g] < lo || gt_area[g] > hi)
        .collect();
    // Not-ignored first, stable.
    let mut order: Vec<usize> = (0..g_n).collect();
    order.sort_by_key(|&g| ignore[g]);
    let gt_ig: Vec<bool> = order.iter().map(|&g| ignore[g]).collect();
    let gt_crowd: Vec<bool> = order.iter().map(|&g| crowd[g]).collect();
    let sorted_ids: Vec<u64> = order.iter().map(|&g| gt_ids[g]).collect();

    let mut gtm = vec![0u64; t_n * g_n];
    let mut dtm = vec![0u64; t_n * d_n];
    let mut dt_ig = vec![false; t_n * d_n];
    let mut miou = vec![0.0f64; t_n * d_n];
    if !ious.is_empty() {
        for (t, &thr) in p.iou_thrs.iter().enumerate() {
            let gtm_t = &mut gtm[t * g_n..(t + 1) * g_n];
            for (d, dt) in dts.iter().enumerate() {
                let row = &ious[d * g_n..(d + 1) * g_n];
                let mut best = thr.min(1.0 - 1e-10);
                let mut m: Option<usize> = None;
                for g in 0..g_n {
                    // Already matched and not a crowd: taken.
                    if gtm_t[g] > 0 && !gt_crowd[g] {
                        continue;
                    }
                    // Matched a regular gt and reached the ignored ones: stop.
                    if m.is_some_and(|m| !gt_ig[m]) && gt_ig[g] {
                        break;
                    }
                    let v = row[order[g]];
                    if v < best {
                        continue;
                    }
                    best = v;
                    m = Some(g);
                }
                if let Some(m) = m {
                    let at = t * d_n + d;
                    dt_ig[at] = gt_ig[m];
                    dtm[at] = sorted_ids[m];
                    miou[at] = best;
                    gtm_t[m] = dt.id;
                }
            }
        }
    }
    // Unmatched detections outside the area range are ignored.
    for t in 0..t_n {
        for (d, dt) in dts.iter().enumerate() {
            let at = t * d_n + d;
            if dtm[at] == 0 && (dt.area < lo || dt.area > hi) {
                dt_ig[at] = true;
            }
        }
    }
    EvalImage {
        image_id: 0,
        category_id: 0,
        area_rng: [lo, hi],
        max_det: p.max_det(),
        dt_ids: dts.iter().map(|d| d.id).collect(),
        gt_ids: sorted_ids,
        dt_matches: dtm,
        gt_matches: gtm,
        dt_scores: dts.iter().map(|d| d.score).collect(),
        gt_ignore: gt_ig,
        dt_ignore: dt_ig,
        dt_match_iou: miou,
    }
}
