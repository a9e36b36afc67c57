//! Grounding DINO input: transformers 5 `GroundingDinoImageProcessor` (torchvision backend,
//! the default) with its defaults, for one image.
//!
//! - shortest side → 800 unless the longest would pass 1333, then longest → 1333
//!   (`image_transforms.get_size_with_aspect_ratio`, reproduced with its Python rounding:
//!   `round()` half-to-even for the capped short side, `int()` truncation for the other);
//! - torchvision `resize(BILINEAR, antialias=True)` on uint8 ([`resize_bilinear_aa_torch`]);
//! - `(v − 255·mean) / (255·std)` with ImageNet mean/std in f32;
//! - a single image is not padded; `pixel_mask` is all ones.
use super::resize_torch_aa::resize_bilinear_aa_torch;
use super::{
    IMAGENET_MEAN, IMAGENET_STD, Placement, Preprocessed, check_not_empty, normalize_into_chw,
};
use crate::{Result, Tensor};
use image::RgbImage;

/// Grounding DINO's `size` setting; defaults 800 / 1333.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GroundingDinoResize {
    pub shortest_edge: u32,
    pub longest_edge: u32,
}

impl Default for GroundingDinoResize {
    fn default() -> Self {
        GroundingDinoResize {
            shortest_edge: 800,
            longest_edge: 1333,
        }
    }
}

impl GroundingDinoResize {
    /// Output `(height, width)` for an `h`×`w` image, exactly as
    /// `get_size_with_aspect_ratio((h, w), shortest_edge, longest_edge)`.
    pub fn output_size(&self, h: u32, w: u32) -> (u32, u32) {
        let (hf, wf) = (h as f64, w as f64);
        let mut size = self.shortest_edge as f64;
        let max_size = self.longest_edge as f64;
        let (mn, mx) = (hf.min(wf), hf.max(wf));
        let mut raw: Option<f64> = None;
        if mx / mn * size > max_size {
            let r = max_size * mn / mx;
            raw = Some(r);
            size = r.round_ties_even();
        }
        let (oh, ow) = if (h <= w && hf == size) || (w <= h && wf == size) {
            (hf, wf)
        } else if w < h {
            // Python: int(raw * h / w) or int(size * h / w), left to right.
            let oh = match raw {
                Some(r) => r * hf / wf,
                None => size * hf / wf,
            };
            (oh.trunc(), size)
        } else {
            let ow = match raw {
                Some(r) => r * wf / hf,
                None => size * wf / hf,
            };
            (size, ow.trunc())
        };
        ((oh as u32).max(1), (ow as u32).max(1))
    }

    /// Where an `orig_w`×`orig_h` image lands: the whole input, no padding.
    pub fn placement(&self, orig_w: u32, orig_h: u32) -> Placement {
        let (new_h, new_w) = self.output_size(orig_h.max(1), orig_w.max(1));
        Placement {
            orig_w,
            orig_h,
            new_w,
            new_h,
            left: 0,
            top: 0,
            input_w: new_w,
            input_h: new_h,
        }
    }

    /// The resized u8 image (before normalisation).
    pub fn apply_u8(&self, img: &RgbImage) -> Result<(RgbImage, Placement)> {
        check_not_empty(img, "Grounding DINO preprocessing")?;
        if self.shortest_edge == 0 || self.longest_edge < self.shortest_edge {
            return Err(crate::Error::msg(format!(
                "Grounding DINO preprocessing: need 1 ≤ shortest_edge ({}) ≤ longest_edge ({})",
                self.shortest_edge, self.longest_edge
            )));
        }
        let p = self.placement(img.width(), img.height());
        Ok((resize_bilinear_aa_torch(img, p.new_w, p.new_h), p))
    }

    /// The model input: `[3, H, W]` f32 and an all-ones `[H, W]` u8 `pixel_mask`.
    pub fn apply(&self, img: &RgbImage) -> Result<Preprocessed> {
        let (resized, placement) = self.apply_u8(img)?;
        let size = (placement.input_w, placement.input_h);
        let (h, w) = (size.1 as usize, size.0 as usize);
        Ok(Preprocessed {
            pixel_values: normalize_into_chw(&resized, IMAGENET_MEAN, IMAGENET_STD, size, 0.0)?,
            pixel_mask: Some(Tensor::from_vec(vec![1u8; h * w], vec![h, w])?),
            placement,
        })
    }
}

/// Grounding DINO preprocessing with the released models' settings (800 / 1333).
pub fn grounding_dino_preprocess(img: &RgbImage) -> Result<Preprocessed> {
    GroundingDinoResize::default().apply(img)
}
