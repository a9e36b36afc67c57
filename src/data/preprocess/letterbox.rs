//! YOLOv8 input: ultralytics `LetterBox(new_shape=(s, s), auto=False, scale_fill=False,
//! scaleup=True, center=True, padding_value=114)`, the transform its predictor applies
//! (ultralytics 8.4 `data/augment.py`), followed by the predictor's `/ 255`.
//!
//! - gain r = min(s / h, s / w); resized size `max(round(w·r), 1)` × `max(round(h·r), 1)`
//!   with Python's round-half-to-even;
//! - `cv2.resize(INTER_LINEAR)` when the size changes ([`resize_linear_cv2`]);
//! - padding 114 split as `round(d/2 − 0.1)` before and `round(d/2 + 0.1)` after;
//! - f32 = u8 / 255, no mean/std. Our images are RGB already; the reference's BGR↔RGB
//!   flips commute with all of the above, which is per channel.
use super::resize_cv2::resize_linear_cv2;
use super::{Placement, Preprocessed, check_not_empty, scale_into_chw};
use crate::Result;
use image::{Rgb, RgbImage};

/// Value of the padding, in u8 (ultralytics `padding_value`).
pub const LETTERBOX_PAD: u8 = 114;

/// Letterbox to a `size`×`size` square (ultralytics' default imgsz is 640).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Letterbox {
    pub size: u32,
}

impl Default for Letterbox {
    fn default() -> Self {
        Letterbox { size: 640 }
    }
}

/// Python's `round()` on a float: half to even.
fn py_round(v: f64) -> i64 {
    v.round_ties_even() as i64
}

impl Letterbox {
    /// Where an `orig_w`×`orig_h` image lands (ultralytics `LetterBox.get_params`).
    pub fn placement(&self, orig_w: u32, orig_h: u32) -> Placement {
        let s = self.size.max(1) as f64;
        let (w, h) = (orig_w.max(1) as f64, orig_h.max(1) as f64);
        let r = (s / h).min(s / w);
        let new_w = py_round(w * r).max(1) as u32;
        let new_h = py_round(h * r).max(1) as u32;
        let dw = self.size.saturating_sub(new_w) as f64 / 2.0;
        let dh = self.size.saturating_sub(new_h) as f64 / 2.0;
        Placement {
            orig_w,
            orig_h,
            new_w,
            new_h,
            left: py_round(dw - 0.1).max(0) as u32,
            top: py_round(dh - 0.1).max(0) as u32,
            input_w: self.size,
            input_h: self.size,
        }
    }

    /// The letterboxed u8 image (before `/ 255`): what ultralytics' `LetterBox` returns.
    pub fn apply_u8(&self, img: &RgbImage) -> Result<(RgbImage, Placement)> {
        check_not_empty(img, "letterbox")?;
        if self.size == 0 {
            return Err(crate::Error::msg("letterbox: size must be at least 1"));
        }
        let p = self.placement(img.width(), img.height());
        let resized;
        let content = if (p.new_w, p.new_h) == img.dimensions() {
            img
        } else {
            resized = resize_linear_cv2(img, p.new_w, p.new_h);
            &resized
        };
        let mut out = RgbImage::from_pixel(p.input_w, p.input_h, Rgb([LETTERBOX_PAD; 3]));
        // `size.saturating_sub` above keeps left + new_w ≤ size, so every row fits.
        let (cw, row) = (p.new_w as usize * 3, p.input_w as usize * 3);
        let dst = out.as_mut();
        for (y, src) in content.as_raw().chunks_exact(cw).enumerate() {
            let start = (p.top as usize + y) * row + p.left as usize * 3;
            if let Some(d) = dst.get_mut(start..start + cw) {
                d.copy_from_slice(src);
            }
        }
        Ok((out, p))
    }

    /// The model input: `[3, size, size]` f32 in 0..1.
    pub fn apply(&self, img: &RgbImage) -> Result<Preprocessed> {
        let (u8img, placement) = self.apply_u8(img)?;
        Ok(Preprocessed {
            pixel_values: scale_into_chw(&u8img)?,
            pixel_mask: None,
            placement,
        })
    }
}

/// YOLOv8 preprocessing at `size` (640 for the released models).
pub fn letterbox(img: &RgbImage, size: u32) -> Result<Preprocessed> {
    Letterbox { size }.apply(img)
}
