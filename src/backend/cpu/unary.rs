//! Elementwise maps used by unary ops and their backward rules.
use super::PAR_MIN;
use rayon::prelude::*;

/// `out[i] = f(x[i], y[i], g[i])` — the shape of every unary backward (input, output, grad).
pub fn zip3<T: Copy + Sync + Send + Default>(
    x: &[T],
    y: &[T],
    g: &[T],
    f: impl Fn(T, T, T) -> T + Sync + Send,
) -> Vec<T> {
    let n = x.len();
    let mut out = vec![T::default(); n];
    let body = |o: &mut [T], base: usize| {
        for (j, oj) in o.iter_mut().enumerate() {
            let i = base + j;
            *oj = f(x[i], y[i], g[i]);
        }
    };
    if n >= PAR_MIN {
        out.par_chunks_mut(PAR_MIN)
            .enumerate()
            .for_each(|(c, o)| body(o, c * PAR_MIN));
    } else {
        body(&mut out, 0);
    }
    out
}
