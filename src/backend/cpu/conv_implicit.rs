//! Implicit-GEMM convolution for stride 1, dilation 1, one group and a kernel larger than
//! 1×1 (YOLOv8's 3×3 convs: most of its FLOPs), f32 on AVX-512.
//!
//! The input is copied once into a zero-padded buffer `[c, hp, wp]`. Output pixels are
//! numbered in the padded width, q = oy·wp + ox, so row (c, ky, kx) of the im2col matrix
//! is the contiguous run starting at c·hp·wp + ky·wp + kx: the GEMM kernel reads those
//! runs in place (`conv_avx512::Offsets`) and no im2col tile is ever written. The wp − wo
//! columns per output row that fall in the padding are computed and dropped (3–20 % extra
//! work on these sizes, against a full extra write and read of the im2col block).
//!
//! Stride 2 (YOLOv8's downsampling convs) takes the same route once the padded input is
//! split into its four phase planes `[c][row parity][column parity][hp/2][wp/2]`: input
//! pixel (2·oy + ky, 2·ox + kx) is pixel (oy + ky/2, ox + kx/2) of phase plane
//! (ky mod 2, kx mod 2), so im2col row (c, ky, kx) is again one contiguous run, with
//! output pixels numbered in the phase planes' width.
//!
//! The input gradient of a stride-1 convolution is itself such a convolution (of dy with
//! the kernel flipped and transposed, padded by k − 1 − p), so it takes the same path and
//! needs no col2im scatter either. `conv.rs` keeps the im2col path as the reference and
//! for every other shape.
use super::conv::ConvGeom;
use super::conv_avx512::{Offsets, gemm_rows, pack};
use super::{PAR_MIN, SendPtr};
use rayon::prelude::*;
use std::mem::MaybeUninit;

use super::conv::{KC, ordered_sum, wgrad_gemm};

/// Whether `forward` handles this geometry (and, with `backward_input`, its gradient).
pub fn applies(g: &ConvGeom) -> bool {
    super::conv_avx512::available()
        && g.stride == (1, 1)
        && g.dil == (1, 1)
        && g.groups == 1
        && g.kh * g.kw > 1
        && g.pad.0 < g.kh
        && g.pad.1 < g.kw
        && g.n * g.o * g.p() > 0
}

/// Whether `forward_s2` handles this geometry: stride 2, dilation 1, one group.
pub fn applies_s2(g: &ConvGeom) -> bool {
    super::conv_avx512::available()
        && g.stride == (2, 2)
        && g.dil == (1, 1)
        && g.groups == 1
        && g.pad.0 < g.kh
        && g.pad.1 < g.kw
        && g.ho == (g.h + 2 * g.pad.0).saturating_sub(g.kh) / 2 + 1
        && g.wo == (g.w + 2 * g.pad.1).saturating_sub(g.kw) / 2 + 1
        && g.h + 2 * g.pad.0 >= g.kh
        && g.w + 2 * g.pad.1 >= g.kw
        && g.n * g.o * g.p() > 0
}

/// `x` `[n, c, h, w]` zero-padded and split into phase planes `[n, c, 2, 2, hq, wq]`
/// (hq, wq = padded size / 2 rounded up), plus `slack` zeros at the end.
fn phase_split(x: &[f32], g: &ConvGeom, slack: usize) -> (Vec<f32>, usize, usize) {
    let (hq, wq) = (
        (g.h + 2 * g.pad.0).div_ceil(2),
        (g.w + 2 * g.pad.1).div_ceil(2),
    );
    let block = 4 * hq * wq;
    let mut xp = vec![0f32; g.n * g.c * block + slack];
    let fill = |(i, dst): (usize, &mut [f32])| {
        let src = &x[i * g.h * g.w..][..g.h * g.w];
        for (y, row) in src.chunks_exact(g.w).enumerate() {
            let py = y + g.pad.0;
            let base = (py % 2) * 2 * hq * wq + (py / 2) * wq;
            for (xx, &v) in row.iter().enumerate() {
                let px = xx + g.pad.1;
                dst[base + (px % 2) * hq * wq + px / 2] = v;
            }
        }
    };
    let planes = &mut xp[..g.n * g.c * block];
    if x.len() >= PAR_MIN {
        planes
            .par_chunks_exact_mut(block)
            .enumerate()
            .for_each(fill);
    } else {
        planes.chunks_exact_mut(block).enumerate().for_each(fill);
    }
    (xp, hq, wq)
}

