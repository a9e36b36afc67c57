//! The ultralytics-style evaluation of a dataset: per image (in parallel, results in image
//! order) sort the predictions, match boxes (and masks) at the ten IoU thresholds, count
//! the confusion matrix and build the per-image record; then `ap_per_class` over all
//! images for boxes and masks. Mirrors ultralytics' `DetectionValidator` /
//! `SegmentationValidator` `update_metrics` + `DetMetrics.process`, with two documented
//! differences: mask IoU is pycocotools' exact IoU (not ultralytics' f32 matmul with eps),
//! and equal confidences are ordered stably (see `ap`).
use super::ap::{DetectionMetrics, N_IOU, ap_per_class};
use super::box_iou::{box_iou, box_iou_ultralytics};
use super::confusion::{ConfusionMatrix, ConfusionOptions};
use super::mask_iou::{MaskIouBackend, mask_iou};
use super::matching::{IOU_THRESHOLDS, greedy_match, match_predictions};
use super::per_image::{MaskScores, PerImage, image_scores};
use super::types::{ImageEval, masks_present};
use crate::backend::cpu::mask_iou::PackedMasks;
use crate::data::masks::{Rle, pack};
use crate::{Error, Result};
use rayon::prelude::*;
use serde::Serialize;

/// Settings of [`evaluate`].
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct EvalOptions {
    /// Confusion matrix thresholds (also the score above which predictions enter the
    /// per-image `dice_image`).
    pub confusion: ConfusionOptions,
    pub mask_backend: MaskIouBackend,
}

/// One image's matching results.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageMatch {
    /// Prediction indices in descending score, equal scores in input order: the order of
    /// the rows of `tp` and `tp_mask`.
    pub order: Vec<usize>,
    /// Box true-positive flags per sorted prediction at [`IOU_THRESHOLDS`].
    pub tp: Vec<[bool; N_IOU]>,
    /// The same on masks, when masks are evaluated.
    pub tp_mask: Option<Vec<[bool; N_IOU]>>,
    /// This image's confusion matrix.
    pub confusion: ConfusionMatrix,
    pub record: PerImage,
}

/// Everything [`evaluate`] computes. `per_image` is not serialized with the rest (it goes
/// to `per_image.jsonl`, see `per_image::write_jsonl`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Evaluation {
    pub nc: usize,
    pub images: usize,
    #[serde(rename = "box")]
    pub boxes: DetectionMetrics,
    #[serde(rename = "mask", skip_serializing_if = "Option::is_none")]
    pub masks: Option<DetectionMetrics>,
    pub confusion: ConfusionMatrix,
    /// Ground-truth objects per class.
    pub nt_per_class: Vec<u64>,
    /// Images containing each class.
    pub nt_per_image: Vec<u64>,
    #[serde(skip)]
    pub per_image: Vec<PerImage>,
}

