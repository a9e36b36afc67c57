//! OpenCV's `cv2.resize(..., interpolation=INTER_LINEAR)` on 8-bit images, bit for bit.
//!
//! Reference: OpenCV `modules/imgproc/src/resize.cpp` (`cv::hal::resize`, `HResizeLinear`,
//! `VResizeLinear<uchar, int, short, FixedPtCast<...>>`, `resizeAreaFast_`), checked
//! against opencv-python 5.0.0 by tests/data_preprocess.rs. The scheme:
//! - scale = 1 / (dst / src) in f64; source coordinate `(d + 0.5) * scale - 0.5` rounded to
//!   f32, floor = left tap, fraction → weights `1 - f`, `f` in 11-bit fixed point
//!   (`INTER_RESIZE_COEF_BITS`), rounded half-to-even;
//! - horizontal taps outside the image collapse to the edge pixel (weight 2048 on it);
//!   vertical taps are clamped row indices;
//! - the vertical pass uses OpenCV's exact integer rounding:
//!   `((b0 * (h0 >> 4)) >> 16) + ((b1 * (h1 >> 4)) >> 16) + 2) >> 2`;
//! - an exact 2× downscale on both axes switches to INTER_AREA's fast path, a 2×2 mean
//!   `(a + b + c + d + 2) >> 2`, as OpenCV does.
use image::RgbImage;

const COEF_BITS: u32 = 11;
const COEF_SCALE: f32 = (1 << COEF_BITS) as f32;
const CN: usize = 3;

/// Resize `src` to `dst_w`×`dst_h` like `cv2.resize` with `INTER_LINEAR` (a 0 size is taken
/// as 1; an empty `src` gives black).
pub fn resize_linear_cv2(src: &RgbImage, dst_w: u32, dst_h: u32) -> RgbImage {
    let (sw, sh) = (src.width() as usize, src.height() as usize);
    let (dw, dh) = (dst_w.max(1) as usize, dst_h.max(1) as usize);
    if sw == 0 || sh == 0 {
        return RgbImage::new(dw as u32, dh as u32); // nothing to sample: black
    }
    if (sw, sh) == (dw, dh) {
        return src.clone();
    }
    if sw == 2 * dw && sh == 2 * dh {
        return area_fast_2x(src, dw, dh);
    }
    let px: &[[u8; CN]] = bytemuck::cast_slice(src.as_raw());
    let xt = taps(sw, dw);
    let yt = taps(sh, dh);
    let row_of = |r: i64| r.clamp(0, sh as i64 - 1) as usize;
    let row_len = dw * CN;

    // Horizontal pass (values ×2048) into a two-row cache keyed by source row, as OpenCV
    // does: output rows walk the source rows in increasing order, so each is computed once.
    let hrow = |y: usize, out: &mut [i32]| {
        let row = &px[y * sw..(y + 1) * sw];
        for (o, t) in out.chunks_exact_mut(CN).zip(&xt) {
            let p0 = row[t.src];
            if t.interior {
                let p1 = row[t.src + 1];
                for c in 0..CN {
                    o[c] = p0[c] as i32 * t.w0 + p1[c] as i32 * t.w1;
                }
            } else {
                for c in 0..CN {
                    o[c] = p0[c] as i32 * (1 << COEF_BITS);
                }
            }
        }
    };
    let mut cache = [
        (usize::MAX, vec![0i32; row_len]),
        (usize::MAX, vec![0i32; row_len]),
    ];
    let mut dst = vec![0u8; dh * row_len];
    for (out, t) in dst.chunks_exact_mut(row_len).zip(&yt) {
        let (r0, r1) = (row_of(t.raw), row_of(t.raw + 1));
        if cache[0].0 != r0 {
            if cache[1].0 == r0 {
                cache.swap(0, 1); // moving down one row: the old bottom row is the new top
            } else {
                hrow(r0, &mut cache[0].1);
                cache[0].0 = r0;
            }
        }
        if cache[1].0 != r1 {
            hrow(r1, &mut cache[1].1);
            cache[1].0 = r1;
        }
        let (h0, h1) = (&cache[0].1, &cache[1].1);
        let (b0, b1) = (t.raw_w0, t.raw_w1);
        for ((o, &a), &b) in out.iter_mut().zip(h0).zip(h1) {
            *o = ((((b0 * (a >> 4)) >> 16) + ((b1 * (b >> 4)) >> 16) + 2) >> 2) as u8;
        }
    }
    RgbImage::from_raw(dw as u32, dh as u32, dst).expect("buffer sized dw*dh*3")
}

/// One output coordinate's taps.
struct Tap {
    /// Left/top tap after OpenCV's edge handling (horizontal use).
    src: usize,
    /// Horizontal: both taps inside the image (`dx < xmax` in OpenCV).
    interior: bool,
    w0: i32,
    w1: i32,
    /// Unclamped floor of the source coordinate and its weights (vertical use: OpenCV
    /// clamps the row indices, not the weights).
    raw: i64,
    raw_w0: i32,
    raw_w1: i32,
}

/// cvRound then saturate to i16, as `saturate_cast<short>(float)`.
fn coef(v: f32) -> i32 {
    (v * COEF_SCALE).round_ties_even().clamp(-32768.0, 32767.0) as i32
}

fn taps(src: usize, dst: usize) -> Vec<Tap> {
    let inv_scale = dst as f64 / src as f64;
    let scale = 1.0 / inv_scale;
    let mut xmax = dst;
    let mut out = Vec::with_capacity(dst);
    for d in 0..dst {
        let f = ((d as f64 + 0.5) * scale - 0.5) as f32;
        let sx = f.floor();
        let frac = f - sx;
        let raw = sx as i64;
        let (raw_w0, raw_w1) = (coef(1.0 - frac), coef(frac));
        let (mut s, mut fx) = (raw, frac);
        if s < 0 {
            s = 0;
            fx = 0.0;
        }
        if s + 1 >= src as i64 {
            xmax = xmax.min(d);
            if s >= src as i64 - 1 {
                s = src as i64 - 1;
                fx = 0.0;
            }
        }
        out.push(Tap {
            src: s as usize,
            interior: true,
            w0: coef(1.0 - fx),
            w1: coef(fx),
            raw,
            raw_w0,
            raw_w1,
        });
    }
    for t in out.iter_mut().skip(xmax) {
        t.interior = false;
    }
    out
}

/// INTER_AREA fast path for an exact 2× reduction: rounded mean of each 2×2 block.
fn area_fast_2x(src: &RgbImage, dw: usize, dh: usize) -> RgbImage {
    let s = src.as_raw();
    let stride = src.width() as usize * CN;
    let mut dst = vec![0u8; dw * dh * CN];
    for (dy, out) in dst.chunks_exact_mut(dw * CN).enumerate() {
        let r0 = &s[2 * dy * stride..(2 * dy + 1) * stride];
        let r1 = &s[(2 * dy + 1) * stride..(2 * dy + 2) * stride];
        for dx in 0..dw {
            for c in 0..CN {
                let i = 2 * dx * CN + c;
                let sum = r0[i] as u32 + r0[i + CN] as u32 + r1[i] as u32 + r1[i + CN] as u32;
                out[dx * CN + c] = ((sum + 2) >> 2) as u8;
            }
        }
    }
    RgbImage::from_raw(dw as u32, dh as u32, dst).expect("buffer sized dw*dh*3")
}
