//! Nearest and bilinear resizing of `[planes, h, w]` data with PyTorch's index rules.
//! Source indices and weights are computed once per axis, then applied to every plane.
use crate::tensor::Float;
use rayon::prelude::*;

/// torch's legacy 'nearest' source index: `min(floor(dst · (in/out)), in-1)` with the scale
/// and the product in f32, exactly as its CPU kernel does (so rounding matches too).
pub fn nearest_index(dst: usize, inp: usize, out: usize) -> usize {
    let scale = inp as f32 / out as f32;
    ((dst as f32 * scale).floor() as usize).min(inp - 1)
}

/// The two source taps and their weights for one output coordinate of a linear resize.
#[derive(Clone, Copy, Debug)]
pub struct Tap<T> {
    pub i0: usize,
    pub i1: usize,
    pub l0: T,
    pub l1: T,
}

/// torch's `area_pixel_compute_source_index` + `guard_index_and_lambda`, in the compute
/// type `T` (f32 for f32 data, as torch's opmath).
pub fn linear_taps<T: Float>(inp: usize, out: usize, align_corners: bool) -> Vec<Tap<T>> {
    let scale = if align_corners {
        if out > 1 {
            T::from_f64((inp - 1) as f64) / T::from_f64((out - 1) as f64)
        } else {
            T::ZERO
        }
    } else {
        T::from_f64(inp as f64) / T::from_f64(out as f64)
    };
    let half = T::from_f64(0.5);
    (0..out)
        .map(|d| {
            let dst = T::from_f64(d as f64);
            let src = if align_corners {
                scale * dst
            } else {
                (scale * (dst + half) - half).max(T::ZERO)
            };
            let i0 = (src.floor().to_f64() as usize).min(inp - 1);
            let l = (src - T::from_f64(i0 as f64)).max(T::ZERO).min(T::ONE);
            let i1 = if i0 + 1 < inp { i0 + 1 } else { i0 };
            Tap {
                i0,
                i1,
                l0: T::ONE - l,
                l1: l,
            }
        })
        .collect()
}

pub fn upsample_nearest2d<T: Float>(
    x: &[T],
    planes: usize,
    (h, w): (usize, usize),
    (ho, wo): (usize, usize),
) -> Vec<T> {
    let sy: Vec<usize> = (0..ho).map(|d| nearest_index(d, h, ho)).collect();
    let sx: Vec<usize> = (0..wo).map(|d| nearest_index(d, w, wo)).collect();
    let mut out = vec![T::ZERO; planes * ho * wo];
    if out.is_empty() {
        return out;
    }
    out.par_chunks_mut(ho * wo).enumerate().for_each(|(pl, o)| {
        let src = &x[pl * h * w..][..h * w];
        for (row, &y) in o.chunks_mut(wo).zip(&sy) {
            for (v, &xx) in row.iter_mut().zip(&sx) {
                *v = src[y * w + xx];
            }
        }
    });
    out
}

pub fn upsample_nearest2d_backward<T: Float>(
    gy: &[T],
    planes: usize,
    (h, w): (usize, usize),
    (ho, wo): (usize, usize),
) -> Vec<T> {
    let sy: Vec<usize> = (0..ho).map(|d| nearest_index(d, h, ho)).collect();
    let sx: Vec<usize> = (0..wo).map(|d| nearest_index(d, w, wo)).collect();
    let mut dx = vec![T::ZERO; planes * h * w];
    if dx.is_empty() {
        return dx;
    }
    dx.par_chunks_mut(h * w).enumerate().for_each(|(pl, d)| {
        let g = &gy[pl * ho * wo..][..ho * wo];
        for (row, &y) in g.chunks(wo).zip(&sy) {
            for (&v, &xx) in row.iter().zip(&sx) {
                d[y * w + xx] += v;
            }
        }
    });
    dx
}

pub fn upsample_bilinear2d<T: Float>(
    x: &[T],
    planes: usize,
    (h, w): (usize, usize),
    (ho, wo): (usize, usize),
    align_corners: bool,
) -> Vec<T> {
    let ty = linear_taps::<T>(h, ho, align_corners);
    let tx = linear_taps::<T>(w, wo, align_corners);
    let mut out = vec![T::ZERO; planes * ho * wo];
    if out.is_empty() {
        return out;
    }
    out.par_chunks_mut(ho * wo).enumerate().for_each(|(pl, o)| {
        let src = &x[pl * h * w..][..h * w];
        for (row, a) in o.chunks_mut(wo).zip(&ty) {
            let (r0, r1) = (&src[a.i0 * w..][..w], &src[a.i1 * w..][..w]);
            for (v, b) in row.iter_mut().zip(&tx) {
                *v = a.l0 * (b.l0 * r0[b.i0] + b.l1 * r0[b.i1])
                    + a.l1 * (b.l0 * r1[b.i0] + b.l1 * r1[b.i1]);
            }
        }
    });
    out
}

pub fn upsample_bilinear2d_backward<T: Float>(
    gy: &[T],
    planes: usize,
    (h, w): (usize, usize),
    (ho, wo): (usize, usize),
    align_corners: bool,
) -> Vec<T> {
    let ty = linear_taps::<T>(h, ho, align_corners);
    let tx = linear_taps::<T>(w, wo, align_corners);
    let mut dx = vec![T::ZERO; planes * h * w];
    if dx.is_empty() {
        return dx;
    }
    dx.par_chunks_mut(h * w).enumerate().for_each(|(pl, d)| {
        let g = &gy[pl * ho * wo..][..ho * wo];
        for (row, a) in g.chunks(wo).zip(&ty) {
            for (&v, b) in row.iter().zip(&tx) {
                d[a.i0 * w + b.i0] += a.l0 * b.l0 * v;
                d[a.i0 * w + b.i1] += a.l0 * b.l1 * v;
                d[a.i1 * w + b.i0] += a.l1 * b.l0 * v;
                d[a.i1 * w + b.i1] += a.l1 * b.l1 * v;
            }
        }
    });
    dx
}
