//! Softmax and log-softmax over the middle axis of contiguous data viewed as
//! [outer, red, inner], forward and backward, each one fused pass per lane.
//! The max is subtracted before `exp` so large logits cannot overflow.
use super::PAR_MIN;
use crate::tensor::Float;
use rayon::prelude::*;

/// Run `f(block_index, out_block)` over [red × inner] blocks, in parallel when large.
fn for_blocks<T: Float>(out: &mut [T], block: usize, f: impl Fn(usize, &mut [T]) + Sync + Send) {
    if block == 0 {
        return;
    }
    if out.len() >= PAR_MIN && out.len() > block {
        out.par_chunks_mut(block)
            .enumerate()
            .for_each(|(o, c)| f(o, c));
    } else {
        out.chunks_mut(block).enumerate().for_each(|(o, c)| f(o, c));
    }
}

/// `softmax(x)` (or `log_softmax(x)` when `log`) along the middle axis.
pub fn softmax_mid<T: Float>(x: &[T], outer: usize, red: usize, inner: usize, log: bool) -> Vec<T> {
    let block = red * inner;
    let mut out = vec![T::ZERO; outer * block];
    if inner == 1 {
        // Softmax over the last dim: one contiguous row per lane, scalars only.
        for_blocks(&mut out, block, |o, dst| {
            let src = &x[o * block..(o + 1) * block];
            let m = src.iter().fold(T::NEG_INFINITY, |m, &v| m.max(v));
            let mut sum = T::ZERO;
            for (d, &v) in dst.iter_mut().zip(src) {
                *d = (v - m).exp();
                sum += *d;
            }
            if log {
                // (x - max) - ln Σ: subtracting the max first keeps f32 precision.
                let ls = sum.ln();
                dst.iter_mut()
                    .zip(src)
                    .for_each(|(d, &v)| *d = (v - m) - ls);
            } else {
                let inv = T::ONE / sum;
                dst.iter_mut().for_each(|d| *d *= inv);
            }
        });
        return out;
    }
    for_blocks(&mut out, block, |o, dst| {
        let src = &x[o * block..(o + 1) * block];
        // Per-lane max and sum, kept as vectors of length `inner` so rows are walked in
        // storage order (contiguous even when the softmax dim is not the last one).
        let mut mx = vec![T::NEG_INFINITY; inner];
        for row in src.chunks(inner) {
            for (m, &v) in mx.iter_mut().zip(row) {
                *m = m.max(v);
            }
        }
        let mut sum = vec![T::ZERO; inner];
        for (drow, row) in dst.chunks_mut(inner).zip(src.chunks(inner)) {
            for j in 0..inner {
                let e = (row[j] - mx[j]).exp();
                sum[j] += e;
                drow[j] = e;
            }
        }
        if log {
            let ls: Vec<T> = sum.iter().map(|&s| s.ln()).collect();
            for (drow, row) in dst.chunks_mut(inner).zip(src.chunks(inner)) {
                for j in 0..inner {
                    drow[j] = (row[j] - mx[j]) - ls[j];
                }
            }
        } else {
            let inv: Vec<T> = sum.iter().map(|&s| T::ONE / s).collect();
            for drow in dst.chunks_mut(inner) {
                for j in 0..inner {
                    drow[j] *= inv[j];
                }
            }
        }
    });
    out
}

/// Gradient of softmax from its output `y` and the incoming gradient `g`:
/// softmax: `y * (g - Σ g·y)`; log-softmax: `g - exp(y) * Σ g`.
pub fn softmax_backward_mid<T: Float>(
    y: &[T],
    g: &[T],
    outer: usize,
    red: usize,
    inner: usize,
    log: bool,
) -> Vec<T> {
    let block = red * inner;
    let mut out = vec![T::ZERO; outer * block];
    for_blocks(&mut out, block, |o, dst| {
        let (ys, gs) = (
            &y[o * block..(o + 1) * block],
            &g[o * block..(o + 1) * block],
        );
        let mut s = vec![T::ZERO; inner];
        for (yr, gr) in ys.chunks(inner).zip(gs.chunks(inner)) {
            for j in 0..inner {
                s[j] += if log { gr[j] } else { gr[j] * yr[j] };
            }
        }
        for ((drow, yr), gr) in dst
            .chunks_mut(inner)
            .zip(ys.chunks(inner))
            .zip(gs.chunks(inner))
        {
            for j in 0..inner {
                drow[j] = if log {
                    gr[j] - yr[j].exp() * s[j]
                } else {
                    yr[j] * (gr[j] - s[j])
                };
            }
        }
    });
    out
}
