//! 2-D pooling over `[planes, h, w]` data (planes = N·C), one plane per task.
//! Windows follow PyTorch: floor mode, padding counted in avg_pool's divisor, max_pool's
//! window clamped to the input (padding acts as -inf).
use crate::tensor::Float;
use rayon::prelude::*;

/// Plane sizes and window parameters shared by max and avg pooling.
#[derive(Clone, Copy, Debug)]
pub struct PoolGeom {
    pub h: usize,
    pub w: usize,
    pub ho: usize,
    pub wo: usize,
    pub kernel: (usize, usize),
    pub stride: (usize, usize),
    pub pad: (usize, usize),
}

impl PoolGeom {
    /// Unclamped window start (may be negative in the padding).
    fn start(&self, oy: usize, ox: usize) -> (isize, isize) {
        (
            (oy * self.stride.0) as isize - self.pad.0 as isize,
            (ox * self.stride.1) as isize - self.pad.1 as isize,
        )
    }
}

fn clamp_range(start: isize, len: usize, size: usize) -> (usize, usize) {
    let end = (start + len as isize).min(size as isize);
    (start.max(0) as usize, end.max(0) as usize)
}

/// Max over each window and the in-plane index of the first maximum (a NaN wins, the last
/// one if several, exactly as torch's CPU kernel).
pub fn max_pool2d<T: Float>(x: &[T], planes: usize, g: &PoolGeom) -> (Vec<T>, Vec<usize>) {
    let (hw, po) = (g.h * g.w, g.ho * g.wo);
    let mut out = vec![T::ZERO; planes * po];
    let mut idx = vec![0usize; planes * po];
    if po == 0 {
        return (out, idx);
    }
    out.par_chunks_mut(po)
        .zip(idx.par_chunks_mut(po))
        .enumerate()
        .for_each(|(pl, (o, ix))| {
            let src = &x[pl * hw..][..hw];
            for oy in 0..g.ho {
                for ox in 0..g.wo {
                    let (sy, sx) = g.start(oy, ox);
                    let (y0, y1) = clamp_range(sy, g.kernel.0, g.h);
                    let (x0, x1) = clamp_range(sx, g.kernel.1, g.w);
                    let (mut best, mut bi) = (T::NEG_INFINITY, y0 * g.w + x0);
                    for yy in y0..y1 {
                        for xx in x0..x1 {
                            let v = src[yy * g.w + xx];
                            if v > best || v.is_nan() {
                                best = v;
                                bi = yy * g.w + xx;
                            }
                        }
                    }
                    o[oy * g.wo + ox] = best;
                    ix[oy * g.wo + ox] = bi;
                }
            }
        });
    (out, idx)
}

/// `max_pool2d`'s values without the indices, for inference: a row pass then a column
/// pass (k_h + k_w compares per output instead of k_h·k_w). The same values bit for bit:
/// a max is exact, a window is NaN iff one of its values is, and first-wins ties (+0/−0)
/// in row order within rows and then across rows are first-wins in row-major order.
pub fn max_pool2d_values<T: Float>(x: &[T], planes: usize, g: &PoolGeom) -> Vec<T> {
    let (hw, po) = (g.h * g.w, g.ho * g.wo);
    let mut out = vec![T::ZERO; planes * po];
    if po == 0 {
        return out;
    }
    let pick = |best: T, v: T| if v > best || v.is_nan() { v } else { best };
    let cols: Vec<(usize, usize)> = (0..g.wo)
        .map(|ox| clamp_range(g.start(0, ox).1, g.kernel.1, g.w))
        .collect();
    out.par_chunks_mut(po)
        .enumerate()
        .for_each_init(Vec::new, |rows: &mut Vec<T>, (pl, o)| {
            let src = &x[pl * hw..][..hw];
            // rows[y][ox]: the max over row y of output column ox's window.
            rows.clear();
            for y in 0..g.h {
                let r = &src[y * g.w..][..g.w];
                rows.extend(
                    cols.iter().map(|&(x0, x1)| {
                        r[x0..x1].iter().fold(T::NEG_INFINITY, |b, &v| pick(b, v))
                    }),
                );
            }
            for oy in 0..g.ho {
                let (y0, y1) = clamp_range(g.start(oy, 0).0, g.kernel.0, g.h);
                let dst = &mut o[oy * g.wo..][..g.wo];
                dst.fill(T::NEG_INFINITY);
                for y in y0..y1 {
                    for (d, &v) in dst.iter_mut().zip(&rows[y * g.wo..][..g.wo]) {
                        *d = pick(*d, v);
                    }
                }
            }
        });
    out
}

/// Gradient of max_pool2d: each output gradient goes to its recorded argmax.
pub fn max_pool2d_backward<T: Float>(
    gy: &[T],
    idx: &[usize],
    planes: usize,
    g: &PoolGeom,
) -> Vec<T> {
    let (hw, po) = (g.h * g.w, g.ho * g.wo);
    let mut dx = vec![T::ZERO; planes * hw];
    if po == 0 || hw == 0 {
        return dx;
    }
    dx.par_chunks_mut(hw).enumerate().for_each(|(pl, d)| {
        for (&gv, &i) in gy[pl * po..][..po].iter().zip(&idx[pl * po..][..po]) {
            d[i] += gv;
        }
    });
    dx
}

