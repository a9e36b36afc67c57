//! HSV jitter (ultralytics `RandomHSV`): draw gains `r = uniform(-1, 1) × (h, s, v)`, build
//! three 256-entry look-up tables on cv2's 8-bit HSV (hue 0..180), convert, look up,
//! convert back. Geometry is untouched.
//!
//! The 8-bit conversions reproduce OpenCV 5 bit for bit (checked on all 2²⁴ RGB and all
//! 180·2¹⁶ HSV triples when the fixture was made, and on a sample of them in
//! tests/data_augment.rs): RGB→HSV is cv2's integer formula (12-bit fixed-point divide
//! tables); HSV→RGB is its SIMD float path (f32, fused multiply-add in the two sector
//! terms, truncation to u8).
use crate::tensor::Rng;
use crate::{Error, Result};
use image::RgbImage;
use serde::{Deserialize, Serialize};
use std::sync::OnceLock;

/// Maximum gains: each channel's gain is uniform in `±h`, `±s`, `±v`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HsvParams {
    pub h: f32,
    pub s: f32,
    pub v: f32,
}

impl Default for HsvParams {
    /// ultralytics' defaults (hsv_h 0.015, hsv_s 0.7, hsv_v 0.4).
    fn default() -> Self {
        HsvParams {
            h: 0.015,
            s: 0.7,
            v: 0.4,
        }
    }
}

impl HsvParams {
    /// Gains in 0..=1.
    pub fn validate(&self) -> Result<()> {
        if [self.h, self.s, self.v]
            .iter()
            .all(|g| g.is_finite() && (0.0..=1.0).contains(g))
        {
            Ok(())
        } else {
            Err(Error::msg(format!("hsv: gains {self:?} must lie in 0..=1")))
        }
    }
}

const HSV_SHIFT: u32 = 12;

/// cv2's divide tables: `sdiv[i] = round(255·2¹² / i)`, `hdiv[i] = round(180·2¹² / (6i))`.
fn div_tables() -> ([i32; 256], [i32; 256]) {
    let mut s = [0i32; 256];
    let mut h = [0i32; 256];
    for i in 1..256 {
        s[i] = ((255u32 << HSV_SHIFT) as f64 / i as f64).round_ties_even() as i32;
        h[i] = ((180u32 << HSV_SHIFT) as f64 / (6.0 * i as f64)).round_ties_even() as i32;
    }
    (s, h)
}

/// One RGB pixel to cv2 8-bit HSV (`COLOR_RGB2HSV`: hue 0..180).
fn rgb_to_hsv_with(rgb: [u8; 3], sdiv: &[i32; 256], hdiv: &[i32; 256]) -> [u8; 3] {
    let (r, g, b) = (rgb[0] as i32, rgb[1] as i32, rgb[2] as i32);
    let v = r.max(g).max(b);
    let diff = v - r.min(g).min(b);
    let round = 1 << (HSV_SHIFT - 1);
    let s = (diff * sdiv[v as usize] + round) >> HSV_SHIFT;
    let h = if v == r {
        g - b
    } else if v == g {
        b - r + 2 * diff
    } else {
        r - g + 4 * diff
    };
    let mut h = (h * hdiv[diff as usize] + round) >> HSV_SHIFT;
    if h < 0 {
        h += 180;
    }
    [h as u8, s as u8, v as u8]
}

/// One RGB pixel to cv2 8-bit HSV (hue 0..180, saturation and value 0..255).
pub fn rgb_to_hsv(rgb: [u8; 3]) -> [u8; 3] {
    let (s, h) = div_tables();
    rgb_to_hsv_with(rgb, &s, &h)
}

