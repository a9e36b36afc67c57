//! Per-model preprocessing: an RGB image in, the model's CHW f32 input tensor out, plus a
//! [`Placement`] that maps boxes and masks between the input tensor and the original image.
//!
//! Each model matches its reference implementation bit for bit on the u8 image before
//! normalisation (tests/data_preprocess.rs, fixture from
//! tools/reference/make_preprocess_fixture.py):
//! - YOLOv8: ultralytics `LetterBox` as its predictor uses it ([`letterbox`]);
//! - SAM: transformers `SamImageProcessor` ([`sam`]);
//! - Grounding DINO: transformers `GroundingDinoImageProcessor` ([`grounding_dino`]).
//!
//! The resamplers are separate files named for the library they reproduce.
pub mod grounding_dino;
pub mod letterbox;
mod placement;
pub mod resize_cv2;
pub mod resize_torch_aa;
pub mod sam;

pub use grounding_dino::{GroundingDinoResize, grounding_dino_preprocess};
pub use letterbox::{Letterbox, letterbox};
pub use placement::Placement;
pub use sam::{SamResize, sam_preprocess};

use crate::{Result, Tensor};
use image::RgbImage;

/// A model input and how it sits over the original image.
#[derive(Clone, Debug)]
pub struct Preprocessed {
    /// `[3, H, W]` f32, RGB planes.
    pub pixel_values: Tensor,
    /// `[H, W]` u8, 1 where `pixel_values` holds image content and 0 on padding; only for
    /// models that take one (Grounding DINO), as their processor returns it.
    pub pixel_mask: Option<Tensor>,
    pub placement: Placement,
}

/// transformers' `IMAGENET_DEFAULT_MEAN` / `IMAGENET_DEFAULT_STD` (on 0..1), used by SAM
/// and Grounding DINO.
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// Normalise like transformers' torchvision backend, which fuses rescale and normalise:
/// mean and std are scaled to 0..255 in f32 (`mean * 255`) and each pixel becomes
/// `(v - mean255) / std255` in f32. The content goes to the top-left corner of a
/// `pad_w`×`pad_h` plane filled with `pad`.
fn normalize_into_chw(
    img: &RgbImage,
    mean: [f32; 3],
    std: [f32; 3],
    (pad_w, pad_h): (u32, u32),
    pad: f32,
) -> Result<Tensor> {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let (pw, ph) = (pad_w as usize, pad_h as usize);
    let mut out = vec![pad; 3 * pw * ph];
    let px: &[[u8; 3]] = bytemuck::cast_slice(img.as_raw());
    for c in 0..3 {
        let (m, s) = (mean[c] * 255.0, std[c] * 255.0);
        // Per-value table: the same f32 expression, evaluated once per u8 value.
        let lut: [f32; 256] = std::array::from_fn(|v| (v as f32 - m) / s);
        let plane = &mut out[c * pw * ph..(c + 1) * pw * ph];
        for y in 0..h.min(ph) {
            let src = &px[y * w..y * w + w.min(pw)];
            for (o, p) in plane[y * pw..].iter_mut().zip(src) {
                *o = lut[p[c] as usize];
            }
        }
    }
    Tensor::from_vec(out, vec![3, ph, pw])
}

/// u8 HWC → f32 CHW divided by 255 (ultralytics' `im.float().div_(255)`).
fn scale_into_chw(img: &RgbImage) -> Result<Tensor> {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let lut: [f32; 256] = std::array::from_fn(|v| v as f32 / 255.0);
    let px: &[[u8; 3]] = bytemuck::cast_slice(img.as_raw());
    let mut out = vec![0f32; 3 * w * h];
    for (c, plane) in out.chunks_exact_mut(w * h).enumerate() {
        for (o, p) in plane.iter_mut().zip(px) {
            *o = lut[p[c] as usize];
        }
    }
    Tensor::from_vec(out, vec![3, h, w])
}

/// An empty image has no model input; say which function refused it.
fn check_not_empty(img: &RgbImage, what: &str) -> Result<()> {
    if img.width() == 0 || img.height() == 0 {
        return Err(crate::Error::msg(format!(
            "{what}: image is {}x{}, it needs at least one pixel",
            img.width(),
            img.height()
        )));
    }
    Ok(())
}