/// `x` `[n, c, h, w]` copied into `[n, c, h + 2ph, w + 2pw]` with zero borders, plus
/// `slack` zeros at the end (the last image's dropped columns read a few past its block).
fn pad_input(x: &[f32], g: &ConvGeom, slack: usize) -> Vec<f32> {
    let (hp, wp) = (g.h + 2 * g.pad.0, g.w + 2 * g.pad.1);
    let plane = hp * wp;
    let mut xp = vec![0f32; g.n * g.c * plane + slack];
    let fill = |(i, dst): (usize, &mut [f32])| {
        let src = &x[i * g.h * g.w..][..g.h * g.w];
        for (y, row) in src.chunks_exact(g.w).enumerate() {
            dst[(y + g.pad.0) * wp + g.pad.1..][..g.w].copy_from_slice(row);
        }
    };
    let planes = &mut xp[..g.n * g.c * plane];
    if x.len() >= PAR_MIN {
        planes
            .par_chunks_exact_mut(plane)
            .enumerate()
            .for_each(fill);
    } else {
        planes.chunks_exact_mut(plane).enumerate().for_each(fill);
    }
    xp
}

/// The parts of virtual pixels `q0..q0 + tt` that are real output pixels: per padded row,
/// `f(j, oy, ox, keep)` for the `keep` pixels (oy, ox..ox + keep) at tile column j.
fn kept_runs(
    q0: usize,
    tt: usize,
    wp: usize,
    wo: usize,
    mut f: impl FnMut(usize, usize, usize, usize),
) {
    let mut q = q0;
    while q < q0 + tt {
        let (oy, ox) = (q / wp, q % wp);
        let run = (wp - ox).min(q0 + tt - q);
        f(q - q0, oy, ox, wo.saturating_sub(ox).min(run));
        q += run;
    }
}

/// Where im2col row (c, ky, kx) starts in one image's padded block.
fn row_offsets(g: &ConvGeom, wp: usize, plane: usize) -> Vec<usize> {
    let kk = g.kh * g.kw;
    (0..g.k())
        .map(|r| (r / kk) * plane + (r % kk / g.kw) * wp + r % g.kw)
        .collect()
}

/// `y = conv(x, w) + bias` for a geometry where `applies` holds; w is `[o, c·kh·kw]`.
pub fn forward(x: &[f32], wt: &[f32], bias: Option<&[f32]>, g: &ConvGeom) -> Vec<f32> {
    debug_assert!(applies(g));
    let (hp, wp) = (g.h + 2 * g.pad.0, g.w + 2 * g.pad.1);
    let plane = hp * wp;
    let xp = pad_input(x, g, wp + 16);
    let offs = row_offsets(g, wp, plane);
    forward_rows(&xp, g.c * plane, &offs, wp, wt, bias, g)
}

/// `forward` for stride 2 (`applies_s2`), through the phase planes.
pub fn forward_s2(x: &[f32], wt: &[f32], bias: Option<&[f32]>, g: &ConvGeom) -> Vec<f32> {
    debug_assert!(applies_s2(g));
    let (xp, hq, wq) = phase_split(x, g, wq_slack(g));
    let (quarter, kk) = (hq * wq, g.kh * g.kw);
    // Row (c, ky, kx): phase plane (ky mod 2, kx mod 2) of channel c, shifted by
    // (ky/2, kx/2).
    let offs: Vec<usize> = (0..g.k())
        .map(|r| {
            let (c, ky, kx) = (r / kk, r % kk / g.kw, r % g.kw);
            (c * 4 + (ky % 2) * 2 + kx % 2) * quarter + (ky / 2) * wq + kx / 2
        })
        .collect();
    forward_rows(&xp, g.c * 4 * quarter, &offs, wq, wt, bias, g)
}

/// Zeros past the last phase block: virtual pixels run to ho·wq and rows start up to
/// (kh/2)·wq + kw/2 later, which may pass the last block by about a row.
fn wq_slack(g: &ConvGeom) -> usize {
    2 * ((g.w + 2 * g.pad.1).div_ceil(2) + g.kw) + 16
}