/// The factors that multiply `v` for (r, g, b) in cv2's HSV→RGB (OpenCV 5 SIMD path): one
/// of `1`, `1 - s`, `1 - s·f`, `1 - s·(1 - f)` per channel by 60° sector, in f32 with the
/// two sector terms fused (one rounding), as the vector code computes them.
fn factors(h: u8, s: u8) -> [f32; 3] {
    let hscale = 6.0f32 / 180.0;
    let h = h as f32 * hscale;
    let s = s as f32 * (1.0f32 / 255.0);
    let pre = h.trunc();
    let f = h - pre;
    // 1 - a·b with one rounding (the f64 product of two f32 is exact).
    let one_minus = |a: f32, b: f32| (1.0 - a as f64 * b as f64) as f32;
    let tab = [1.0, 1.0 - s, one_minus(s, f), one_minus(s, 1.0 - f)];
    // Which of the four lands in (b, g, r) for each sector (cv2 sector_data).
    const SECTOR: [[usize; 3]; 6] = [
        [1, 3, 0],
        [1, 0, 2],
        [3, 0, 1],
        [0, 2, 1],
        [0, 1, 3],
        [2, 1, 0],
    ];
    let [bi, gi, ri] = SECTOR[(pre as usize) % 6];
    [tab[ri], tab[gi], tab[bi]]
}

/// `factors` for every (h, s), built once per process.
fn factor_table() -> &'static [[f32; 3]] {
    static TABLE: OnceLock<Vec<[f32; 3]>> = OnceLock::new();
    TABLE.get_or_init(|| {
        (0..=255u8)
            .flat_map(|h| (0..=255u8).map(move |s| factors(h, s)))
            .collect()
    })
}

/// `v · factor` to u8 as cv2's vector path does: scale by 255, truncate, saturate (`as`
/// truncates toward zero and saturates, without a libm call).
#[inline]
fn channel(v: f32, factor: f32) -> u8 {
    (v * factor * 255.0) as u8
}

/// One cv2 8-bit HSV pixel back to RGB (`COLOR_HSV2RGB`, OpenCV 5 SIMD path).
pub fn hsv_to_rgb(hsv: [u8; 3]) -> [u8; 3] {
    let v = hsv[2] as f32 * (1.0f32 / 255.0);
    factors(hsv[0], hsv[1]).map(|f| channel(v, f))
}

/// The three look-up tables for gains `r` (ultralytics: hue `(x + r₀·180) mod 180`, sat and
/// val `clip(x·(1 + r), 0, 255)`, all truncated to u8; `sat[0] = 0` keeps greys grey).
pub fn hsv_luts(r: [f64; 3]) -> [[u8; 256]; 3] {
    let [mut hue, mut sat, mut val] = [[0u8; 256]; 3];
    for (x, ((h, s), v)) in hue.iter_mut().zip(&mut sat).zip(&mut val).enumerate() {
        let xf = x as f64;
        *h = (xf + r[0] * 180.0).rem_euclid(180.0) as u8;
        *s = (xf * (r[1] + 1.0)).clamp(0.0, 255.0) as u8;
        *v = (xf * (r[2] + 1.0)).clamp(0.0, 255.0) as u8;
    }
    let mut lut = [hue, sat, val];
    lut[1][0] = 0;
    lut
}

/// Apply fixed gains `r` (each in -1..=1) to every pixel.
pub fn apply_hsv_gains(img: &mut RgbImage, r: [f64; 3]) {
    let lut = hsv_luts(r);
    let (sdiv, hdiv) = div_tables();
    let table = factor_table();
    for px in img.pixels_mut() {
        let [h, s, v] = rgb_to_hsv_with(px.0, &sdiv, &hdiv);
        let (h, s) = (lut[0][h as usize] as usize, lut[1][s as usize] as usize);
        let v = lut[2][v as usize] as f32 * (1.0f32 / 255.0);
        px.0 = table[h * 256 + s].map(|f| channel(v, f));
    }
}

/// Draw gains and apply them. With all three gains zero nothing is drawn and the image
/// is left exactly as it was (ultralytics skips the round trip, which is lossy in 8 bits).
pub fn random_hsv(img: &mut RgbImage, p: &HsvParams, rng: &mut Rng) {
    if p.h == 0.0 && p.s == 0.0 && p.v == 0.0 {
        return;
    }
    let g = [p.h as f64, p.s as f64, p.v as f64];
    let r = g.map(|gain| (2.0 * rng.uniform() - 1.0) * gain);
    apply_hsv_gains(img, r);
}
