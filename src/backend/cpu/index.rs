//! Indexing kernels on contiguous data: gather / scatter-add along a dim, index-select /
//! index-add of whole slices, and block copies for concatenation. Indices are validated by
//! the caller (tensor::ops::index), so these only move data.
use std::ops::AddAssign;

/// Row-major strides of a contiguous buffer of shape `dims`.
fn strides(dims: &[usize]) -> Vec<usize> {
    let mut s = vec![1usize; dims.len()];
    for i in (0..dims.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * dims[i + 1];
    }
    s
}

/// Visit every position of `idx_dims` in row-major order as `f(flat, base_a, base_b, c)`:
/// `base_*` is the offset in a buffer with strides `sa` / `sb` counting every coordinate
/// except the one along `dim`, which is passed as `c` (the caller picks what it indexes).
fn for_each_pos(
    idx_dims: &[usize],
    dim: usize,
    sa: &[usize],
    sb: &[usize],
    mut f: impl FnMut(usize, usize, usize, usize),
) {
    let n: usize = idx_dims.iter().product();
    if n == 0 {
        return;
    }
    let r = idx_dims.len();
    let mut mi = vec![0usize; r];
    let (mut pa, mut pb) = (0usize, 0usize);
    for flat in 0..n {
        f(flat, pa, pb, mi[dim]);
        // Odometer step over the index shape.
        let mut d = r;
        while d > 0 {
            d -= 1;
            mi[d] += 1;
            if d != dim {
                pa += sa[d];
                pb += sb[d];
            }
            if mi[d] < idx_dims[d] {
                break;
            }
            if d != dim {
                pa -= sa[d] * idx_dims[d];
                pb -= sb[d] * idx_dims[d];
            }
            mi[d] = 0;
        }
    }
}

/// torch.gather: `out[p] = src[p with p[dim] = idx[p]]`; `out` has the index's shape.
pub fn gather<T: Copy + Default>(
    src: &[T],
    src_dims: &[usize],
    idx: &[i64],
    idx_dims: &[usize],
    dim: usize,
) -> Vec<T> {
    let ss = strides(src_dims);
    let mut out = vec![T::default(); idx.len()];
    for_each_pos(idx_dims, dim, &ss, &ss, |p, base, _, _| {
        out[p] = src[base + idx[p] as usize * ss[dim]];
    });
    out
}

/// torch.scatter_add_ in place: `out[p with p[dim] = idx[p]] += src[p]` for every position
/// `p` of the index (`src` may be larger than the index; only that block is read).
pub fn scatter_add<T: Copy + AddAssign>(
    out: &mut [T],
    out_dims: &[usize],
    idx: &[i64],
    idx_dims: &[usize],
    src: &[T],
    src_dims: &[usize],
    dim: usize,
) {
    let (so, ss) = (strides(out_dims), strides(src_dims));
    for_each_pos(idx_dims, dim, &so, &ss, |p, bo, bs, c| {
        out[bo + idx[p] as usize * so[dim]] += src[bs + c * ss[dim]];
    });
}

/// index_select on [outer, n, inner]: the slices `idx` along the middle axis, in order.
pub fn index_select<T: Copy>(
    src: &[T],
    outer: usize,
    n: usize,
    inner: usize,
    idx: &[i64],
) -> Vec<T> {
    let mut out = Vec::with_capacity(outer * idx.len() * inner);
    for o in 0..outer {
        for &i in idx {
            let s = (o * n + i as usize) * inner;
            out.extend_from_slice(&src[s..s + inner]);
        }
    }
    out
}

/// index_add in place on [outer, n, inner]: slice `k` of `src` ([outer, idx.len(), inner])
/// is added to slice `idx[k]` of `out`; repeated indices accumulate.
pub fn index_add<T: Copy + AddAssign>(
    out: &mut [T],
    outer: usize,
    n: usize,
    inner: usize,
    idx: &[i64],
    src: &[T],
) {
    let len = idx.len();
    for o in 0..outer {
        for (k, &i) in idx.iter().enumerate() {
            let d = (o * n + i as usize) * inner;
            let s = (o * len + k) * inner;
            for (a, &b) in out[d..d + inner].iter_mut().zip(&src[s..s + inner]) {
                *a += b;
            }
        }
    }
}

/// Copy `src` viewed as [outer, width] into columns `col..col + width` of `out` viewed as
/// [outer, out_width] (one input of a concatenation).
pub fn copy_block<T: Copy>(out: &mut [T], out_width: usize, col: usize, src: &[T], width: usize) {
    if width == 0 {
        return;
    }
    for (o, row) in src.chunks(width).enumerate() {
        let d = o * out_width + col;
        out[d..d + width].copy_from_slice(row);
    }
}
