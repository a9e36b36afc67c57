//! Sorting, top-k and cumulative sums along the middle axis of contiguous data viewed as
//! [outer, red, inner].
use super::PAR_MIN;
use rayon::prelude::*;
use std::cmp::Ordering;

/// Total order with NaN above every number (PyTorch's sort/topk convention).
fn nan_last<T: PartialOrd>(a: &T, b: &T) -> Ordering {
    match a.partial_cmp(b) {
        Some(o) => o,
        None => {
            // At least one is NaN (x != x only for NaN).
            let (an, bn) = (a.partial_cmp(a).is_none(), b.partial_cmp(b).is_none());
            an.cmp(&bn)
        }
    }
}

/// The first `k` elements of every lane in order (ascending, or descending when `desc`),
/// with their positions in the lane; ties keep the lower position first, so this is a
/// stable sort (k = red) or top-k. Returns values and indices shaped [outer, k, inner].
pub fn sort_mid<T: PartialOrd + Copy + Send + Sync + Default>(
    x: &[T],
    outer: usize,
    red: usize,
    inner: usize,
    k: usize,
    desc: bool,
) -> (Vec<T>, Vec<i64>) {
    let block = k * inner;
    let mut vals = vec![T::default(); outer * block];
    let mut idx = vec![0i64; outer * block];
    if block == 0 {
        return (vals, idx);
    }
    let lane_sort = |o: usize, vb: &mut [T], ib: &mut [i64]| {
        let mut lane: Vec<(T, usize)> = Vec::with_capacity(red);
        for i in 0..inner {
            lane.clear();
            lane.extend((0..red).map(|r| (x[(o * red + r) * inner + i], r)));
            // The position tie-break makes the order total, so unstable sorts give the
            // stable result and select_nth can trim a top-k before sorting it.
            let cmp = |a: &(T, usize), b: &(T, usize)| {
                let c = if desc {
                    nan_last(&b.0, &a.0)
                } else {
                    nan_last(&a.0, &b.0)
                };
                c.then(a.1.cmp(&b.1))
            };
            if k < red {
                lane.select_nth_unstable_by(k - 1, cmp);
                lane.truncate(k);
            }
            lane.sort_unstable_by(cmp);
            for (j, &(v, r)) in lane.iter().enumerate() {
                vb[j * inner + i] = v;
                ib[j * inner + i] = r as i64;
            }
        }
    };
    if outer > 1 && outer * red * inner >= PAR_MIN {
        vals.par_chunks_mut(block)
            .zip(idx.par_chunks_mut(block))
            .enumerate()
            .for_each(|(o, (vb, ib))| lane_sort(o, vb, ib));
    } else {
        for (o, (vb, ib)) in vals
            .chunks_mut(block)
            .zip(idx.chunks_mut(block))
            .enumerate()
        {
            lane_sort(o, vb, ib);
        }
    }
    (vals, idx)
}

/// Inclusive running sum along the middle axis (from the end when `reverse`), with the
/// addition given by the caller (wrapping for integers, plain for floats).
pub fn cumsum_mid<T: Copy + Default>(
    x: &[T],
    outer: usize,
    red: usize,
    inner: usize,
    reverse: bool,
    add: impl Fn(T, T) -> T,
) -> Vec<T> {
    let mut out = vec![T::default(); x.len()];
    for o in 0..outer {
        let base = o * red * inner;
        for step in 0..red {
            let r = if reverse { red - 1 - step } else { step };
            let cur = base + r * inner;
            if step == 0 {
                out[cur..cur + inner].copy_from_slice(&x[cur..cur + inner]);
                continue;
            }
            let prev = if reverse { cur + inner } else { cur - inner };
            for j in 0..inner {
                out[cur + j] = add(out[prev + j], x[cur + j]);
            }
        }
    }
    out
}
