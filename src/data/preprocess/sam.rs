//! SAM input: transformers 5 `SamImageProcessor` with its defaults. That class is the
//! torchvision backend, which `AutoImageProcessor` also picks whenever torchvision is
//! installed (the PIL backend, `SamImageProcessorPil`, resamples differently and is not
//! what we match).
//!
//! - longest side → 1024: scale = 1024 / max(h, w), size `int(x·scale + 0.5)` per axis
//!   (`_get_preprocess_shape`);
//! - torchvision `resize(BILINEAR, antialias=True)` on the uint8 image, i.e. torch's uint8
//!   antialiased kernel ([`resize_bilinear_aa_torch`]);
//! - `(v − 255·mean) / (255·std)` with ImageNet mean/std in f32 (= 123.675, 116.28, 103.53 /
//!   58.395, 57.12, 57.375);
//! - zero padding (after normalisation) on the bottom and right up to 1024×1024.
use super::resize_torch_aa::resize_bilinear_aa_torch;
use super::{
    IMAGENET_MEAN, IMAGENET_STD, Placement, Preprocessed, check_not_empty, normalize_into_chw,
};
use crate::Result;
use image::RgbImage;

/// SAM's resize/pad settings (`size.longest_edge`, `pad_size`); defaults 1024 / 1024.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SamResize {
    pub longest_edge: u32,
    /// Square side the normalised image is zero-padded to; at least `longest_edge`.
    pub pad_size: u32,
}

impl Default for SamResize {
    fn default() -> Self {
        SamResize {
            longest_edge: 1024,
            pad_size: 1024,
        }
    }
}

impl SamResize {
    /// Where an `orig_w`×`orig_h` image lands: top-left, no offset.
    pub fn placement(&self, orig_w: u32, orig_h: u32) -> Placement {
        let scale = self.longest_edge as f64 / orig_w.max(orig_h).max(1) as f64;
        let side = |x: u32| ((x as f64 * scale + 0.5) as u32).max(1);
        Placement {
            orig_w,
            orig_h,
            new_w: side(orig_w),
            new_h: side(orig_h),
            left: 0,
            top: 0,
            input_w: self.pad_size,
            input_h: self.pad_size,
        }
    }

    /// The resized u8 image (before normalisation and padding).
    pub fn apply_u8(&self, img: &RgbImage) -> Result<(RgbImage, Placement)> {
        check_not_empty(img, "SAM preprocessing")?;
        if self.longest_edge == 0 || self.pad_size < self.longest_edge {
            return Err(crate::Error::msg(format!(
                "SAM preprocessing: longest_edge {} must be ≥ 1 and ≤ pad_size {}",
                self.longest_edge, self.pad_size
            )));
        }
        let p = self.placement(img.width(), img.height());
        Ok((resize_bilinear_aa_torch(img, p.new_w, p.new_h), p))
    }

    /// The model input: `[3, pad_size, pad_size]` f32.
    pub fn apply(&self, img: &RgbImage) -> Result<Preprocessed> {
        let (resized, placement) = self.apply_u8(img)?;
        let pad = (self.pad_size, self.pad_size);
        Ok(Preprocessed {
            pixel_values: normalize_into_chw(&resized, IMAGENET_MEAN, IMAGENET_STD, pad, 0.0)?,
            pixel_mask: None,
            placement,
        })
    }
}

/// SAM preprocessing with the released models' settings (1024).
pub fn sam_preprocess(img: &RgbImage) -> Result<Preprocessed> {
    SamResize::default().apply(img)
}
