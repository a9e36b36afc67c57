//! Bilinear grid sampling with zero padding (torch grid_sample, mode='bilinear',
//! padding_mode='zeros'). Input `[n, c, h, w]`, grid `[n, ho, wo, 2]` holding (x, y) in
//! [-1, 1]. The sample positions of an image are computed once and reused for every channel.
use crate::tensor::Float;
use rayon::prelude::*;

#[derive(Clone, Copy, Debug)]
pub struct GridGeom {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    /// Output pixels per image (ho·wo).
    pub p: usize,
    pub align_corners: bool,
}

/// One sample: its top-left tap and the fractional offsets from it.
#[derive(Clone, Copy)]
pub(crate) struct Sample<T> {
    pub(crate) x0: isize,
    pub(crate) y0: isize,
    pub(crate) fx: T,
    pub(crate) fy: T,
}

/// Grid coordinate in [-1, 1] → pixel coordinate (torch's grid_sampler_unnormalize).
pub(crate) fn unnormalize<T: Float>(v: T, size: usize, align: bool) -> T {
    let (one, two, s) = (T::ONE, T::from_f64(2.0), T::from_f64(size as f64));
    if align {
        (v + one) / two * (s - one)
    } else {
        ((v + one) * s - one) / two
    }
}

/// d(pixel coordinate)/d(grid coordinate).
fn unnormalize_scale<T: Float>(size: usize, align: bool) -> T {
    let s = size as f64;
    T::from_f64(if align { (s - 1.0) / 2.0 } else { s / 2.0 })
}

/// The sample at pixel coordinates (ix, iy).
pub(crate) fn sample_at<T: Float>(ix: T, iy: T) -> Sample<T> {
    let (fx0, fy0) = (ix.floor(), iy.floor());
    Sample {
        // `as` saturates, so far-out (or NaN) coordinates just fall out of bounds.
        x0: fx0.to_f64() as isize,
        y0: fy0.to_f64() as isize,
        fx: ix - fx0,
        fy: iy - fy0,
    }
}

fn samples<T: Float>(grid: &[T], g: &GridGeom) -> Vec<Sample<T>> {
    grid.chunks_exact(2)
        .map(|xy| {
            sample_at(
                unnormalize(xy[0], g.w, g.align_corners),
                unnormalize(xy[1], g.h, g.align_corners),
            )
        })
        .collect()
}

/// The four taps (nw, ne, sw, se) as in-plane indices (None outside the image) and weights.
pub(crate) fn taps<T: Float>(s: &Sample<T>, h: usize, w: usize) -> [(Option<usize>, T); 4] {
    let at = |y: isize, x: isize| {
        (y >= 0 && x >= 0 && (y as usize) < h && (x as usize) < w)
            .then(|| y as usize * w + x as usize)
    };
    let (x1, y1) = (s.x0.saturating_add(1), s.y0.saturating_add(1));
    let (gx, gy) = (T::ONE - s.fx, T::ONE - s.fy);
    [
        (at(s.y0, s.x0), gx * gy),
        (at(s.y0, x1), s.fx * gy),
        (at(y1, s.x0), gx * s.fy),
        (at(y1, x1), s.fx * s.fy),
    ]
}

pub fn grid_sample<T: Float>(x: &[T], grid: &[T], g: &GridGeom) -> Vec<T> {
    let (hw, p) = (g.h * g.w, g.p);
    let mut out = vec![T::ZERO; g.n * g.c * p];
    if out.is_empty() {
        return out;
    }
    for (img, o) in out.chunks_mut(g.c * p).enumerate() {
        let taps: Vec<_> = samples(&grid[img * p * 2..][..p * 2], g)
            .iter()
            .map(|s| taps(s, g.h, g.w))
            .collect();
        o.par_chunks_mut(p).enumerate().for_each(|(ch, op)| {
            let plane = &x[(img * g.c + ch) * hw..][..hw];
            for (v, t) in op.iter_mut().zip(&taps) {
                let mut acc = T::ZERO;
                for &(i, wt) in t {
                    if let Some(i) = i {
                        acc += plane[i] * wt;
                    }
                }
                *v = acc;
            }
        });
    }
    out
}

/// Gradients w.r.t. the input (when `want_x`) and the grid (when `want_grid`), one image per
/// task. Returns (dx `[n, c, h, w]`, dgrid `[n, ho, wo, 2]`), empty where not wanted.
pub fn grid_sample_backward<T: Float>(
    x: &[T],
    grid: &[T],
    gy: &[T],
    g: &GridGeom,
    want_x: bool,
    want_grid: bool,
) -> (Vec<T>, Vec<T>) {
    let (hw, p) = (g.h * g.w, g.p);
    let mut dx = vec![T::ZERO; if want_x { g.n * g.c * hw } else { 0 }];
    let mut dgrid = vec![T::ZERO; if want_grid { g.n * p * 2 } else { 0 }];
    if g.n == 0 || p == 0 {
        return (dx, dgrid);
    }
    let (sx, sy) = (
        unnormalize_scale::<T>(g.w, g.align_corners),
        unnormalize_scale::<T>(g.h, g.align_corners),
    );
    let dx_chunk = if want_x { (g.c * hw).max(1) } else { 1 };
    let dg_chunk = if want_grid { p * 2 } else { 1 };
    // Empty vectors still need one (empty) chunk per image for the zip.
    let mut dx_parts: Vec<&mut [T]> = dx.chunks_mut(dx_chunk).collect();
    let mut dg_parts: Vec<&mut [T]> = dgrid.chunks_mut(dg_chunk).collect();
    dx_parts.resize_with(g.n, Default::default);
    dg_parts.resize_with(g.n, Default::default);
    dx_parts
        .into_par_iter()
        .zip(dg_parts)
        .enumerate()
        .for_each(|(img, (dxi, dgi))| {
            let smp = samples(&grid[img * p * 2..][..p * 2], g);
            let taps: Vec<_> = smp.iter().map(|s| taps(s, g.h, g.w)).collect();
            for ch in 0..g.c {
                let plane = &x[(img * g.c + ch) * hw..][..hw];
                let go = &gy[(img * g.c + ch) * p..][..p];
                if want_x {
                    let d = &mut dxi[ch * hw..][..hw];
                    for (t, &gv) in taps.iter().zip(go) {
                        for &(i, wt) in t {
                            if let Some(i) = i {
                                d[i] += wt * gv;
                            }
                        }
                    }
                }
                if want_grid {
                    for (k, ((t, s), &gv)) in taps.iter().zip(&smp).zip(go).enumerate() {
                        let v = |j: usize| t[j].0.map_or(T::ZERO, |i| plane[i]);
                        let (nw, ne, sw, se) = (v(0), v(1), v(2), v(3));
                        let (ux, uy) = (T::ONE - s.fx, T::ONE - s.fy);
                        let gix = (ne - nw) * uy + (se - sw) * s.fy;
                        let giy = (sw - nw) * ux + (se - ne) * s.fx;
                        dgi[2 * k] += gix * gv * sx;
                        dgi[2 * k + 1] += giy * gv * sy;
                    }
                }
            }
        });
    (dx, dgrid)
}
