//! Random affine warp: ultralytics `RandomPerspective` with perspective 0
//! (ultralytics/data/augment.py, `_compute_affine_matrix`, `apply_instances`,
//! `box_candidates`).
//!
//! `M = T · S · R · C`: C moves the input's centre to the origin, R rotates by
//! `a ∈ ±degrees` and scales by `s ∈ [1 - scale, 1 + scale]` (cv2 `getRotationMatrix2D`
//! convention), S shears by `±shear` degrees in x and y, T places the centre at
//! `(0.5 ± translate) × output size`. The image is resampled bilinearly with fill 114 the
//! way OpenCV 5's `warpAffine` vector path does it (f32 source coordinates by fused
//! multiply-add, f32 interpolation, round half to even), so on the same matrix our pixels
//! equal cv2's, except in the last few columns of a row when the width is not a multiple
//! of cv2's vector width: there cv2's scalar loop rounds differently (2 of 185,022 values,
//! each off by one, in a 20-image trial; the fixture in tests/fixtures uses widths that
//! avoid the tail and matches exactly). Masks are resampled with nearest
//! (stay exactly 0/1). A box comes from its warped mask when the instance has one, else
//! from the 4 transformed corners (in pixel-centre coordinates, see [`in_pixel_centres`]:
//! the one place we differ from ultralytics, by under a pixel), clipped to the output;
//! `box_candidates` then removes instances that left the frame or were squashed.
//!
//! Sines and cosines use our own polynomial so the same seed gives the same matrix on
//! every platform (like `tensor::rng`'s portable log).
use super::boxes::{area_threshold, box_candidate, clip_box, mask_box};
use crate::data::{Instance, Sample};
use crate::tensor::Rng;
use crate::{Error, Result};
use image::{GrayImage, RgbImage};
use serde::{Deserialize, Serialize};

/// Ranges of the random affine; every value is a ± range around the identity placement.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AffineParams {
    /// Rotation, uniform in `±degrees`.
    pub degrees: f32,
    /// Translation of the centre, uniform in `±translate` × output size.
    pub translate: f32,
    /// Scale factor uniform in `[1 - scale, 1 + scale]`.
    pub scale: f32,
    /// Shear angles (x and y drawn separately), uniform in `±shear` degrees.
    pub shear: f32,
}

impl Default for AffineParams {
    /// ultralytics' defaults: translate 0.1, scale 0.5, no rotation or shear.
    fn default() -> Self {
        AffineParams {
            degrees: 0.0,
            translate: 0.1,
            scale: 0.5,
            shear: 0.0,
        }
    }
}

impl AffineParams {
    /// Ranges that make a usable matrix: degrees 0..=180, translate 0..=1, scale 0..1 (so
    /// the factor stays positive), shear 0..=45.
    pub fn validate(&self) -> Result<()> {
        let ok =
            |v: f32, hi: f32, open: bool| v.is_finite() && v >= 0.0 && (v < hi || !open && v == hi);
        if !(ok(self.degrees, 180.0, false)
            && ok(self.translate, 1.0, false)
            && ok(self.scale, 1.0, true)
            && ok(self.shear, 45.0, false))
        {
            return Err(Error::msg(format!(
                "affine: {self:?} out of range (degrees 0..=180, translate 0..=1, scale 0..<1, shear 0..=45)"
            )));
        }
        Ok(())
    }
}

/// A 2×3 affine matrix, row-major: `x' = m[0]·x + m[1]·y + m[2]`, `y' = m[3]·x + m[4]·y + m[5]`.
pub type Mat = [f64; 6];

/// `a ∘ b` (apply `b` first).
pub fn compose(a: &Mat, b: &Mat) -> Mat {
    [
        a[0] * b[0] + a[1] * b[3],
        a[0] * b[1] + a[1] * b[4],
        a[0] * b[2] + a[1] * b[5] + a[2],
        a[3] * b[0] + a[4] * b[3],
        a[3] * b[1] + a[4] * b[4],
        a[3] * b[2] + a[4] * b[5] + a[5],
    ]
}

/// Inverse, computed as cv2 `invertAffineTransform` does (a singular matrix gives zeros).
pub fn invert(m: &Mat) -> Mat {
    let d = m[0] * m[4] - m[1] * m[3];
    let d = if d != 0.0 { 1.0 / d } else { 0.0 };
    let (a0, a1, a3, a4) = (m[4] * d, m[1] * -d, m[3] * -d, m[0] * d);
    [
        a0,
        a1,
        -a0 * m[2] - a1 * m[5],
        a3,
        a4,
        -a3 * m[2] - a4 * m[5],
    ]
}