/// The GEMM over virtual pixels `q = oy·wv + ox` (wv: the width the rows are laid out
/// in; columns ox ≥ wo are computed and dropped): row r of image i's im2col matrix is
/// the run at `xp[i·per_img + offs[r] + q]`.
fn forward_rows(
    xp: &[f32],
    per_img: usize,
    offs: &[usize],
    wv: usize,
    wt: &[f32],
    bias: Option<&[f32]>,
    g: &ConvGeom,
) -> Vec<f32> {
    let (k, o) = (g.k(), g.o);
    let a = pack::<8>(o, k, wt, k, 1);
    // Virtual pixels per image, and tiles of them (a multiple of the kernel's 48 columns).
    let pv = g.ho * wv;
    let t = ((64 << 10) / (4 * o).max(1)).clamp(48, 4096) / 48 * 48;
    let tiles = pv.div_ceil(t);
    let len = g.n * o * g.p();
    let mut out: Vec<f32> = Vec::with_capacity(len);
    let optr = SendPtr(out.as_mut_ptr() as *mut MaybeUninit<f32>);
    assert!(
        g.n == 0 || (g.n - 1) * per_img + offs.iter().max().map_or(0, |m| m + pv) <= xp.len(),
        "implicit conv: rows run past the input buffer"
    );
    let job = |ct: &mut Vec<f32>, jb: usize| {
        let (img, tile) = (jb / tiles, jb % tiles);
        let (q0, tt) = (tile * t, t.min(pv - tile * t));
        ct.resize(o * tt, 0.0);
        let rows = Offsets {
            // SAFETY: inside xp: the image's block start plus q0 < pv.
            ptr: unsafe { xp.as_ptr().add(img * per_img + q0) },
            offs,
        };
        // SAFETY: AVX-512F (applies); `a` is packed for o × k; every row read is
        // xp[img·per_img + offs[r] + q0 .. + tt], inside xp (asserted above); ct holds
        // o·tt values.
        unsafe { gemm_rows::<8, 3, _>(&a, o, k, rows, tt, &mut ct[..o * tt], KC, false) };
        // Keep the columns inside the output (ox < wo), adding the bias.
        kept_runs(q0, tt, wv, g.wo, |j, oy, ox, keep| {
            for oc in 0..o {
                let bv = bias.map_or(0.0, |b| b[oc]);
                let src = &ct[oc * tt + j..][..keep];
                // SAFETY: job (img, tile) alone writes output pixels (oy, ox..ox + keep) of
                // image img, channel oc, inside `out`'s capacity.
                let dst = unsafe {
                    std::slice::from_raw_parts_mut(
                        optr.get().add(((img * o + oc) * g.ho + oy) * g.wo + ox),
                        keep,
                    )
                };
                for (d, &s) in dst.iter_mut().zip(src) {
                    d.write(s + bv);
                }
            }
        });
    };
    (0..g.n * tiles)
        .into_par_iter()
        .for_each_init(Vec::new, job);
    // SAFETY: the tiles cover q in [0, ho·wv) of every image, so every output pixel
    // (oy, ox < wo) of every channel was written once.
    unsafe { out.set_len(len) };
    out
}

/// dL/dx given dy `[n, o, ho, wo]`: the stride-1 convolution of dy with w flipped in
/// space and transposed (`[c, o, kh, kw]`), padded by k − 1 − p.
pub fn backward_input(dy: &[f32], wt: &[f32], g: &ConvGeom) -> Vec<f32> {
    let (kk, k) = (g.kh * g.kw, g.k());
    let mut wf = vec![0f32; g.c * g.o * kk];
    for oc in 0..g.o {
        for ci in 0..g.c {
            for t in 0..kk {
                wf[(ci * g.o + oc) * kk + (kk - 1 - t)] = wt[oc * k + ci * kk + t];
            }
        }
    }
    let gt = ConvGeom {
        c: g.o,
        h: g.ho,
        w: g.wo,
        o: g.c,
        pad: (g.kh - 1 - g.pad.0, g.kw - 1 - g.pad.1),
        ho: g.h,
        wo: g.w,
        ..*g
    };
    forward(dy, &wf, None, &gt)
}

/// dL/dw `[o, c·kh·kw]`: Σ over images and tiles of virtual pixels of `dy_tile ·
/// rowsᵀ`, with dy laid out in the padded width (zeros in the dropped columns) and the
/// rows packed straight from the padded input. Fixed tile ranges summed in order, as
/// `conv::conv2d_backward_weight` (bitwise reproducible).
pub fn backward_weight(x: &[f32], dy: &[f32], g: &ConvGeom) -> Vec<f32> {
    debug_assert!(applies(g));
    let (hp, wp) = (g.h + 2 * g.pad.0, g.w + 2 * g.pad.1);
    let (plane, k, o) = (hp * wp, g.k(), g.o);
    let xp = pad_input(x, g, wp + 16);
    let offs = row_offsets(g, wp, plane);
    let pv = g.ho * wp;
    let t = ((256 << 10) / (4 * k).max(1)).clamp(16, 4096) / 16 * 16;
    let t = t.min(pv);
    let tiles = pv.div_ceil(t);
    let acc = ordered_sum(g.n * tiles, k * o, 0f32, |acc, range| {
        let (mut packed, mut dyt) = (Vec::new(), Vec::new());
        for jb in range {
            let (img, tile) = (jb / tiles, jb % tiles);
            let (q0, tt) = (tile * t, t.min(pv - tile * t));
            // dyᵀ for this tile's virtual pixels; dropped columns stay 0.
            dyt.clear();
            dyt.resize(tt * o, 0.0);
            kept_runs(q0, tt, wp, g.wo, |j0, oy, ox, keep| {
                for oc in 0..o {
                    let src = &dy[((img * o + oc) * g.ho + oy) * g.wo + ox..][..keep];
                    for (j, &v) in src.iter().enumerate() {
                        dyt[(j0 + j) * o + oc] = v;
                    }
                }
            });
            let base = img * g.c * plane + q0;
            wgrad_gemm(o, k, tt, &xp, |r| base + offs[r], &dyt, &mut packed, acc);
        }
    });
    let mut dw = vec![0f32; o * k];
    for kk in 0..k {
        for oc in 0..o {
            dw[oc * k + kk] = acc[kk * o + oc];
        }
    }
    dw
}
