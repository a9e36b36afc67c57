//! SAM's mask postprocessing (transformers' SamImageProcessor.post_process_masks): low-res
//! logits → bilinear to the padded input size → crop the padding → bilinear to the
//! original image size → threshold.
use crate::data::preprocess::Placement;
use crate::{Error, Result, Tensor};

/// Logits at the original image size: `low_res` [N, M, h, w] → [N, M, orig_h, orig_w].
pub fn upscale_masks(low_res: &Tensor, p: &Placement) -> Result<Tensor> {
    if low_res.rank() != 4 {
        return Err(Error::Shape {
            op: "SAM postprocess",
            msg: format!("mask logits {} must be [N, M, h, w]", low_res.shape()),
        });
    }
    if p.new_w > p.input_w || p.new_h > p.input_h || p.orig_w == 0 || p.orig_h == 0 {
        return Err(Error::msg(format!(
            "SAM postprocess: placement {p:?} does not fit its input"
        )));
    }
    let full = low_res.upsample_bilinear2d((p.input_h as usize, p.input_w as usize), false)?;
    let crop = full
        .narrow(2, 0, p.new_h as usize)?
        .narrow(3, 0, p.new_w as usize)?;
    crop.upsample_bilinear2d((p.orig_h as usize, p.orig_w as usize), false)
}

/// Binary masks at the original size (logit > `threshold`, SAM's default 0): u8 0/1.
pub fn post_process_masks(low_res: &Tensor, p: &Placement, threshold: f64) -> Result<Tensor> {
    upscale_masks(low_res, p)?.gt_scalar(threshold)
}
