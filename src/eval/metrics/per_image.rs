//! Per-image records for error analysis and clustering, written one JSON object per line
//! (`per_image.jsonl`).
//!
//! # Matching at IoU 0.5
//! Each image's predictions are sorted by descending score (stable: equal scores keep their
//! input order); then each prediction, in that order, takes the not-yet-matched
//! ground-truth object **of its own class** with the highest IoU (the lowest index among
//! equal IoUs) if that IoU is `>= 0.5`. This is ultralytics' validator matching at its first
//! threshold (`matching::greedy_match`), so `tp`, `fp`, `fn`, `precision`, `recall`, `f1`
//! equal ultralytics' `Metric.image_metrics`. Boxes are matched on ultralytics' f32 box IoU
//! (the summary's decisions); the reported `mean_iou` of the matched pairs is their f64
//! IoU (`box_iou`). Masks are matched on their own (pycocotools) mask IoU.
use crate::io::atomic::write_atomic;
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

/// Matching outcome at IoU 0.5 for one kind of geometry (boxes or masks).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImageScores {
    /// Matched predictions.
    pub tp: usize,
    /// Unmatched predictions.
    pub fp: usize,
    /// Unmatched ground-truth objects.
    #[serde(rename = "fn")]
    pub fn_: usize,
    /// `tp / n_pred` (0 without predictions).
    pub precision: f64,
    /// `tp / n_gt`, the hit frequency (0 without ground truth).
    pub recall: f64,
    /// `2·P·R / (P + R)` (0 when both are 0). An image with neither ground truth nor
    /// predictions scores 1 for precision, recall and F1 (ultralytics' convention).
    pub f1: f64,
    /// Mean IoU of the matched pairs; `None` without matches.
    pub mean_iou: Option<f64>,
}

/// [`ImageScores`] for masks plus Dice.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MaskScores {
    #[serde(flatten)]
    pub matched: ImageScores,
    /// Mean Dice `2|A∩B| / (|A| + |B|)` of the matched pairs; `None` without matches.
    pub dice: Option<f64>,
    /// Dice of the union of all ground-truth masks against the union of the masks of the
    /// predictions scoring above the confusion matrix's `conf`; `None` when both are empty.
    pub dice_image: Option<f64>,
}

/// One image's record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PerImage {
    pub image: String,
    pub n_gt: usize,
    pub n_pred: usize,
    /// Mean score of all the image's predictions; `None` without predictions.
    pub mean_conf: Option<f64>,
    #[serde(rename = "box")]
    pub boxes: ImageScores,
    #[serde(rename = "mask", default, skip_serializing_if = "Option::is_none")]
    pub masks: Option<MaskScores>,
    /// Loss components when a model was evaluated (name → value), filled by the caller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss: Option<BTreeMap<String, f64>>,
}

/// ultralytics `update_image_metrics` arithmetic for `tp` matches among `n_pred`
/// predictions and `n_gt` objects, with the mean IoU of the matched pairs.
pub fn image_scores(tp: usize, n_pred: usize, n_gt: usize, matched_iou: &[f64]) -> ImageScores {
    let (precision, recall, f1) = if n_pred == 0 && n_gt == 0 {
        (1.0, 1.0, 1.0)
    } else {
        let p = if n_pred > 0 {
            tp as f64 / n_pred as f64
        } else {
            0.0
        };
        let r = if n_gt > 0 {
            tp as f64 / n_gt as f64
        } else {
            0.0
        };
        let d = p + r;
        (p, r, if d != 0.0 { 2.0 * p * r / d } else { 0.0 })
    };
    ImageScores {
        tp,
        fp: n_pred.saturating_sub(tp),
        fn_: n_gt.saturating_sub(tp),
        precision,
        recall,
        f1,
        mean_iou: super::numpy::mean(matched_iou),
    }
}

/// Writes `records` as JSON lines to `path` (atomically: a temporary file renamed into
/// place).
pub fn write_jsonl(path: &Path, records: &[PerImage]) -> Result<()> {
    write_atomic(path, |w: &mut dyn Write| {
        for (i, r) in records.iter().enumerate() {
            let line = serde_json::to_string(r).map_err(|e| Error::Format {
                path: path.display().to_string(),
                record: format!("line {}", i + 1),
                msg: e.to_string(),
            })?;
            w.write_all(line.as_bytes())
                .and_then(|_| w.write_all(b"\n"))
                .map_err(|source| Error::Io {
                    path: path.to_path_buf(),
                    source,
                })?;
        }
        Ok(())
    })
}