fn sort_desc(scores: &[f64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| {
        scores[b]
            .partial_cmp(&scores[a])
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    order
}

/// Masks of an image packed for `mask_iou`; `path`/`record` name the image for errors.
fn pack_image(img: &ImageEval, rles: &[&Rle], hw: (u32, u32), which: &str) -> Result<PackedMasks> {
    let owned: Vec<Rle> = rles.iter().map(|r| (*r).clone()).collect();
    pack(&owned, hw.0, hw.1).map_err(|e| e.at(img.name.clone(), format!("{which} masks")))
}

/// `|union(a) ∩ union(b)|`, `|union(a)|`, `|union(b)|` over the masks of two sets.
fn union_counts(a: &PackedMasks, a_sel: &[bool], b: &PackedMasks) -> (u64, u64, u64) {
    let words = a.h * a.words_per_row;
    let or = |m: &PackedMasks, sel: Option<&[bool]>| {
        let mut u = vec![0u64; words];
        for i in 0..m.n {
            if sel.is_none_or(|s| s[i]) {
                for (x, y) in u.iter_mut().zip(m.mask(i)) {
                    *x |= y;
                }
            }
        }
        u
    };
    let (ua, ub) = (or(a, Some(a_sel)), or(b, None));
    let count = |v: &[u64]| v.iter().map(|w| u64::from(w.count_ones())).sum::<u64>();
    let inter: u64 = ua
        .iter()
        .zip(&ub)
        .map(|(x, y)| u64::from((x & y).count_ones()))
        .sum();
    (inter, count(&ua), count(&ub))
}

/// Matches one image (module docs). `masks`: evaluate masks too (every object must then
/// have one; see `types::masks_present`). Errors name the image and the object.
pub fn match_image(
    img: &ImageEval,
    nc: usize,
    masks: bool,
    opts: &EvalOptions,
) -> Result<ImageMatch> {
    img.validate(nc)?;
    let scores: Vec<f64> = img.pred.iter().map(|d| d.score).collect();
    let order = sort_desc(&scores);
    let pb: Vec<[f64; 4]> = order.iter().map(|&i| img.pred[i].bbox).collect();
    let pc: Vec<usize> = order.iter().map(|&i| img.pred[i].class).collect();
    let ps: Vec<f64> = order.iter().map(|&i| scores[i]).collect();
    let gb: Vec<[f64; 4]> = img.gt.iter().map(|g| g.bbox).collect();
    let gc: Vec<usize> = img.gt.iter().map(|g| g.class).collect();
    let (n_pred, n_gt) = (pc.len(), gc.len());

    let iou: Vec<f64> = box_iou_ultralytics(&pb, &gb)
        .into_iter()
        .map(f64::from)
        .collect();
    let tp = match_predictions(&pc, &gc, &iou);
    let pairs = greedy_match(&pc, &gc, &iou, IOU_THRESHOLDS[0]);
    let matched_iou: Vec<f64> = pairs
        .iter()
        .enumerate()
        .filter_map(|(p, g)| g.map(|g| box_iou(&[pb[p]], &[gb[g]])[0]))
        .collect();
    let boxes = image_scores(matched_iou.len(), n_pred, n_gt, &matched_iou);

    let (tp_mask, mask_scores) = if masks {
        let missing = |rec: String| Error::Format {
            path: img.name.clone(),
            record: rec,
            msg: "has no mask while masks are evaluated".into(),
        };
        let gm: Vec<&Rle> = img
            .gt
            .iter()
            .enumerate()
            .map(|(i, g)| g.mask.as_ref().ok_or_else(|| missing(format!("gt {i}"))))
            .collect::<Result<_>>()?;
        let pm: Vec<&Rle> = order
            .iter()
            .map(|&i| {
                img.pred[i]
                    .mask
                    .as_ref()
                    .ok_or_else(|| missing(format!("prediction {i}")))
            })
            .collect::<Result<_>>()?;
        let hw = gm.first().or(pm.first()).map_or((0, 0), |m| (m.h(), m.w()));
        let (gp, pp) = (
            pack_image(img, &gm, hw, "gt")?,
            pack_image(img, &pm, hw, "prediction")?,
        );
        let miou = mask_iou(&pp, &gp, &vec![false; n_gt], opts.mask_backend)?;
        let tp_m = match_predictions(&pc, &gc, &miou);
        let pairs = greedy_match(&pc, &gc, &miou, IOU_THRESHOLDS[0]);
        let m_iou: Vec<f64> = pairs
            .iter()
            .enumerate()
            .filter_map(|(p, g)| g.map(|g| miou[p * n_gt + g]))
            .collect();
        // Dice = 2i/(|a|+|b|) = 2·IoU/(1 + IoU) for non-crowd pairs.
        let dice: Vec<f64> = m_iou.iter().map(|v| 2.0 * v / (1.0 + v)).collect();
        let above: Vec<bool> = ps.iter().map(|&s| s > opts.confusion.conf).collect();
        let (inter, up, ug) = union_counts(&pp, &above, &gp);
        let dice_image = (up + ug > 0).then(|| 2.0 * inter as f64 / (up + ug) as f64);
        let scores = MaskScores {
            matched: image_scores(m_iou.len(), n_pred, n_gt, &m_iou),
            dice: super::numpy::mean(&dice),
            dice_image,
        };
        (Some(tp_m), Some(scores))
    } else {
        (None, None)
    };

    let mut confusion = ConfusionMatrix::new(nc);
    confusion.process_image(&gb, &gc, &pb, &pc, &ps, opts.confusion);
    Ok(ImageMatch {
        order,
        tp,
        tp_mask,
        confusion,
        record: PerImage {
            image: img.name.clone(),
            n_gt,
            n_pred,
            mean_conf: super::numpy::mean(&ps),
            boxes,
            masks: mask_scores,
            loss: None,
        },
    })
}

/// The per-image record of one image on its own (masks evaluated when all its objects
/// have one). `loss` is left `None` for the caller to fill.
pub fn per_image(img: &ImageEval, nc: usize, opts: &EvalOptions) -> Result<PerImage> {
    let masks = masks_present(std::slice::from_ref(img))?;
    Ok(match_image(img, nc, masks, opts)?.record)
}

/// Evaluates a dataset with `nc` classes: ultralytics' box (and, when every object has a
/// mask, mask) metrics, the confusion matrix, and the per-image records in image order.
/// Deterministic whatever the thread count. The first bad image (in order) is the error.
pub fn evaluate(images: &[ImageEval], nc: usize, opts: &EvalOptions) -> Result<Evaluation> {
    let masks = masks_present(images)?;
    let results: Vec<Result<ImageMatch>> = images
        .par_iter()
        .map(|img| match_image(img, nc, masks, opts))
        .collect();
    let matches: Vec<ImageMatch> = results.into_iter().collect::<Result<_>>()?;

    let (mut tp, mut tp_m, mut conf, mut pcls, mut tcls) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut confusion = ConfusionMatrix::new(nc);
    let mut nt_per_image = vec![0u64; nc];
    for (img, m) in images.iter().zip(&matches) {
        tp.extend_from_slice(&m.tp);
        if let Some(t) = &m.tp_mask {
            tp_m.extend_from_slice(t);
        }
        conf.extend(m.order.iter().map(|&i| img.pred[i].score));
        pcls.extend(m.order.iter().map(|&i| img.pred[i].class));
        tcls.extend(img.gt.iter().map(|g| g.class));
        confusion.add(&m.confusion);
        let mut seen = vec![false; nc];
        for g in &img.gt {
            if !std::mem::replace(&mut seen[g.class], true) {
                nt_per_image[g.class] += 1;
            }
        }
    }
    let mut nt_per_class = vec![0u64; nc];
    for &c in &tcls {
        nt_per_class[c] += 1;
    }
    let boxes = ap_per_class(&tp, &conf, &pcls, &tcls, nc)?;
    let mask_metrics = if masks {
        Some(ap_per_class(&tp_m, &conf, &pcls, &tcls, nc)?)
    } else {
        None
    };
    Ok(Evaluation {
        nc,
        images: images.len(),
        boxes,
        masks: mask_metrics,
        confusion,
        nt_per_class,
        nt_per_image,
        per_image: matches.into_iter().map(|m| m.record).collect(),
    })
}
