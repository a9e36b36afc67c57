//! Reductions over contiguous data viewed as [outer, red, inner]. Float sums accumulate
//! in f64 so long reductions stay accurate in f32.
use crate::tensor::Float;
use rayon::prelude::*;

/// Sum over the middle axis of x: [outer, red, inner] -> [outer, inner].
pub fn sum_mid<T: Float>(x: &[T], outer: usize, red: usize, inner: usize) -> Vec<T> {
    let mut out = vec![T::ZERO; outer * inner];
    let body = |o: usize, dst: &mut [T]| {
        let mut acc = vec![0f64; inner];
        for r in 0..red {
            let row = &x[(o * red + r) * inner..(o * red + r + 1) * inner];
            for (a, &v) in acc.iter_mut().zip(row) {
                *a += v.to_f64();
            }
        }
        for (d, a) in dst.iter_mut().zip(acc) {
            *d = T::from_f64(a);
        }
    };
    if inner == 0 {
        return out;
    }
    if outer * red * inner >= super::PAR_MIN && outer > 1 {
        out.par_chunks_mut(inner)
            .enumerate()
            .for_each(|(o, d)| body(o, d));
    } else {
        for (o, d) in out.chunks_mut(inner).enumerate() {
            body(o, d);
        }
    }
    out
}

/// Index and value of the max (or min) along the middle axis; the first occurrence wins
/// ties and NaN counts as the extreme (as in PyTorch).
pub fn arg_extreme_mid<T: Float>(
    x: &[T],
    outer: usize,
    red: usize,
    inner: usize,
    max: bool,
) -> (Vec<T>, Vec<i64>) {
    let mut vals = vec![T::ZERO; outer * inner];
    let mut idx = vec![0i64; outer * inner];
    for o in 0..outer {
        for i in 0..inner {
            let mut best = x[o * red * inner + i];
            let mut bi = 0usize;
            for r in 1..red {
                let v = x[(o * red + r) * inner + i];
                if best.is_nan() {
                    break;
                }
                let better = if max { v > best } else { v < best };
                if v.is_nan() || better {
                    best = v;
                    bi = r;
                }
            }
            vals[o * inner + i] = best;
            idx[o * inner + i] = bi as i64;
        }
    }
    (vals, idx)
}
