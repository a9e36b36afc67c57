//! Mask IoU for evaluation: picks the CUDA kernel (`backend::cuda::mask_iou`) when a GPU is
//! present and the matrix is big enough to pay for the copies, else the CPU implementation
//! (`backend::cpu::mask_iou`). Both have pycocotools `maskUtils.iou` semantics, crowd rule
//! included, and give bit-identical results, so the choice never changes a metric.
use crate::backend::cpu::mask_iou::{self as cpu, PackedMasks};
use crate::backend::cuda;
use crate::data::masks::{Rle, pack};
use crate::{Error, Result};

/// Where mask IoU runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MaskIouBackend {
    /// Always the CPU (bit-packed masks, rayon).
    Cpu,
    /// The CUDA kernel when `backend::cuda::default_device()` finds a GPU and the job has at
    /// least [`GPU_MIN_WORDS`] word pairs to compare; otherwise, or if the GPU call fails
    /// (one notice on stderr), the CPU.
    #[default]
    Auto,
}

/// `n_pred · n_gt · h · words_per_row` below which the CPU wins (upload and launch cost
/// more than the popcounts).
pub const GPU_MIN_WORDS: usize = 1 << 24;

/// IoU of every prediction mask against every reference mask, row-major
/// `[pred.n, gt.n]`, pycocotools semantics (`gt_crowd[j]`: reference `j` is crowd). Input
/// errors (sizes, layout, flag count) are reported before any backend is chosen.
pub fn mask_iou(
    pred: &PackedMasks,
    gt: &PackedMasks,
    gt_crowd: &[bool],
    backend: MaskIouBackend,
) -> Result<Vec<f64>> {
    cpu::check_inputs(pred, gt, gt_crowd)?;
    let work = pred
        .n
        .saturating_mul(gt.n)
        .saturating_mul(pred.h.saturating_mul(pred.words_per_row));
    if backend == MaskIouBackend::Auto
        && work >= GPU_MIN_WORDS
        && let Some(dev) = cuda::default_device()
    {
        match cuda::mask_iou::mask_iou(dev, pred, gt, gt_crowd) {
            Ok(v) => return Ok(v),
            Err(e) => {
                static NOTICE: std::sync::Once = std::sync::Once::new();
                NOTICE.call_once(|| {
                    eprintln!("edgedistill: CUDA mask_iou failed, using the CPU ({e})")
                });
            }
        }
    }
    cpu::mask_iou(pred, gt, gt_crowd)
}

/// [`mask_iou`] on RLE masks, all of one size (taken from the first mask; with no masks at
/// all the result is empty). Errors name the first mask of another size.
pub fn mask_iou_rle(
    pred: &[Rle],
    gt: &[Rle],
    gt_crowd: &[bool],
    backend: MaskIouBackend,
) -> Result<Vec<f64>> {
    let Some(first) = pred.first().or(gt.first()) else {
        return Ok(Vec::new());
    };
    let (h, w) = (first.h(), first.w());
    let packed = |set: &[Rle], which: &str| {
        pack(set, h, w).map_err(|e| Error::Shape {
            op: "mask_iou",
            msg: format!("{which} masks: {e}"),
        })
    };
    mask_iou(
        &packed(pred, "pred")?,
        &packed(gt, "gt")?,
        gt_crowd,
        backend,
    )
}
