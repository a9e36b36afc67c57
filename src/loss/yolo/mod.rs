//! ultralytics 8.4.190 `v8DetectionLoss` / `v8SegmentationLoss`: TAL assigner, CIoU, DFL,
//! class BCE and per-instance mask BCE, with the reference's normalisation (by the sum of
//! target scores, masks by the foreground count) and `loss * batch_size`.
//!
//! The assigner runs on plain f32 values (no graph); everything that depends on the head
//! outputs afterwards is built from autograd ops, so `LossOutput::total.backward()` gives
//! the gradients of the reference's `loss.sum()` with respect to the head outputs.
mod assign;
mod bce;
mod compute;
mod iou;
mod seg;
mod targets;

pub use assign::{ImageAssignment, TalParams, assign_image};
pub use bce::{TargetFn, bce_rows, bce_rows_with};
pub use iou::{ciou, ciou_alpha, ciou_f32, ciou_fixed_alpha};
pub use targets::{GtBox, Targets};

use crate::{Result, Tensor};

/// Loss hyper-parameters (ultralytics `hyp` and head settings).
#[derive(Clone, Debug)]
pub struct YoloLossConfig {
    /// Number of classes.
    pub nc: usize,
    /// DFL bins per side (16).
    pub reg_max: usize,
    /// Strides of the feature levels (8, 16, 32).
    pub strides: Vec<f32>,
    /// Gain of the box (CIoU) term, also applied to the mask term (7.5).
    pub box_gain: f32,
    /// Gain of the class term (0.5).
    pub cls_gain: f32,
    /// Gain of the DFL term (1.5).
    pub dfl_gain: f32,
    /// Assigner top-k (10).
    pub tal_topk: usize,
    /// Assigner exponent of the class score (0.5).
    pub alpha: f32,
    /// Assigner exponent of the CIoU (6.0).
    pub beta: f32,
    /// Masks as one index image per picture (unsupported: must be false).
    pub overlap_mask: bool,
}

impl YoloLossConfig {
    /// ultralytics defaults for `nc` classes.
    pub fn new(nc: usize) -> Self {
        YoloLossConfig {
            nc,
            reg_max: 16,
            strides: vec![8.0, 16.0, 32.0],
            box_gain: 7.5,
            cls_gain: 0.5,
            dfl_gain: 1.5,
            tal_topk: 10,
            alpha: 0.5,
            beta: 6.0,
            overlap_mask: false,
        }
    }
}

/// The loss of one batch.
#[derive(Debug)]
pub struct LossOutput {
    /// `sum(items) · B`, 0-d, differentiable with respect to the head outputs.
    pub total: Tensor,
    /// Gained terms before the batch factor: box, seg, cls, dfl, semantic (always 0).
    /// Detection leaves seg at 0.
    pub items: [f32; 5],
    /// Per image `[box, seg, cls, dfl]`, gains applied, no batch factor: the same terms
    /// computed from that image's anchors alone: box, cls and dfl divided by the image's
    /// own `max(Σ target_scores, 1)`, seg by `max(its foreground anchor count, 1)`. For
    /// error analysis only: they need not sum or average to `items`.
    pub per_image: Vec<[f32; 4]>,
}

/// v8DetectionLoss on head outputs `feats[l]` `[B, 4·reg_max + nc, h_l, w_l]` (box
/// distribution channels first, then class logits). The input size is `feats[0]`'s h, w
/// times `strides[0]`.
pub fn detection_loss(
    cfg: &YoloLossConfig,
    feats: &[Tensor],
    targets: &Targets,
) -> Result<LossOutput> {
    compute::run(cfg, feats, None, targets)
}

/// v8SegmentationLoss: detection terms plus the mask term from `pred_masks` `[B, nm, A]`
/// (mask coefficients, anchors in level order) and `proto` `[B, nm, mh, mw]`. Targets need
/// per-instance masks; when their size differs from the prototypes', the prototypes are
/// resized bilinearly to the masks' size (align_corners=false), as ultralytics 8.4 does.
pub fn segmentation_loss(
    cfg: &YoloLossConfig,
    feats: &[Tensor],
    pred_masks: &Tensor,
    proto: &Tensor,
    targets: &Targets,
) -> Result<LossOutput> {
    compute::run(cfg, feats, Some((pred_masks, proto)), targets)
}

/// The assigner's result for every image of a batch, as the loss computes it (for tests
/// and diagnostics).
pub fn assign_batch(
    cfg: &YoloLossConfig,
    feats: &[Tensor],
    targets: &Targets,
) -> Result<Vec<ImageAssignment>> {
    Ok(compute::prepare(cfg, feats, targets)?.assigned)
}
