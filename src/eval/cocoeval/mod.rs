//! COCO detection and instance-segmentation evaluation, reproducing pycocotools 2.0.11's
//! `COCOeval` (`evaluate` → `accumulate` → `summarize`) number for number:
//!
//! - ground truth with `iscrowd` is ignored and may be matched by many detections (its IoU
//!   union is the detection's area); ground truth outside an area range is ignored there;
//!   area ranges read the annotation's `area` field, detections the area loadRes gave them
//!   ([`crate::eval::results`]);
//! - per (image, category), detections are ranked by score (stable, as numpy's mergesort)
//!   and cut to the largest `max_dets` **before** matching; each is greedily matched, per
//!   IoU threshold, to the best still-free ground truth, regular before ignored;
//! - precision is accumulated over all images per (category, area range, limit), made
//!   monotone and read at 101 recall points; cells without ground truth are −1 and left
//!   out of the means; the means are numpy's, so `stats` are bit-identical.
//!
//! Work is split over (image, category) cells and (category, area, limit) slices with
//! rayon; each unit is computed sequentially, so results do not depend on the thread count.
//!
//! ```
//! use edgedistill::data::Coco;
//! use edgedistill::eval::{IouType, Results, evaluate};
//!
//! let gt = br#"{"images": [{"id": 1, "width": 64, "height": 48}],
//!   "categories": [{"id": 7, "name": "thing"}],
//!   "annotations": [{"id": 1, "image_id": 1, "category_id": 7, "iscrowd": 0,
//!     "bbox": [10, 10, 20, 20], "area": 400}]}"#;
//! let (gt, _) = Coco::from_slice(gt, "gt.json")?;
//! let dt = br#"[{"image_id": 1, "category_id": 7, "score": 0.9, "bbox": [10, 10, 20, 20]},
//!   {"image_id": 1, "category_id": 7, "score": 0.5, "bbox": [40, 20, 10, 10]}]"#;
//! let dt = Results::from_slice(dt, "dt.json", &gt)?;
//! let r = evaluate(&gt, &dt, IouType::Bbox)?;
//! // AP@[.5:.95]: the top detection is exact (pycocotools' precision is tp / (tp + fp + ε)).
//! assert!((r.stats[0] - 1.0).abs() < 1e-15);
//! assert!(r.summary_text().starts_with(
//!     " Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 1.000"));
//! # Ok::<(), edgedistill::Error>(())
//! ```
mod accumulate;
mod evaluate;
mod iou;
mod params;
mod prepare;
mod summarize;

pub use accumulate::Accumulated;
pub use evaluate::{EvalCell, EvalImage};
pub use iou::box_iou;
pub use params::{IouType, Params, linspace};
pub use summarize::{StatSpec, np_mean, pairwise_sum, stat_specs, summary_line};

use crate::Result;
use crate::data::coco::Coco;
use crate::eval::results::Results;
use rayon::prelude::*;

/// AP of one category (area "all", the largest detection limit).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ClassAp {
    pub category_id: u64,
    /// Mean precision over IoU 0.50:0.95 and the recall points; −1 without ground truth.
    pub ap: f64,
    /// The same at IoU 0.50.
    pub ap50: f64,
}

/// Everything one evaluation produced.
#[derive(Clone, Debug, PartialEq)]
pub struct CocoEvalResult {
    pub params: Params,
    /// Sorted image ids evaluated (`params.imgIds`).
    pub img_ids: Vec<u64>,
    /// Sorted category ids (`params.catIds`); `k` indices refer to this order.
    pub cat_ids: Vec<u64>,
    /// Per (image, category) matching, sorted by category then image; only pairs with
    /// ground truth or detections (pycocotools' non-`None` `evalImgs`).
    pub cells: Vec<EvalCell>,
    /// `precision` / `recall` / `scores` arrays.
    pub eval: Accumulated,
    /// The 12 numbers of `COCOeval.stats`.
    pub stats: [f64; 12],
    /// One entry per category, in `cat_ids` order.
    pub per_class_ap: Vec<ClassAp>,
}

impl CocoEvalResult {
    /// The 12 lines `COCOeval.summarize()` prints, each ending in a newline.
    pub fn summary_text(&self) -> String {
        let specs = stat_specs(&self.params);
        specs
            .iter()
            .zip(self.stats)
            .map(|(s, v)| summary_line(&self.params, s, v) + "\n")
            .collect()
    }

    /// pycocotools' `evalImgs` entries for area range `a` (index into `params.area_rng`),
    /// sorted by category then image.
    pub fn eval_images(&self, a: usize) -> impl Iterator<Item = &EvalImage> {
        self.cells.iter().filter_map(move |c| c.by_area.get(a))
    }
}

/// COCOeval of `dt` against `gt` on boxes or masks with pycocotools' default parameters.
pub fn evaluate(gt: &Coco, dt: &Results, iou_type: IouType) -> Result<CocoEvalResult> {
    evaluate_with(gt, dt, &Params::new(iou_type))
}

/// [`evaluate`] with explicit parameters (checked with [`Params::validate`]).
pub fn evaluate_with(gt: &Coco, dt: &Results, params: &Params) -> Result<CocoEvalResult> {
    params.validate()?;
    let prep = prepare::prepare(gt, dt, params.iou_type)?;
    let done: Vec<Result<EvalCell>> = prep
        .cells
        .par_iter()
        .map(|c| evaluate::eval_cell(c, params))
        .collect();
    let cells = done.into_iter().collect::<Result<Vec<_>>>()?;
    let k_n = prep.cat_ids.len();
    let eval = accumulate::accumulate(&cells, k_n, params);
    let specs = stat_specs(params);
    let mut stats = [0.0; 12];
    for (s, spec) in stats.iter_mut().zip(&specs) {
        *s = summarize::summarize_one(&eval, params, spec);
    }
    let per_class_ap = (0..k_n)
        .map(|k| {
            let (ap, ap50) = summarize::class_ap(&eval, params, k);
            ClassAp {
                category_id: prep.cat_ids[k],
                ap,
                ap50,
            }
        })
        .collect();
    Ok(CocoEvalResult {
        params: params.clone(),
        img_ids: prep.img_ids,
        cat_ids: prep.cat_ids,
        cells,
        eval,
        stats,
        per_class_ap,
    })
}
