//! AVX-512 f32 micro-kernel for conv2d's GEMMs `c[i][j] = Σ_k a[i][k]·b[k][j]`, b rows
//! contiguous (im2col rows, output-gradient rows). The generic GEMM reaches about half of
//! peak on these shapes; this kernel keeps an MR × (16·NV) block of c in 24 registers,
//! loads NV vectors of b and broadcasts MR values of a per k, and walks k in chunks whose
//! b block fits L1. Forward and input-gradient use 8 × 48; the weight gradient, whose j is
//! the output channels (often 64), uses 6 × 64.
#![allow(unsafe_op_in_unsafe_fn)]
use std::arch::x86_64::*;

use std::sync::atomic::{AtomicBool, Ordering};

static DISABLED: AtomicBool = AtomicBool::new(false);

/// Whether the kernel may run: the CPU has avx512f and it was not switched off.
pub fn available() -> bool {
    !DISABLED.load(Ordering::Relaxed) && std::arch::is_x86_feature_detected!("avx512f")
}

/// Switch the kernel off (process-wide) so the portable path — the one Arm boards such as
/// Jetson run — can be tested and timed on an AVX-512 machine.
pub fn set_disabled(off: bool) {
    DISABLED.store(off, Ordering::Relaxed);
}

/// A strided `[m, k]` matrix (element (i, j) at `a[i·rs + j·cs]`) repacked into `p` as
/// `[ceil(m/MR)][k][MR]` (zero rows past m), so the kernel reads the MR values of each k
/// contiguously.
pub fn pack_into<const MR: usize>(
    m: usize,
    k: usize,
    a: &[f32],
    rs: usize,
    cs: usize,
    p: &mut Vec<f32>,
) {
    if cs == 1 {
        return pack_rows_into::<MR>(m, k, a, |i| i * rs, p);
    }
    // Every element is overwritten below, so a reused buffer needs no clearing.
    p.resize(m.div_ceil(MR) * k * MR, 0.0);
    for (b, blk) in p.chunks_exact_mut(k * MR).enumerate() {
        let rows = MR.min(m - b * MR);
        for j in 0..k {
            for r in 0..MR {
                blk[j * MR + r] = if r < rows {
                    a[(b * MR + r) * rs + j * cs]
                } else {
                    0.0
                };
            }
        }
    }
}

/// `pack_into` for a matrix whose row i is the k values at `a[row(i)..]` (rows of the
/// zero-padded input in implicit-GEMM convolution).
pub fn pack_rows_into<const MR: usize>(
    m: usize,
    k: usize,
    a: &[f32],
    row: impl Fn(usize) -> usize,
    p: &mut Vec<f32>,
) {
    // Every element is overwritten below except the rows past m, which are zeroed there;
    // so a reused buffer needs no clearing.
    p.resize(m.div_ceil(MR) * k * MR, 0.0);
    for (b, blk) in p.chunks_exact_mut(k * MR).enumerate() {
        let rows = MR.min(m - b * MR);
        if rows == MR {
            // Read MR rows side by side and write each k's MR values contiguously.
            let src: [&[f32]; MR] = std::array::from_fn(|r| &a[row(b * MR + r)..][..k]);
            for (j, out) in blk.chunks_exact_mut(MR).enumerate() {
                for r in 0..MR {
                    out[r] = src[r][j];
                }
            }
        } else {
            for j in 0..k {
                for r in 0..MR {
                    blk[j * MR + r] = if r < rows {
                        a[row(b * MR + r) + j]
                    } else {
                        0.0
                    };
                }
            }
        }
    }
}

pub fn pack<const MR: usize>(m: usize, k: usize, a: &[f32], rs: usize, cs: usize) -> Vec<f32> {
    let mut p = Vec::new();
    pack_into::<MR>(m, k, a, rs, cs, &mut p);
    p
}

#[inline(always)]
fn lane_mask(n: usize, from: usize) -> __mmask16 {
    let v = n.saturating_sub(from).min(16);
    ((1u32 << v) - 1) as __mmask16
}

/// Where row k of the b operand starts: rows of a strided matrix, or rows at arbitrary
/// offsets (implicit-GEMM convolution: row (c, ky, kx) of the im2col matrix is a run of
/// the zero-padded input starting at c·hp·wp + ky·wp + kx, so it is never copied out).
pub trait Rows: Copy {
    /// # Safety
    /// k is below the row count the caller was given.
    unsafe fn row(self, k: usize) -> *const f32;
}

/// Row k at `ptr + k·stride`.
#[derive(Clone, Copy)]
pub struct Strided {
    pub ptr: *const f32,
    pub stride: usize,
}

impl Rows for Strided {
    #[inline(always)]
    unsafe fn row(self, k: usize) -> *const f32 {
        self.ptr.add(k * self.stride)
    }
}

