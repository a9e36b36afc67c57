//! Layer and group norm kernels, forward and analytic backward (batch norm, fused with
//! its activation, is in `bn_act`).
//! Statistics and gradient sums accumulate in f64 so long rows stay accurate in f32.
use super::PAR_MIN;
use crate::tensor::Float;
use rayon::prelude::*;

/// Contiguous input viewed as [n, groups, cpg, s]: statistics per (n, group) over a block
/// of `cpg * s` elements, affine per channel (`groups * cpg` of them) repeated over `s`.
/// Layer norm is the case groups = 1, cpg = normalised size, s = 1.
#[derive(Clone, Copy, Debug)]
pub struct Groups {
    pub n: usize,
    pub groups: usize,
    pub cpg: usize,
    pub s: usize,
}

impl Groups {
    fn block(&self) -> usize {
        self.cpg * self.s
    }
    fn channels(&self) -> usize {
        self.groups * self.cpg
    }
}

/// Mean and biased variance of a slice, two-pass in f64.
fn mean_var<T: Float>(x: &[T]) -> (f64, f64) {
    let len = x.len().max(1) as f64;
    let mean = x.iter().map(|v| v.to_f64()).sum::<f64>() / len;
    let var = x
        .iter()
        .map(|v| {
            let d = v.to_f64() - mean;
            d * d
        })
        .sum::<f64>()
        / len;
    (mean, var)
}

/// Runs `f(block_index, block)` over equal chunks of `out`, in parallel when large.
fn for_blocks<T: Send>(out: &mut [T], len: usize, f: impl Fn(usize, &mut [T]) + Sync + Send) {
    if len == 0 {
        return;
    }
    if out.len() >= PAR_MIN {
        out.par_chunks_mut(len)
            .enumerate()
            .for_each(|(i, o)| f(i, o));
    } else {
        out.chunks_mut(len).enumerate().for_each(|(i, o)| f(i, o));
    }
}

/// Forward of group/layer norm: returns y, and mean and rstd = 1/sqrt(var + eps) per block.
pub fn group_norm_fwd<T: Float>(
    x: &[T],
    d: Groups,
    w: Option<&[T]>,
    b: Option<&[T]>,
    eps: f64,
) -> (Vec<T>, Vec<f64>, Vec<f64>) {
    let len = d.block();
    let blocks = d.n * d.groups;
    let stat = |blk: &[T]| {
        let (m, v) = mean_var(blk);
        (m, 1.0 / (v + eps).sqrt())
    };
    let (mean, rstd): (Vec<f64>, Vec<f64>) = if len == 0 {
        (vec![0.0; blocks], vec![0.0; blocks])
    } else if x.len() >= PAR_MIN {
        x.par_chunks(len).map(stat).unzip()
    } else {
        x.chunks(len).map(stat).unzip()
    };
    let mut y = vec![T::ZERO; x.len()];
    for_blocks(&mut y, len, |k, out| {
        let (m, r) = (mean[k], rstd[k]);
        let c0 = (k % d.groups) * d.cpg;
        for (i, o) in out.iter_mut().enumerate() {
            let c = c0 + i / d.s;
            let mut v = (x[k * len + i].to_f64() - m) * r;
            if let Some(w) = w {
                v *= w[c].to_f64();
            }
            if let Some(b) = b {
                v += b[c].to_f64();
            }
            *o = T::from_f64(v);
        }
    });
    (y, mean, rstd)
}

/// Backward of group/layer norm: dx (when asked), and d(weight), d(bias) per channel.
#[allow(clippy::too_many_arguments)]
pub fn group_norm_bwd<T: Float>(
    x: &[T],
    g: &[T],
    d: Groups,
    w: Option<&[T]>,
    mean: &[f64],
    rstd: &[f64],
    need_dx: bool,
) -> (Option<Vec<T>>, Vec<T>, Vec<T>) {
    let len = d.block();
    let wc = |c: usize| w.map_or(1.0, |w| w[c].to_f64());
    let dx = need_dx.then(|| {
        let mut dx = vec![T::ZERO; x.len()];
        for_blocks(&mut dx, len, |k, out| {
            let (m, r) = (mean[k], rstd[k]);
            let c0 = (k % d.groups) * d.cpg;
            let (xs, gs) = (&x[k * len..(k + 1) * len], &g[k * len..(k + 1) * len]);
            // dx = rstd * (dŷ - mean(dŷ) - x̂ * mean(dŷ * x̂)), dŷ = g * w
            let (mut s1, mut s2) = (0.0, 0.0);
            for i in 0..len {
                let dyh = gs[i].to_f64() * wc(c0 + i / d.s);
                s1 += dyh;
                s2 += dyh * (xs[i].to_f64() - m) * r;
            }
            let (s1, s2) = (s1 / len as f64, s2 / len as f64);
            for (i, o) in out.iter_mut().enumerate() {
                let dyh = gs[i].to_f64() * wc(c0 + i / d.s);
                let xh = (xs[i].to_f64() - m) * r;
                *o = T::from_f64(r * (dyh - s1 - xh * s2));
            }
        });
        dx
    });
    let ch = d.channels();
    let (mut dw, mut db) = (vec![0.0f64; ch], vec![0.0f64; ch]);
    if len > 0 {
        for (k, (xs, gs)) in x.chunks(len).zip(g.chunks(len)).enumerate() {
            let c0 = (k % d.groups) * d.cpg;
            for i in 0..len {
                let xh = (xs[i].to_f64() - mean[k]) * rstd[k];
                let gv = gs[i].to_f64();
                dw[c0 + i / d.s] += gv * xh;
                db[c0 + i / d.s] += gv;
            }
        }
    }
    let cast = |v: Vec<f64>| v.into_iter().map(T::from_f64).collect();
    (dx, cast(dw), cast(db))
}
