//! Broadcasting binary maps over row-major contiguous operands.
use super::PAR_MIN;
use rayon::prelude::*;

/// Strides (in elements) of a contiguous operand of shape `s` viewed at output shape `o`;
/// broadcast and missing leading dims get stride 0.
pub fn broadcast_strides(s: &[usize], o: &[usize]) -> Vec<usize> {
    let mut st = vec![0usize; o.len()];
    let lead = o.len() - s.len();
    let mut acc = 1usize;
    for i in (0..s.len()).rev() {
        if s[i] != 1 {
            st[lead + i] = acc;
        }
        acc *= s[i];
    }
    st
}

/// `out[i] = f(a[..], b[..])` with NumPy broadcasting. `sa`, `sb` broadcast to `so`
/// (checked by the caller).
pub fn broadcast_map<A, B, O, F>(
    a: &[A],
    sa: &[usize],
    b: &[B],
    sb: &[usize],
    so: &[usize],
    f: F,
) -> Vec<O>
where
    A: Copy + Sync,
    B: Copy + Sync,
    O: Copy + Send + Default,
    F: Fn(A, B) -> O + Sync + Send,
{
    let n: usize = so.iter().product();
    if n == 0 {
        return Vec::new();
    }
    if a.len() == n && b.len() == n && sa == sb {
        let mut out = vec![O::default(); n];
        if n >= PAR_MIN {
            out.par_chunks_mut(PAR_MIN)
                .zip(a.par_chunks(PAR_MIN).zip(b.par_chunks(PAR_MIN)))
                .for_each(|(o, (x, y))| {
                    for i in 0..o.len() {
                        o[i] = f(x[i], y[i]);
                    }
                });
        } else {
            for i in 0..n {
                out[i] = f(a[i], b[i]);
            }
        }
        return out;
    }
    if b.len() == 1 && a.len() == n {
        let y = b[0];
        return map_par(a, |x| f(x, y));
    }
    if a.len() == 1 && b.len() == n {
        let x = a[0];
        return map_par(b, |y| f(x, y));
    }
    // General case: rows over all but the last output dim, each row computed on its own.
    let sta = broadcast_strides(sa, so);
    let stb = broadcast_strides(sb, so);
    let r = so.len();
    let last = if r == 0 { 1 } else { so[r - 1] };
    let (la, lb) = if r == 0 {
        (0, 0)
    } else {
        (sta[r - 1], stb[r - 1])
    };
    let rows = n / last;
    let mut out = vec![O::default(); n];
    let row_fn = |row: usize, o: &mut [O]| {
        let (mut ia, mut ib, mut rem) = (0usize, 0usize, row);
        for d in (0..r.saturating_sub(1)).rev() {
            let k = rem % so[d];
            rem /= so[d];
            ia += k * sta[d];
            ib += k * stb[d];
        }
        for (j, oj) in o.iter_mut().enumerate() {
            *oj = f(a[ia + j * la], b[ib + j * lb]);
        }
    };
    if n >= PAR_MIN && rows > 1 {
        out.par_chunks_mut(last)
            .enumerate()
            .for_each(|(row, o)| row_fn(row, o));
    } else {
        for (row, o) in out.chunks_mut(last).enumerate() {
            row_fn(row, o);
        }
    }
    out
}

/// `out[i] = f(a[i])`, parallel when large.
pub fn map_par<A: Copy + Sync, O: Copy + Send + Default>(
    a: &[A],
    f: impl Fn(A) -> O + Sync + Send,
) -> Vec<O> {
    if a.len() >= PAR_MIN {
        a.par_iter().map(|&x| f(x)).collect()
    } else {
        a.iter().map(|&x| f(x)).collect()
    }
}