/// Row k at `ptr + offs[k]`.
#[derive(Clone, Copy)]
pub struct Offsets<'a> {
    pub ptr: *const f32,
    pub offs: &'a [usize],
}

impl Rows for Offsets<'_> {
    #[inline(always)]
    unsafe fn row(self, k: usize) -> *const f32 {
        self.ptr.add(*self.offs.get_unchecked(k))
    }
}

/// `c[r][j] (+)= Σ_{k0≤k<k0+kc} a[(k−k0)·MR + r] · b.row(k)[j0 + j]` for `r < rows`,
/// `j < n ≤ 16·NV`.
///
/// # Safety
/// avx512f must be available; `a` holds `kc·MR` values, each b row `j0 + n` readable
/// values, `c` `rows` rows of stride `cs` with `n` values each.
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn kernel<const MR: usize, const NV: usize, R: Rows>(
    kc: usize,
    a: *const f32,
    b: R,
    (k0, j0): (usize, usize),
    c: *mut f32,
    cs: usize,
    rows: usize,
    n: usize,
    accumulate: bool,
) {
    let mut m = [0 as __mmask16; NV];
    for (v, mv) in m.iter_mut().enumerate() {
        *mv = lane_mask(n, 16 * v);
    }
    // The chunk's sum starts from zero and is added to c at the end: blocked summation, so
    // rounding error grows with kc + k/kc rather than with the whole k.
    let mut acc = [[_mm512_setzero_ps(); NV]; MR];
    let mut ap = a;
    for kk in 0..kc {
        let bp = b.row(k0 + kk).add(j0);
        let mut bv = [_mm512_setzero_ps(); NV];
        for (v, x) in bv.iter_mut().enumerate() {
            *x = _mm512_maskz_loadu_ps(m[v], bp.add(16 * v));
        }
        for (r, ar) in acc.iter_mut().enumerate() {
            let s = _mm512_set1_ps(*ap.add(r));
            for (x, &y) in ar.iter_mut().zip(&bv) {
                *x = _mm512_fmadd_ps(s, y, *x);
            }
        }
        ap = ap.add(MR);
    }
    for (r, ar) in acc.iter().enumerate().take(rows) {
        for (v, &x) in ar.iter().enumerate() {
            let p = c.add(r * cs + 16 * v);
            let x = if accumulate {
                _mm512_add_ps(x, _mm512_maskz_loadu_ps(m[v], p))
            } else {
                x
            };
            _mm512_mask_storeu_ps(p, m[v], x);
        }
    }
}

/// `c[m][n] (+)= A · b[k][n]` (row strides `bs` for b, `n` for c) with `ap` =
/// `pack::<MR>(m, k, A, ..)`. k is walked in chunks of `kc`, so a chunk's block of b stays
/// in L1 while every row block of A uses it.
///
/// # Safety
/// avx512f must be available; `ap` is packed for m × k; `b` holds `k` rows of stride `bs`
/// with `n` values each; `c` holds `m·n` values.
#[allow(clippy::too_many_arguments)]
pub unsafe fn gemm_packed<const MR: usize, const NV: usize>(
    ap: &[f32],
    m: usize,
    k: usize,
    b: &[f32],
    bs: usize,
    n: usize,
    c: &mut [f32],
    kc: usize,
    accumulate: bool,
) {
    debug_assert!(k == 0 || b.len() >= (k - 1) * bs + n);
    let rows = Strided {
        ptr: b.as_ptr(),
        stride: bs,
    };
    gemm_rows::<MR, NV, _>(ap, m, k, rows, n, c, kc, accumulate)
}

/// `gemm_packed` with b's rows wherever `rows` says.
///
/// # Safety
/// avx512f must be available; `ap` is packed for m × k; each of b's `k` rows has `n`
/// readable values; `c` holds `m·n` values.
#[allow(clippy::too_many_arguments)]
pub unsafe fn gemm_rows<const MR: usize, const NV: usize, R: Rows>(
    ap: &[f32],
    m: usize,
    k: usize,
    b: R,
    n: usize,
    c: &mut [f32],
    kc: usize,
    accumulate: bool,
) {
    debug_assert!(c.len() >= m * n && ap.len() >= m.div_ceil(MR) * k * MR);
    if k == 0 && !accumulate {
        c[..m * n].fill(0.0);
    }
    let nr = 16 * NV;
    let mut k0 = 0;
    while k0 < k {
        let kk = kc.min(k - k0);
        let mut j = 0;
        while j < n {
            let nn = nr.min(n - j);
            for blk in 0..m.div_ceil(MR) {
                kernel::<MR, NV, R>(
                    kk,
                    ap.as_ptr().add((blk * k + k0) * MR),
                    b,
                    (k0, j),
                    c.as_mut_ptr().add(blk * MR * n + j),
                    n,
                    MR.min(m - blk * MR),
                    nn,
                    accumulate || k0 > 0,
                );
            }
            j += nn;
        }
        k0 += kk;
    }
}