/// Apply `m` to a point.
pub fn transform_point(m: &Mat, x: f64, y: f64) -> (f64, f64) {
    (m[0] * x + m[1] * y + m[2], m[3] * x + m[4] * y + m[5])
}

/// `m` as it acts on continuous box coordinates. cv2 puts pixel `i`'s sample at coordinate
/// `i`, boxes put its centre at `i + 0.5`, so the warp moves a box point `u` to
/// `m(u - ½) + ½`. ultralytics applies `m` to box corners directly, which drifts by
/// `(I - A)·(½, ½)` (up to a pixel at 180°) from the pixels; we stay on them.
pub fn in_pixel_centres(m: &Mat) -> Mat {
    let to_cv: Mat = [1.0, 0.0, -0.5, 0.0, 1.0, -0.5];
    let back: Mat = [1.0, 0.0, 0.5, 0.0, 1.0, 0.5];
    compose(&back, &compose(m, &to_cv))
}

/// Box of the 4 transformed corners (ultralytics `apply_bboxes`), not clipped.
pub fn transform_box(m: &Mat, b: [f32; 4]) -> [f32; 4] {
    let (mut lo, mut hi) = ([f64::INFINITY; 2], [f64::NEG_INFINITY; 2]);
    for (x, y) in [(b[0], b[1]), (b[2], b[3]), (b[0], b[3]), (b[2], b[1])] {
        let (u, v) = transform_point(m, x as f64, y as f64);
        lo = [lo[0].min(u), lo[1].min(v)];
        hi = [hi[0].max(u), hi[1].max(v)];
    }
    [lo[0] as f32, lo[1] as f32, hi[0] as f32, hi[1] as f32]
}

fn uniform(rng: &mut Rng, lo: f64, hi: f64) -> f64 {
    lo + (hi - lo) * rng.uniform()
}

/// Draw the matrix for an input of `in_w × in_h` warped onto `out_w × out_h`; returns it with
/// the drawn scale factor (needed by `box_candidates`). Draw order follows ultralytics:
/// angle, scale, shear x, shear y, translate x, translate y.
pub fn random_matrix(
    p: &AffineParams,
    in_w: u32,
    in_h: u32,
    out_w: u32,
    out_h: u32,
    rng: &mut Rng,
) -> (Mat, f64) {
    let (deg, tr, sc, sh) = (
        p.degrees as f64,
        p.translate as f64,
        p.scale as f64,
        p.shear as f64,
    );
    let a = uniform(rng, -deg, deg);
    let s = uniform(rng, 1.0 - sc, 1.0 + sc);
    let shx = tan_deg(uniform(rng, -sh, sh));
    let shy = tan_deg(uniform(rng, -sh, sh));
    let tx = uniform(rng, 0.5 - tr, 0.5 + tr) * out_w as f64;
    let ty = uniform(rng, 0.5 - tr, 0.5 + tr) * out_h as f64;
    let (sin, cos) = sin_cos_deg(a);
    let c: Mat = [
        1.0,
        0.0,
        -(in_w as f64) / 2.0,
        0.0,
        1.0,
        -(in_h as f64) / 2.0,
    ];
    // cv2.getRotationMatrix2D(angle=a, center=(0, 0), scale=s)
    let r: Mat = [s * cos, s * sin, 0.0, -s * sin, s * cos, 0.0];
    let shear: Mat = [1.0, shx, 0.0, shy, 1.0, 0.0];
    let t: Mat = [1.0, 0.0, tx, 0.0, 1.0, ty];
    (compose(&t, &compose(&shear, &compose(&r, &c))), s)
}

/// Draw a matrix and apply it; returns the warped sample and how many instances
/// `box_candidates` removed.
pub fn random_affine(
    s: Sample,
    p: &AffineParams,
    out_w: u32,
    out_h: u32,
    rng: &mut Rng,
) -> (Sample, usize) {
    let (m, scale) = random_matrix(p, s.width(), s.height(), out_w, out_h, rng);
    apply_matrix(s, &m, scale, out_w, out_h)
}

