//! Multi-scale deformable attention (Deformable DETR, Grounding DINO), fused: each query
//! head bilinearly samples every level's value map at its points and sums the samples
//! weighted by its attention weights, with no per-level sampled tensors in between.
//!
//! Layouts (contiguous): value [b, s, h, d] with level l in rows starts[l]..; locations
//! [b, q, h, l, p, 2] as (x, y) in [0, 1]; weights [b, q, h, l, p]; output [b, q, h, d].
//! Positions use grid_sample's own arithmetic (grid = 2·loc − 1, align_corners=false), so
//! the fused op takes the same taps as the composed torch path, kinks included.
use super::grid_sample::{Sample, sample_at, taps, unnormalize};
use crate::tensor::Float;
use rayon::prelude::*;

#[derive(Clone, Debug)]
pub struct MsdaGeom {
    pub b: usize,
    /// Value rows: the sum of the levels' h·w.
    pub s: usize,
    pub heads: usize,
    /// Channels per head.
    pub d: usize,
    pub q: usize,
    /// Points per level.
    pub p: usize,
    /// (height, width) per level.
    pub levels: Vec<(usize, usize)>,
    /// First value row of each level.
    pub starts: Vec<usize>,
}

impl MsdaGeom {
    pub fn new(
        b: usize,
        heads: usize,
        d: usize,
        q: usize,
        p: usize,
        levels: &[(usize, usize)],
    ) -> Self {
        let starts = levels
            .iter()
            .scan(0, |acc, &(h, w)| {
                let s = *acc;
                *acc += h * w;
                Some(s)
            })
            .collect();
        MsdaGeom {
            b,
            s: levels.iter().map(|&(h, w)| h * w).sum(),
            heads,
            d,
            q,
            p,
            levels: levels.to_vec(),
            starts,
        }
    }

    /// Samples per query head (levels × points).
    fn lp(&self) -> usize {
        self.levels.len() * self.p
    }
}

/// Location (x, y) in [0, 1] on an `hh`×`ww` map, as grid_sample sees 2·loc − 1.
fn locate<T: Float>(x: T, y: T, hh: usize, ww: usize) -> Sample<T> {
    let two = T::from_f64(2.0);
    sample_at(
        unnormalize(two * x - T::ONE, ww, false),
        unnormalize(two * y - T::ONE, hh, false),
    )
}

/// The four taps of sample `k` (flat over [b, q, h, l, p]) of batch `bi`, head `head`, level
/// `l`: value row offsets (None outside the map) and bilinear weights, plus the sample.
fn sample_taps<T: Float>(
    loc: &[T],
    g: &MsdaGeom,
    k: usize,
    bi: usize,
    head: usize,
    l: usize,
) -> ([(Option<usize>, T); 4], Sample<T>) {
    let (hh, ww) = g.levels[l];
    let smp = locate(loc[2 * k], loc[2 * k + 1], hh, ww);
    let t = taps(&smp, hh, ww).map(|(i, w)| {
        (
            i.map(|i| ((bi * g.s + g.starts[l] + i) * g.heads + head) * g.d),
            w,
        )
    });
    (t, smp)
}

/// Forward: output [b, q, h, d].
pub fn ms_deform_attn<T: Float>(value: &[T], loc: &[T], attn: &[T], g: &MsdaGeom) -> Vec<T> {
    let (hd, lp) = (g.heads * g.d, g.lp());
    let mut out = vec![T::ZERO; g.b * g.q * hd];
    if out.is_empty() {
        return out;
    }
    out.par_chunks_mut(hd).enumerate().for_each(|(bq, o)| {
        let bi = bq / g.q;
        let mut smp = vec![T::ZERO; g.d]; // one sample's channels
        for (head, oh) in o.chunks_mut(g.d).enumerate() {
            let k0 = (bq * g.heads + head) * lp;
            for l in 0..g.levels.len() {
                let k1 = k0 + l * g.p;
                for (k, &a) in (k1..).zip(&attn[k1..k1 + g.p]) {
                    let (t, _) = sample_taps(loc, g, k, bi, head, l);
                    // Sample first, then weight: the composed path's order. Tap-major
                    // loops over contiguous channels, which vectorise.
                    smp.fill(T::ZERO);
                    for &(r, w) in &t {
                        if let Some(r) = r {
                            for (sv, &v) in smp.iter_mut().zip(&value[r..r + g.d]) {
                                *sv += v * w;
                            }
                        }
                    }
                    for (ov, &sv) in oh.iter_mut().zip(&smp) {
                        *ov += a * sv;
                    }
                }
            }
        }
    });
    out
}

/// Which gradients backward computes: value, locations, weights.
#[derive(Clone, Copy, Debug)]
pub struct MsdaWant {
    pub value: bool,
    pub loc: bool,
    pub attn: bool,
}

