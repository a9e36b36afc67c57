//! PyTorch's antialiased bilinear resize on uint8 images (`F.interpolate(mode="bilinear",
//! antialias=True, align_corners=False)`, which torchvision's `resize` calls for uint8
//! tensors on CPUs with AVX2/AVX512 or on ARM), bit for bit.
//!
//! Reference: PyTorch `aten/src/ATen/native/cpu/UpSampleKernel.cpp`
//! (`_compute_indices_min_size_weights_aa`, `_compute_index_ranges_int16_weights`) and
//! `UpSampleKernelAVXAntialias.h` (the PIL-SIMD style separable loops), checked against
//! torch 2.15 / torchvision 0.29 by tests/data_preprocess.rs. The scheme, per axis:
//! - scale = in / out; support = max(scale, 1) (triangle filter widened on downscale);
//! - output i covers input [int(c − support + 0.5), int(c + support + 0.5)) with
//!   c = scale·(i + 0.5); weights tri((j − c + 0.5) / max(scale, 1)), normalised to sum 1;
//! - weights → int16 with one precision per axis, the largest p ≤ 22 with
//!   round(w_max · 2^(p+1)) < 2^15; accumulate from 2^(p−1), shift by p, clamp to 0..255.
//!
//! The horizontal pass runs first (into a u8 buffer), then the vertical one; an axis whose
//! size does not change is skipped.
use image::RgbImage;

const CN: usize = 3;

/// Resize `src` to `dst_w`×`dst_h` like torch's uint8 antialiased bilinear (a 0 size is
/// taken as 1; an empty `src` gives black; the same size gives an identical copy).
pub fn resize_bilinear_aa_torch(src: &RgbImage, dst_w: u32, dst_h: u32) -> RgbImage {
    let (sw, sh) = (src.width() as usize, src.height() as usize);
    let (dw, dh) = (dst_w.max(1) as usize, dst_h.max(1) as usize);
    if sw == 0 || sh == 0 {
        return RgbImage::new(dw as u32, dh as u32); // nothing to sample: black
    }
    let mut cur = src.as_raw().clone();
    if dw != sw {
        let ax = AxisWeights::new(sw, dw);
        let mut out = vec![0u8; sh * dw * CN];
        for (irow, orow) in cur.chunks_exact(sw * CN).zip(out.chunks_exact_mut(dw * CN)) {
            for (x, o) in orow.chunks_exact_mut(CN).enumerate() {
                let (start, w) = ax.taps(x);
                let mut acc = [ax.round; CN];
                for (k, &wk) in w.iter().enumerate() {
                    let p = &irow[(start + k) * CN..(start + k + 1) * CN];
                    for c in 0..CN {
                        acc[c] += p[c] as i32 * wk as i32;
                    }
                }
                for c in 0..CN {
                    o[c] = ax.finish(acc[c]);
                }
            }
        }
        cur = out;
    }
    if dh != sh {
        let ax = AxisWeights::new(sh, dh);
        let row = dw * CN;
        let mut out = vec![0u8; dh * row];
        let mut acc = vec![0i32; row];
        for (y, orow) in out.chunks_exact_mut(row).enumerate() {
            let (start, w) = ax.taps(y);
            acc.fill(ax.round);
            for (k, &wk) in w.iter().enumerate() {
                let irow = &cur[(start + k) * row..(start + k + 1) * row];
                for (a, &p) in acc.iter_mut().zip(irow) {
                    *a += p as i32 * wk as i32;
                }
            }
            for (o, &a) in orow.iter_mut().zip(&acc) {
                *o = ax.finish(a);
            }
        }
        cur = out;
    }
    RgbImage::from_raw(dw as u32, dh as u32, cur).expect("buffer sized dw*dh*3")
}

/// Fixed-point taps for one axis.
struct AxisWeights {
    start: Vec<usize>,
    len: Vec<usize>,
    /// `out × kmax` int16 weights, row i valid for `len[i]` entries.
    w: Vec<i16>,
    kmax: usize,
    precision: u32,
    round: i32,
}

impl AxisWeights {
    fn new(input: usize, output: usize) -> Self {
        let scale = input as f64 / output as f64;
        let support = if scale >= 1.0 { scale } else { 1.0 };
        let kmax = support.ceil() as usize * 2 + 1;
        let invscale = if scale >= 1.0 { 1.0 / scale } else { 1.0 };
        let mut start = vec![0usize; output];
        let mut len = vec![0usize; output];
        let mut wf = vec![0f64; output * kmax];
        let mut wt_max = 0f64;
        for i in 0..output {
            let center = scale * (i as f64 + 0.5);
            let xmin = ((center - support + 0.5) as i64).max(0);
            let xsize = (((center + support + 0.5) as i64).min(input as i64) - xmin)
                .clamp(0, kmax as i64) as usize;
            let row = &mut wf[i * kmax..i * kmax + xsize];
            let mut total = 0f64;
            for (j, w) in row.iter_mut().enumerate() {
                let x = ((j as i64 + xmin) as f64 - center + 0.5) * invscale;
                *w = triangle(x);
                total += *w;
            }
            if total != 0.0 {
                for w in row.iter_mut() {
                    *w /= total;
                    wt_max = wt_max.max(*w);
                }
            }
            start[i] = xmin as usize;
            len[i] = xsize;
        }
        let mut precision = 0u32;
        while precision < 22 {
            let next = (0.5 + wt_max * (1u64 << (precision + 1)) as f64) as i64;
            if next >= 1 << 15 {
                break;
            }
            precision += 1;
        }
        let unit = (1u64 << precision) as f64;
        let w = wf
            .iter()
            .map(|&v| {
                let v = v * unit;
                (if v < 0.0 { v - 0.5 } else { v + 0.5 }) as i16
            })
            .collect();
        AxisWeights {
            start,
            len,
            w,
            kmax,
            precision,
            round: 1 << (precision.max(1) - 1),
        }
    }

    fn taps(&self, i: usize) -> (usize, &[i16]) {
        let w = &self.w[i * self.kmax..i * self.kmax + self.len[i]];
        (self.start[i], w)
    }

    fn finish(&self, acc: i32) -> u8 {
        (acc >> self.precision).clamp(0, 255) as u8
    }
}

/// The bilinear ("triangle") filter.
fn triangle(x: f64) -> f64 {
    let x = x.abs();
    if x < 1.0 { 1.0 - x } else { 0.0 }
}
