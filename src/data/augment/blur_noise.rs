//! Pixel-only degradations (the albumentations stage ultralytics runs when installed): box
//! blur with a random odd kernel (albumentations `Blur`, cv2 `blur`, border reflect-101)
//! and additive Gaussian noise. Boxes and masks are untouched.
use crate::tensor::Rng;
use crate::{Error, Result};
use image::RgbImage;
use serde::{Deserialize, Serialize};

/// Box blur with an odd kernel size drawn uniformly from `3, 5, ..., max_kernel`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlurParams {
    pub max_kernel: u32,
}

impl BlurParams {
    /// `max_kernel` odd, 3..=31.
    pub fn validate(&self) -> Result<()> {
        let k = self.max_kernel;
        if (3..=31).contains(&k) && k % 2 == 1 {
            Ok(())
        } else {
            Err(Error::msg(format!(
                "blur: max_kernel {k} must be odd and within 3..=31"
            )))
        }
    }
}

/// Gaussian noise whose standard deviation (in 0..255 pixel units) is drawn uniformly from
/// `0..max_std` per image, then added independently to every channel of every pixel.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoiseParams {
    pub max_std: f32,
}

impl NoiseParams {
    /// `max_std` within 0..=64.
    pub fn validate(&self) -> Result<()> {
        if self.max_std.is_finite() && (0.0..=64.0).contains(&self.max_std) {
            Ok(())
        } else {
            Err(Error::msg(format!(
                "noise: max_std {} must lie in 0..=64",
                self.max_std
            )))
        }
    }
}

/// cv2 `BORDER_REFLECT_101` index (`gfedcb|abcdefgh|gfedcba`).
fn reflect101(i: i64, n: i64) -> usize {
    if n == 1 {
        return 0;
    }
    let period = 2 * n - 2;
    let i = i.rem_euclid(period);
    (if i >= n { period - i } else { i }) as usize
}

/// Mean over a `k × k` window (k odd), border reflect-101, rounded to nearest. Running
/// window sums along rows, then along columns: cost independent of `k`.
pub fn box_blur(img: &RgbImage, k: u32) -> RgbImage {
    let (w, h) = (img.width() as usize, img.height() as usize);
    if w == 0 || h == 0 || k <= 1 {
        return img.clone();
    }
    let (k, r) = (k as usize, (k / 2) as i64);
    // Source index of every padded position -r..n+r.
    let pad = |n: usize| -> Vec<usize> {
        (-r..n as i64 + r)
            .map(|i| reflect101(i, n as i64))
            .collect()
    };
    let (xi, yi) = (pad(w), pad(h));
    let src = img.as_raw();
    let mut rows = vec![0u32; w * h * 3];
    for y in 0..h {
        let line = &src[y * w * 3..(y + 1) * w * 3];
        let out = &mut rows[y * w * 3..(y + 1) * w * 3];
        for c in 0..3 {
            let mut acc: u32 = xi[..k].iter().map(|&i| line[i * 3 + c] as u32).sum();
            out[c] = acc;
            for x in 1..w {
                acc = acc + line[xi[x + k - 1] * 3 + c] as u32 - line[xi[x - 1] * 3 + c] as u32;
                out[x * 3 + c] = acc;
            }
        }
    }
    let area = (k * k) as u32;
    let stride = w * 3;
    let mut acc = vec![0u32; stride];
    for &j in &yi[..k] {
        for (a, &v) in acc.iter_mut().zip(&rows[j * stride..(j + 1) * stride]) {
            *a += v;
        }
    }
    let mut out = vec![0u8; w * h * 3];
    for y in 0..h {
        if y > 0 {
            let (add, sub) = (yi[y + k - 1] * stride, yi[y - 1] * stride);
            for (i, a) in acc.iter_mut().enumerate() {
                *a = *a + rows[add + i] - rows[sub + i];
            }
        }
        for (o, &a) in out[y * stride..(y + 1) * stride].iter_mut().zip(&acc) {
            *o = ((a + area / 2) / area) as u8;
        }
    }
    RgbImage::from_raw(w as u32, h as u32, out).unwrap_or_else(|| img.clone())
}

/// Draw an odd kernel size in `3..=max_kernel` and blur.
pub fn random_blur(img: &RgbImage, p: &BlurParams, rng: &mut Rng) -> RgbImage {
    let choices = (p.max_kernel.max(3) - 3) / 2 + 1;
    let k = 3 + 2 * rng.below(choices as u64) as u32;
    box_blur(img, k)
}

/// Add `N(0, std²)` to every channel, round and clamp to 0..=255.
pub fn add_noise(img: &mut RgbImage, std: f64, rng: &mut Rng) {
    if std <= 0.0 {
        return;
    }
    for v in img.iter_mut() {
        *v = (*v as f64 + std * rng.normal()).round().clamp(0.0, 255.0) as u8;
    }
}

/// Draw a standard deviation in `0..max_std` and add the noise.
pub fn random_noise(img: &mut RgbImage, p: &NoiseParams, rng: &mut Rng) {
    let std = p.max_std as f64 * rng.uniform();
    add_noise(img, std, rng);
}