/// Warp a sample with `m` onto `out_w × out_h`. `scale` is the isotropic scale inside `m`
/// (ultralytics compares the new box with the old one multiplied by it). Returns the
/// sample and the number of instances removed by `box_candidates`.
pub fn apply_matrix(s: Sample, m: &Mat, scale: f64, out_w: u32, out_h: u32) -> (Sample, usize) {
    let image = warp_image(&s.image, m, out_w, out_h, 114);
    let centred = in_pixel_centres(m);
    let mut instances = Vec::with_capacity(s.instances.len());
    let mut removed = 0;
    for inst in s.instances {
        let before = inst.bbox.map(|v| v * scale as f32);
        let thr = area_threshold(&inst);
        let (bbox, mask) = match &inst.mask {
            Some(mk) => {
                let (wm, b) = warp_mask_boxed(mk, m, out_w, out_h);
                (b.unwrap_or([0.0; 4]), Some(wm))
            }
            None => (
                clip_box(transform_box(&centred, inst.bbox), out_w, out_h),
                None,
            ),
        };
        if box_candidate(before, bbox, thr) {
            instances.push(Instance { bbox, mask, ..inst });
        } else {
            removed += 1;
        }
    }
    (
        Sample {
            id: s.id,
            image,
            instances,
        },
        removed,
    )
}

/// `a·b + c` with one rounding, as cv2's `v_fma`: the f64 product of two f32 is exact, so
/// only the sum rounds (twice, f64 then f32, which differs from a true fma only when the
/// f64 sum lands exactly on an f32 midpoint).
#[inline]
fn fma(a: f32, b: f32, c: f32) -> f32 {
    (a as f64 * b as f64 + c as f64) as f32
}

/// Source coordinates of destination pixels, computed as OpenCV 5's warpAffine does:
/// inverse matrix in f64, cast to f32, row base `y·m1 + m2` in f32, then `fma(m0, x, base)`.
struct SourceCoords {
    m: [f32; 6],
}

impl SourceCoords {
    fn new(m: &Mat) -> Self {
        SourceCoords {
            m: invert(m).map(|v| v as f32),
        }
    }
    #[inline]
    fn row(&self, y: u32) -> (f32, f32) {
        let yf = y as f32;
        (yf * self.m[1] + self.m[2], yf * self.m[4] + self.m[5])
    }
    #[inline]
    fn at(&self, x: u32, row: (f32, f32)) -> (f32, f32) {
        let xf = x as f32;
        (fma(self.m[0], xf, row.0), fma(self.m[3], xf, row.1))
    }
}

/// Round to nearest, ties to even, for `|x| < 2²²`: adding and removing 1.5·2²³ leaves
/// the hardware's default rounding to do it (no libm call on baseline x86-64).
#[inline]
fn round_even(x: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0;
    (x + MAGIC) - MAGIC
}

/// Floor as an integer for `|x| < 2³¹`.
#[inline]
fn floor_i64(x: f32) -> i64 {
    let i = x as i64;
    if (i as f32) > x { i - 1 } else { i }
}

/// Bilinear warp of an RGB image onto `out_w × out_h`; pixels that sample outside the
/// source take `fill` (cv2 `BORDER_CONSTANT`).
pub fn warp_image(img: &RgbImage, m: &Mat, out_w: u32, out_h: u32, fill: u8) -> RgbImage {
    let sc = SourceCoords::new(m);
    let (sw, sh) = (img.width() as i64, img.height() as i64);
    let src = img.as_raw();
    let mut out = vec![fill; out_w as usize * out_h as usize * 3];
    let fillf = fill as f32;
    let px = |x: i64, y: i64, c: usize| -> f32 {
        if x >= 0 && y >= 0 && x < sw && y < sh {
            src[(y * sw + x) as usize * 3 + c] as f32
        } else {
            fillf
        }
    };
    for y in 0..out_h {
        let row = sc.row(y);
        let orow = y as usize * out_w as usize * 3;
        for x in 0..out_w {
            let (sx, sy) = sc.at(x, row);
            // All four neighbours outside (or NaN): the interpolation of four fills is fill.
            if !(sx >= -1.0 && sx < sw as f32 && sy >= -1.0 && sy < sh as f32) {
                continue;
            }
            let (ix, iy) = (floor_i64(sx), floor_i64(sy));
            let (ax, ay) = (sx - ix as f32, sy - iy as f32);
            let o = orow + x as usize * 3;
            // All four neighbours inside: read them straight, else through the border.
            let inner = ix >= 0 && iy >= 0 && ix + 1 < sw && iy + 1 < sh;
            let base = if inner {
                (iy * sw + ix) as usize * 3
            } else {
                0
            };
            let row_step = sw as usize * 3;
            for c in 0..3 {
                let (p00, p01, p10, p11) = if inner {
                    let (a, b) = (base + c, base + row_step + c);
                    (
                        src[a] as f32,
                        src[a + 3] as f32,
                        src[b] as f32,
                        src[b + 3] as f32,
                    )
                } else {
                    (
                        px(ix, iy, c),
                        px(ix + 1, iy, c),
                        px(ix, iy + 1, c),
                        px(ix + 1, iy + 1, c),
                    )
                };
                let f0 = fma(ax, p01 - p00, p00);
                let f1 = fma(ax, p11 - p10, p10);
                let v = fma(ay, f1 - f0, f0);
                // v lies in 0..=255 (a convex mix of bytes); `as` saturates anyway
                out[o + c] = round_even(v) as u8;
            }
        }
    }
    RgbImage::from_raw(out_w, out_h, out).unwrap_or_else(|| RgbImage::new(out_w, out_h))
}