/// Average over each window; the divisor counts padded positions (count_include_pad=true)
/// but not the part of a window past the padding.
fn avg_window(g: &PoolGeom, oy: usize, ox: usize) -> ((usize, usize), (usize, usize), usize) {
    let (sy, sx) = g.start(oy, ox);
    let ey = (sy + g.kernel.0 as isize).min((g.h + g.pad.0) as isize);
    let ex = (sx + g.kernel.1 as isize).min((g.w + g.pad.1) as isize);
    let div = ((ey - sy) * (ex - sx)).max(1) as usize;
    let ys = (sy.max(0) as usize, ey.min(g.h as isize).max(0) as usize);
    let xs = (sx.max(0) as usize, ex.min(g.w as isize).max(0) as usize);
    (ys, xs, div)
}

pub fn avg_pool2d<T: Float>(x: &[T], planes: usize, g: &PoolGeom) -> Vec<T> {
    let (hw, po) = (g.h * g.w, g.ho * g.wo);
    let mut out = vec![T::ZERO; planes * po];
    if po == 0 {
        return out;
    }
    out.par_chunks_mut(po).enumerate().for_each(|(pl, o)| {
        let src = &x[pl * hw..][..hw];
        for oy in 0..g.ho {
            for ox in 0..g.wo {
                let ((y0, y1), (x0, x1), div) = avg_window(g, oy, ox);
                let mut s = T::ZERO;
                for yy in y0..y1 {
                    for &v in &src[yy * g.w + x0..yy * g.w + x1] {
                        s += v;
                    }
                }
                o[oy * g.wo + ox] = s / T::from_f64(div as f64);
            }
        }
    });
    out
}

pub fn avg_pool2d_backward<T: Float>(gy: &[T], planes: usize, g: &PoolGeom) -> Vec<T> {
    let (hw, po) = (g.h * g.w, g.ho * g.wo);
    let mut dx = vec![T::ZERO; planes * hw];
    if po == 0 || hw == 0 {
        return dx;
    }
    dx.par_chunks_mut(hw).enumerate().for_each(|(pl, d)| {
        let gp = &gy[pl * po..][..po];
        for oy in 0..g.ho {
            for ox in 0..g.wo {
                let ((y0, y1), (x0, x1), div) = avg_window(g, oy, ox);
                let v = gp[oy * g.wo + ox] / T::from_f64(div as f64);
                for yy in y0..y1 {
                    for dv in &mut d[yy * g.w + x0..yy * g.w + x1] {
                        *dv += v;
                    }
                }
            }
        }
    });
    dx
}

/// torch's adaptive window of output `i`: `[floor(i·in/out), ceil((i+1)·in/out))`.
pub fn adaptive_range(i: usize, inp: usize, out: usize) -> (usize, usize) {
    (i * inp / out, ((i + 1) * inp).div_ceil(out))
}

pub fn adaptive_avg_pool2d<T: Float>(
    x: &[T],
    planes: usize,
    (h, w): (usize, usize),
    (ho, wo): (usize, usize),
) -> Vec<T> {
    let (hw, po) = (h * w, ho * wo);
    let mut out = vec![T::ZERO; planes * po];
    if po == 0 {
        return out;
    }
    out.par_chunks_mut(po).enumerate().for_each(|(pl, o)| {
        let src = &x[pl * hw..][..hw];
        for oy in 0..ho {
            let (y0, y1) = adaptive_range(oy, h, ho);
            for ox in 0..wo {
                let (x0, x1) = adaptive_range(ox, w, wo);
                let mut s = T::ZERO;
                for yy in y0..y1 {
                    for &v in &src[yy * w + x0..yy * w + x1] {
                        s += v;
                    }
                }
                o[oy * wo + ox] = s / T::from_f64(((y1 - y0) * (x1 - x0)) as f64);
            }
        }
    });
    out
}

pub fn adaptive_avg_pool2d_backward<T: Float>(
    gy: &[T],
    planes: usize,
    (h, w): (usize, usize),
    (ho, wo): (usize, usize),
) -> Vec<T> {
    let (hw, po) = (h * w, ho * wo);
    let mut dx = vec![T::ZERO; planes * hw];
    if po == 0 || hw == 0 {
        return dx;
    }
    dx.par_chunks_mut(hw).enumerate().for_each(|(pl, d)| {
        let gp = &gy[pl * po..][..po];
        for oy in 0..ho {
            let (y0, y1) = adaptive_range(oy, h, ho);
            for ox in 0..wo {
                let (x0, x1) = adaptive_range(ox, w, wo);
                let v = gp[oy * wo + ox] / T::from_f64(((y1 - y0) * (x1 - x0)) as f64);
                for yy in y0..y1 {
                    for dv in &mut d[yy * w + x0..yy * w + x1] {
                        *dv += v;
                    }
                }
            }
        }
    });
    dx
}