/// Gradients of sum(out · gout): (d value, d locations, d weights) in the inputs' layouts,
/// empty where not wanted. One task per (batch, head): its value rows are written by no
/// other task, so the scatter into d value needs no atomics; the task's parts are copied
/// into place at the end.
pub fn ms_deform_attn_backward<T: Float>(
    value: &[T],
    loc: &[T],
    attn: &[T],
    gout: &[T],
    g: &MsdaGeom,
    want: MsdaWant,
) -> (Vec<T>, Vec<T>, Vec<T>) {
    let (lp, nbh) = (g.lp(), g.b * g.heads);
    let size = |w: bool, n: usize| if w { n } else { 0 };
    let mut dv = vec![T::ZERO; size(want.value, value.len())];
    let mut dl = vec![T::ZERO; size(want.loc, loc.len())];
    let mut da = vec![T::ZERO; size(want.attn, attn.len())];
    if nbh == 0 || g.q * lp == 0 || !(want.value || want.loc || want.attn) {
        return (dv, dl, da);
    }
    let two = T::from_f64(2.0);
    // Per (batch, head): d value [s, d], d weights [q, l·p], d locations [q, l·p, 2].
    let parts: Vec<(Vec<T>, Vec<T>, Vec<T>)> = (0..nbh)
        .into_par_iter()
        .map(|bh| {
            let (bi, head) = (bh / g.heads, bh % g.heads);
            let mut pv = vec![T::ZERO; size(want.value, g.s * g.d)];
            let mut pa = vec![T::ZERO; size(want.attn, g.q * lp)];
            let mut pl = vec![T::ZERO; size(want.loc, g.q * lp * 2)];
            // Value row offsets of this batch and head, relative to its [s, d] part.
            let base = (bi * g.s * g.heads + head) * g.d;
            let rel = |r: usize| (r - base) / (g.heads * g.d) * g.d;
            for qi in 0..g.q {
                let go = &gout[((bi * g.q + qi) * g.heads + head) * g.d..][..g.d];
                for l in 0..g.levels.len() {
                    // d(pixel coordinate)/d(grid coordinate), as grid_sample's backward.
                    let (hh, ww) = g.levels[l];
                    let (sx, sy) = (T::from_f64(ww as f64 / 2.0), T::from_f64(hh as f64 / 2.0));
                    for pi in 0..g.p {
                        let j = qi * lp + l * g.p + pi;
                        let k = ((bi * g.q + qi) * g.heads + head) * lp + l * g.p + pi;
                        let (t, smp) = sample_taps(loc, g, k, bi, head, l);
                        let a = attn[k];
                        let (ux, uy) = (T::ONE - smp.fx, T::ONE - smp.fy);
                        let (mut gs, mut gx, mut gy) = (T::ZERO, T::ZERO, T::ZERO);
                        let tv = t.map(|(r, w)| (r.map(rel), w)); // taps in this task's part
                        for (c, &gc) in go.iter().enumerate() {
                            let gv = gc * a; // gradient of the sampled value
                            if want.value {
                                for &(r, w) in &tv {
                                    if let Some(r) = r {
                                        pv[r + c] += w * gv;
                                    }
                                }
                            }
                            if want.attn || want.loc {
                                let v = |i: usize| t[i].0.map_or(T::ZERO, |r| value[r + c]);
                                let (nw, ne, sw, se) = (v(0), v(1), v(2), v(3));
                                if want.attn {
                                    // The sampled value, summed as grid_sample sums it.
                                    let mut s = T::ZERO;
                                    for &(r, w) in &t {
                                        if let Some(r) = r {
                                            s += value[r + c] * w;
                                        }
                                    }
                                    gs += gc * s;
                                }
                                gx += ((ne - nw) * uy + (se - sw) * smp.fy) * gv * sx;
                                gy += ((sw - nw) * ux + (se - ne) * smp.fx) * gv * sy;
                            }
                        }
                        if want.attn {
                            pa[j] = gs;
                        }
                        if want.loc {
                            // d grid / d loc = 2.
                            pl[2 * j] = gx * two;
                            pl[2 * j + 1] = gy * two;
                        }
                    }
                }
            }
            (pv, pa, pl)
        })
        .collect();
    for (bh, (pv, pa, pl)) in parts.into_iter().enumerate() {
        let (bi, head) = (bh / g.heads, bh % g.heads);
        if want.value {
            for (si, row) in pv.chunks_exact(g.d).enumerate() {
                dv[((bi * g.s + si) * g.heads + head) * g.d..][..g.d].copy_from_slice(row);
            }
        }
        for qi in 0..g.q {
            let k0 = ((bi * g.q + qi) * g.heads + head) * lp;
            if want.attn {
                da[k0..][..lp].copy_from_slice(&pa[qi * lp..][..lp]);
            }
            if want.loc {
                dl[2 * k0..][..2 * lp].copy_from_slice(&pl[2 * qi * lp..][..2 * lp]);
            }
        }
    }
    (dv, dl, da)
}