/// Nearest-neighbour warp of a 0/1 mask (cv2 `INTER_NEAREST`, border 0). Only the
/// destination region that can receive the mask's pixels is visited.
pub fn warp_mask(mask: &GrayImage, m: &Mat, out_w: u32, out_h: u32) -> GrayImage {
    warp_mask_boxed(mask, m, out_w, out_h).0
}

/// [`warp_mask`] and the tight box of the result, found while writing it.
pub fn warp_mask_boxed(
    mask: &GrayImage,
    m: &Mat,
    out_w: u32,
    out_h: u32,
) -> (GrayImage, Option<[f32; 4]>) {
    let mut out = GrayImage::new(out_w, out_h);
    let Some(b) = mask_box(mask) else {
        return (out, None);
    };
    // A destination pixel takes a source pixel when its source point rounds into the
    // mask's box, i.e. lies within the box grown by half a pixel; grow by one to be safe
    // and add one more pixel of margin around the transformed outline.
    let tb = transform_box(m, [b[0] - 1.0, b[1] - 1.0, b[2] + 1.0, b[3] + 1.0]);
    let x_lo = ((tb[0] - 1.0).floor().max(0.0) as u32).min(out_w);
    let y_lo = ((tb[1] - 1.0).floor().max(0.0) as u32).min(out_h);
    let x_hi = ((tb[2] + 1.0).ceil().max(0.0) as u32).min(out_w);
    let y_hi = ((tb[3] + 1.0).ceil().max(0.0) as u32).min(out_h);
    let sc = SourceCoords::new(m);
    let (sw, sh) = (mask.width() as i64, mask.height() as i64);
    let src = mask.as_raw();
    let w = out_w as usize;
    let dst: &mut [u8] = &mut out;
    let (mut lo, mut hi) = ([u32::MAX; 2], [0u32; 2]);
    for y in y_lo..y_hi {
        let row = sc.row(y);
        for x in x_lo..x_hi {
            let (sx, sy) = sc.at(x, row);
            // Outside by more than a pixel (or NaN): nothing to take.
            if !(sx > -1.0 && sy > -1.0 && sx < sw as f32 + 1.0 && sy < sh as f32 + 1.0) {
                continue;
            }
            let (rx, ry) = (round_even(sx), round_even(sy));
            if rx >= 0.0 && ry >= 0.0 && rx < sw as f32 && ry < sh as f32 {
                let v = src[(ry as i64 * sw + rx as i64) as usize];
                if v != 0 {
                    dst[y as usize * w + x as usize] = 1;
                    lo = [lo[0].min(x), lo[1].min(y)];
                    hi = [hi[0].max(x + 1), hi[1].max(y + 1)];
                }
            }
        }
    }
    let bbox =
        (lo[0] != u32::MAX).then_some([lo[0] as f32, lo[1] as f32, hi[0] as f32, hi[1] as f32]);
    (out, bbox)
}

/// `(sin, cos)` of an angle in degrees from +, −, × only: reduce to `|r| ≤ 45°` exactly in
/// degrees, then Taylor series (error below 1e-17 on `|x| ≤ π/4`).
pub fn sin_cos_deg(deg: f64) -> (f64, f64) {
    if !deg.is_finite() {
        return (f64::NAN, f64::NAN);
    }
    let k = (deg / 90.0).round();
    let x = (deg - 90.0 * k) * (std::f64::consts::PI / 180.0);
    let x2 = x * x;
    // Horner in x² of the series up to x^17 / x^18.
    let mut s = 0.0;
    let mut c = 0.0;
    for n in (0..9).rev() {
        let (ns, nc) = (
            (2 * n + 2) as f64 * (2 * n + 3) as f64,
            (2 * n + 1) as f64 * (2 * n + 2) as f64,
        );
        s = 1.0 - x2 / ns * s;
        c = 1.0 - x2 / nc * c;
    }
    let (s, c) = (x * s, c);
    match (k as i64).rem_euclid(4) {
        0 => (s, c),
        1 => (c, -s),
        2 => (-s, -c),
        _ => (-c, s),
    }
}

/// Tangent of an angle in degrees (see [`sin_cos_deg`]).
pub fn tan_deg(deg: f64) -> f64 {
    let (s, c) = sin_cos_deg(deg);
    s / c
}
