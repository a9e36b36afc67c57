//! Normalisation kernels (layer, group and batch norm), forward and analytic backward.
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

/// Per-channel mean and biased variance of x viewed as [n, c, s].
pub fn channel_stats<T: Float>(x: &[T], n: usize, c: usize, s: usize) -> (Vec<f64>, Vec<f64>) {
    let stat = |ch: usize| {
        let cnt = (n * s).max(1) as f64;
        let rows = (0..n).map(|i| &x[(i * c + ch) * s..(i * c + ch + 1) * s]);
        let mean = rows.clone().flatten().map(|v| v.to_f64()).sum::<f64>() / cnt;
        let var = rows
            .flatten()
            .map(|v| (v.to_f64() - mean) * (v.to_f64() - mean))
            .sum::<f64>()
            / cnt;
        (mean, var)
    };
    let v: Vec<(f64, f64)> = if x.len() >= PAR_MIN {
        (0..c).into_par_iter().map(stat).collect()
    } else {
        (0..c).map(stat).collect()
    };
    v.into_iter().unzip()
}

/// y = x * scale[c] + shift[c] for x viewed as [n, c, s].
pub fn channel_affine<T: Float>(
    x: &[T],
    c: usize,
    s: usize,
    scale: &[f64],
    shift: &[f64],
) -> Vec<T> {
    let mut y = vec![T::ZERO; x.len()];
    for_blocks(&mut y, s, |row, out| {
        let ch = row % c;
        for (o, v) in out.iter_mut().zip(&x[row * s..(row + 1) * s]) {
            *o = T::from_f64(v.to_f64() * scale[ch] + shift[ch]);
        }
    });
    y
}

/// Backward of batch norm over [n, c, s]. In training the statistics depend on x (the full
/// formula); in eval they are constants, so dx = g * w * rstd.
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_bwd<T: Float>(
    x: &[T],
    g: &[T],
    (n, c, s): (usize, usize, usize),
    w: Option<&[T]>,
    mean: &[f64],
    rstd: &[f64],
    training: bool,
    need_dx: bool,
) -> (Option<Vec<T>>, Vec<T>, Vec<T>) {
    // Σg and Σg·x̂ per channel.
    let sums = |ch: usize| {
        let (mut sg, mut sgx) = (0.0, 0.0);
        for i in 0..n {
            let o = (i * c + ch) * s;
            for (xv, gv) in x[o..o + s].iter().zip(&g[o..o + s]) {
                let gv = gv.to_f64();
                sg += gv;
                sgx += gv * (xv.to_f64() - mean[ch]) * rstd[ch];
            }
        }
        (sg, sgx)
    };
    let (sg, sgx): (Vec<f64>, Vec<f64>) = if x.len() >= PAR_MIN {
        (0..c).into_par_iter().map(sums).collect::<Vec<_>>()
    } else {
        (0..c).map(sums).collect::<Vec<_>>()
    }
    .into_iter()
    .unzip();
    let cnt = (n * s).max(1) as f64;
    let dx = need_dx.then(|| {
        let mut dx = vec![T::ZERO; x.len()];
        for_blocks(&mut dx, s, |row, out| {
            let ch = row % c;
            let k = w.map_or(1.0, |w| w[ch].to_f64()) * rstd[ch];
            for (j, o) in out.iter_mut().enumerate() {
                let gv = g[row * s + j].to_f64();
                *o = T::from_f64(if training {
                    let xh = (x[row * s + j].to_f64() - mean[ch]) * rstd[ch];
                    k * (gv - sg[ch] / cnt - xh * sgx[ch] / cnt)
                } else {
                    k * gv
                });
            }
        });
        dx
    });
    let cast = |v: &[f64]| v.iter().map(|&a| T::from_f64(a)).collect();
    (dx, cast(&sgx), cast(&sg))
}
