//! Winograd F(4×4, 3×3) convolution for inference: the engine's f32 3×3 stride-1 convs
//! (three quarters of YOLOv8's multiply-adds). Lavin & Gray's algorithm: each 4×4 output
//! tile is `Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A` over its 6×6 input patch d, so the 16 outputs of
//! one (tile, input channel, output channel) cost 36 multiply-adds instead of 144. Summed
//! over input channels the elementwise products become 36 GEMMs
//! `M[ξ] = U[ξ] · V[ξ]` (`[o, c] · [c, tiles]`), done by the same kernels as the direct
//! convolution (`conv_avx512::gemm_packed` on AVX-512, else `gemm`).
//!
//! Rounding differs from direct summation (the transforms scale values by up to 5 in and
//! 8 out): on YOLOv8 the engine's outputs stay within 1e-5 relative of the direct path,
//! far inside the 1e-4 the ONNX parity asks for. Training and `forward_eval` keep the
//! direct kernels (exact gradients, bit-stable fixtures); only the engine executor calls
//! this, and it can be switched off there (`ExecOptions`).
//!
//! Work: tiles are numbered row-major per image and cut into blocks of at most `TB`; a job
//! is (image, block, chunk of output channels): it transforms its block's patches for all
//! input channels into V `[36][c][tiles]`, runs the 36 GEMMs into M `[36][oc chunk][tiles]`,
//! and transforms M back with bias and SiLU fused, writing its outputs directly.
//! Transforms work on lane groups: up to 16 consecutive tiles of one tile row. On AVX-512
//! a group's six input rows are read with masked loads straight from the input (the masks
//! stand in for the zero padding) and split into the six patch columns with permutes; the
//! output rows are interleaved back the same way. Elsewhere the input is first copied into
//! a zero-padded buffer and patches are gathered element by element.
use super::conv::ConvGeom;
use super::gemm::gemm;
use super::math::exp_f32;
use super::{PAR_MIN, SendPtr};
use rayon::prelude::*;

/// Tiles handled side by side by the transforms (one AVX-512 vector of f32).
const L: usize = 16;
type Lane = [f32; L];
/// Most tiles per block: three lane groups, the AVX-512 GEMM kernel's 48 columns. A
/// block's V and M (36·48·4 B = 6.9 KiB per channel each) stay in L2 for 64 channels.
const TB: usize = 48;
/// Output channels per GEMM row block (the packed layout's MR).
const MR: usize = 8;

/// Whether `forward` serves this geometry: 3×3, stride 1, dilation 1, one group.
pub fn applies(g: &ConvGeom) -> bool {
    g.kh == 3
        && g.kw == 3
        && g.stride == (1, 1)
        && g.dil == (1, 1)
        && g.groups == 1
        && g.c > 0
        && (g.h + 2 * g.pad.0).checked_sub(2) == Some(g.ho)
        && (g.w + 2 * g.pad.1).checked_sub(2) == Some(g.wo)
}

/// 3×3 weights transformed once: U = G g Gᵀ per (output, input channel), stored as 36
/// matrices `[o, c]` (`u`), and for AVX-512 also packed in the GEMM kernel's layout.
pub struct WinogradWeights {
    o: usize,
    c: usize,
    u: Vec<f32>,
    packed: Vec<f32>,
}

/// G of F(4, 3): the filter transform (rows: the 6 points 0, ±1, ±2, ∞).
const G: [[f64; 3]; 6] = [
    [1.0 / 4.0, 0.0, 0.0],
    [-1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0],
    [-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0],
    [1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0],
    [1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0],
    [0.0, 0.0, 1.0],
];

impl WinogradWeights {
    /// From weights `[o, c, 3, 3]` (computed in f64, rounded once to f32).
    pub fn new(w: &[f32], o: usize, c: usize) -> Self {
        assert_eq!(
            w.len(),
            o * c * 9,
            "winograd: weights are not [{o}, {c}, 3, 3]"
        );
        let mut u = vec![0f32; 36 * o * c];
        for (oc_ic, k) in w.chunks_exact(9).enumerate() {
            // G g, then (G g) Gᵀ.
            let mut gg = [[0f64; 3]; 6];
            for (a, row) in gg.iter_mut().enumerate() {
                for (j, v) in row.iter_mut().enumerate() {
                    *v = (0..3).map(|i| G[a][i] * f64::from(k[i * 3 + j])).sum();
                }
            }
            for a in 0..6 {
                for b in 0..6 {
                    let v: f64 = (0..3).map(|j| gg[a][j] * G[b][j]).sum();
                    u[(a * 6 + b) * o * c + oc_ic] = v as f32;
                }
            }
        }
        let packed = packed_for_avx512(&u, o, c);
        WinogradWeights { o, c, u, packed }
    }

    /// `[o, c]` of the weights this was made from.
    pub fn shape(&self) -> (usize, usize) {
        (self.o, self.c)
    }
}

#[cfg(target_arch = "x86_64")]
fn packed_for_avx512(u: &[f32], o: usize, c: usize) -> Vec<f32> {
    if !super::conv_avx512::available() {
        return Vec::new();
    }
    let mut out = Vec::with_capacity(36 * o.div_ceil(MR) * MR * c);
    for xi in 0..36 {
        out.extend(super::conv_avx512::pack::<MR>(
            o,
            c,
            &u[xi * o * c..][..o * c],
            c,
            1,
        ));
    }
    out
}

#[cfg(not(target_arch = "x86_64"))]
fn packed_for_avx512(_: &[f32], _: usize, _: usize) -> Vec<f32> {
    Vec::new()
}

/// Bᵀ of F(4, 3) applied to 6 values per lane.
#[inline(always)]
fn bt(d: &[Lane; 6]) -> [Lane; 6] {
    let mut v = [[0f32; L]; 6];
    for l in 0..L {
        let [d0, d1, d2, d3, d4, d5] = [d[0][l], d[1][l], d[2][l], d[3][l], d[4][l], d[5][l]];
        v[0][l] = 4.0 * d0 - 5.0 * d2 + d4;
        v[1][l] = (d3 + d4) - 4.0 * (d1 + d2);
        v[2][l] = (d4 - d3) + 4.0 * (d1 - d2);
        v[3][l] = (d4 - d2) + 2.0 * (d3 - d1);
        v[4][l] = (d4 - d2) + 2.0 * (d1 - d3);
        v[5][l] = 4.0 * d1 - 5.0 * d3 + d5;
    }
    v
}

/// Aᵀ of F(4, 3) applied to 6 values per lane.
#[inline(always)]
fn at(m: &[Lane; 6]) -> [Lane; 4] {
    let mut y = [[0f32; L]; 4];
    for l in 0..L {
        let (a, b) = (m[1][l] + m[2][l], m[1][l] - m[2][l]);
        let (c, d) = (m[3][l] + m[4][l], m[3][l] - m[4][l]);
        y[0][l] = m[0][l] + a + c;
        y[1][l] = b + 2.0 * d;
        y[2][l] = a + 4.0 * c;
        y[3][l] = b + 8.0 * d + m[5][l];
    }
    y
}

/// Shapes shared by a call's jobs.
struct Plan {
    c: usize,
    o: usize,
    h: usize,
    w: usize,
    pad: (usize, usize),
    ho: usize,
    wo: usize,
    /// Padded input plane (portable path): `hp` rows of `wp`.
    hp: usize,
    wp: usize,
    /// Tiles per row and per image.
    tw: usize,
    total: usize,
    /// Tiles per block and blocks per image.
    tb: usize,
    nblk: usize,
    /// Output channels per job (a multiple of MR) and chunks.
    oc: usize,
    chunks: usize,
}

/// Up to `L` consecutive tiles of one tile row: tiles (ty, tx0..tx0 + cnt), which are
/// columns col..col + cnt of the block's V and M.
#[derive(Clone, Copy, Debug)]
struct Group {
    ty: usize,
    tx0: usize,
    cnt: usize,
    col: usize,
}

/// The groups of tiles `t0..t0 + nt`.
fn groups(p: &Plan, t0: usize, nt: usize, out: &mut Vec<Group>) {
    out.clear();
    let mut t = t0;
    while t < t0 + nt {
        let (ty, tx0) = (t / p.tw, t % p.tw);
        let cnt = L.min(p.tw - tx0).min(t0 + nt - t);
        out.push(Group {
            ty,
            tx0,
            cnt,
            col: t - t0,
        });
        t += cnt;
    }
}

/// A job's scratch: V `[36][c][nt]`, M `[36][oc][nt]`, the block's groups.
#[derive(Default)]
struct Scratch {
    v: Vec<f32>,
    m: Vec<f32>,
    groups: Vec<Group>,
}

thread_local! {
    /// One scratch per worker thread, kept between calls (rayon's `for_each_init` would
    /// allocate and zero a new one for every split of the job range).
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch::default());
}

/// Bias, then SiLU if asked, on one lane vector.
#[inline(always)]
fn finish(y: &mut Lane, b: f32, silu: bool) {
    for v in y.iter_mut() {
        *v += b;
        if silu {
            *v /= 1.0 + exp_f32(-*v);
        }
    }
}

/// Portable V: patches gathered element by element from the padded planes `xp`.
fn input_transform(xp: &[f32], p: &Plan, gs: &[Group], nt: usize, v: &mut [f32]) {
    let plane = p.hp * p.wp;
    for ci in 0..p.c {
        let src = &xp[ci * plane..][..plane];
        for gr in gs {
            let mut d = [[[0f32; L]; 6]; 6];
            for l in 0..L {
                // Lanes past the group repeat its last tile (computed, never stored).
                let base = 4 * gr.ty * p.wp + 4 * (gr.tx0 + l.min(gr.cnt - 1));
                for (r, dr) in d.iter_mut().enumerate() {
                    let row = &src[base + r * p.wp..][..6];
                    for (q, dq) in dr.iter_mut().enumerate() {
                        dq[l] = row[q];
                    }
                }
            }
            // Bᵀ d B: along each row (q), then along each column (r).
            let rows: [[Lane; 6]; 6] = std::array::from_fn(|r| bt(&d[r]));
            for q in 0..6 {
                let col = bt(&std::array::from_fn(|r| rows[r][q]));
                for (r, vr) in col.iter().enumerate() {
                    v[((r * 6 + q) * p.c + ci) * nt + gr.col..][..gr.cnt]
                        .copy_from_slice(&vr[..gr.cnt]);
                }
            }
        }
    }
}

/// Where outputs go: image 0, channel 0 of the `[n, o, ho, wo]` output.
struct Out {
    ptr: SendPtr<f32>,
}

/// Portable Aᵀ M A for output channels `o0..o0 + ocn` of image `img`, with bias and SiLU,
/// stored element by element.
#[allow(clippy::too_many_arguments)]
fn output_transform(
    m: &[f32],
    p: &Plan,
    gs: &[Group],
    nt: usize,
    (o0, ocn): (usize, usize),
    bias: Option<&[f32]>,
    silu: bool,
    out: &Out,
    img: usize,
) {
    for i in 0..ocn {
        let oc = o0 + i;
        let b = bias.map_or(0.0, |b| b[oc]);
        for gr in gs {
            let mut mm = [[[0f32; L]; 6]; 6];
            for (xi, lane) in mm.iter_mut().flatten().enumerate() {
                lane[..gr.cnt].copy_from_slice(&m[(xi * ocn + i) * nt + gr.col..][..gr.cnt]);
            }
            // Aᵀ along each row (q), then along each column (r).
            let rows: [[Lane; 4]; 6] = std::array::from_fn(|r| at(&mm[r]));
            let mut y = [[[0f32; L]; 4]; 4];
            for j in 0..4 {
                let col = at(&std::array::from_fn(|r| rows[r][j]));
                for (yi, ci) in y.iter_mut().zip(col) {
                    yi[j] = ci;
                }
            }
            for yv in y.iter_mut().flatten() {
                finish(yv, b, silu);
            }
            let plane = out.ptr.get();
            for l in 0..gr.cnt {
                let (oy, ox) = (4 * gr.ty, 4 * (gr.tx0 + l));
                for (di, yi) in y.iter().enumerate().take(p.ho - oy) {
                    for (dj, yj) in yi.iter().enumerate().take(p.wo - ox) {
                        let at = ((img * p.o + oc) * p.ho + oy + di) * p.wo + ox + dj;
                        // SAFETY: (img, oc, oy+di, ox+dj) is inside the output, whose
                        // capacity is n·o·ho·wo; only this job writes this tile's outputs
                        // of channel oc.
                        unsafe { *plane.add(at) = yj[l] };
                    }
                }
            }
        }
    }
}

/// The 36 GEMMs `M[ξ] = U[ξ][o0..o0 + ocn] · V[ξ]`.
fn gemms(ww: &WinogradWeights, p: &Plan, (o0, ocn): (usize, usize), nt: usize, s: &mut Scratch) {
    for xi in 0..36 {
        let v = &s.v[xi * p.c * nt..][..p.c * nt];
        let m = &mut s.m[xi * ocn * nt..][..ocn * nt];
        #[cfg(target_arch = "x86_64")]
        if !ww.packed.is_empty() && super::conv_avx512::available() {
            let per = ww.o.div_ceil(MR) * MR * ww.c;
            let ap = &ww.packed[xi * per + o0 * ww.c..];
            // SAFETY: avx512f is available (checked); `ap` holds the packed rows o0.. of
            // U[ξ] (o0 is a multiple of MR), `v` c rows of nt, `m` ocn·nt values.
            unsafe {
                super::conv_avx512::gemm_packed::<MR, 3>(
                    ap,
                    ocn,
                    p.c,
                    v,
                    nt,
                    nt,
                    m,
                    super::conv::KC,
                    false,
                )
            };
            continue;
        }
        let u = &ww.u[(xi * ww.o + o0) * ww.c..][..ocn * ww.c];
        gemm(ocn, nt, p.c, m, nt, 1, u, ww.c, 1, v, nt, 1, false);
    }
}

/// Tiles, channels and sizes of job `jb`, with its scratch sized and its groups listed.
fn job_setup(p: &Plan, jb: usize, s: &mut Scratch) -> (usize, usize, (usize, usize)) {
    let (img, blk, ch) = (
        jb / (p.nblk * p.chunks),
        jb / p.chunks % p.nblk,
        jb % p.chunks,
    );
    let t0 = blk * p.tb;
    let nt = p.tb.min(p.total - t0);
    let o0 = ch * p.oc;
    let ocn = p.oc.min(p.o - o0);
    if s.v.len() < 36 * p.c * nt {
        s.v.resize(36 * p.c * nt, 0.0);
    }
    if s.m.len() < 36 * ocn * nt {
        s.m.resize(36 * ocn * nt, 0.0);
    }
    groups(p, t0, nt, &mut s.groups);
    (img, nt, (o0, ocn))
}

/// One job of the portable path (`xp`: padded planes of all images).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn job(
    xp: &[f32],
    ww: &WinogradWeights,
    bias: Option<&[f32]>,
    silu: bool,
    p: &Plan,
    jb: usize,
    s: &mut Scratch,
    out: &Out,
) {
    let (img, nt, oc) = job_setup(p, jb, s);
    let plane = p.hp * p.wp;
    let gs = std::mem::take(&mut s.groups);
    input_transform(
        &xp[img * p.c * plane..][..p.c * plane],
        p,
        &gs,
        nt,
        &mut s.v,
    );
    gemms(ww, p, oc, nt, s);
    output_transform(&s.m, p, &gs, nt, oc, bias, silu, out, img);
    s.groups = gs;
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn job_avx2(
    xp: &[f32],
    ww: &WinogradWeights,
    bias: Option<&[f32]>,
    silu: bool,
    p: &Plan,
    jb: usize,
    s: &mut Scratch,
    out: &Out,
) {
    job(xp, ww, bias, silu, p, jb, s, out)
}

/// The AVX-512 transforms: masked row loads and permutes instead of element gathers.
#[cfg(target_arch = "x86_64")]
mod avx512 {
    #![allow(unsafe_op_in_unsafe_fn)]
    use super::*;
    use std::arch::x86_64::*;

    /// Index vectors for `_mm512_permutex2var_ps(a, idx, b)` (16 + i picks b's lane i).
    const fn idx(f: [u32; 16]) -> [u32; 16] {
        f
    }
    const EVEN: [u32; 16] = idx([0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30]);
    const ODD: [u32; 16] = idx([1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31]);
    const NEXT0: [u32; 16] = idx([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]);
    const NEXT1: [u32; 16] = idx([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 17]);
    const ZIP_LO: [u32; 16] = idx([0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23]);
    const ZIP_HI: [u32; 16] = idx([8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31]);

    #[inline(always)]
    unsafe fn iv(i: &[u32; 16]) -> __m512i {
        _mm512_loadu_si512(i.as_ptr() as *const _)
    }

    #[inline(always)]
    unsafe fn perm(a: __m512, i: __m512i, b: __m512) -> __m512 {
        _mm512_permutex2var_ps(a, i, b)
    }

    #[inline(always)]
    unsafe fn lanes_mask(n: usize) -> __mmask16 {
        ((1u32 << n.min(16)) - 1) as __mmask16
    }

    /// Bᵀ on six vectors.
    #[inline(always)]
    unsafe fn bt(d: [__m512; 6]) -> [__m512; 6] {
        let (f2, f4, f5) = (
            _mm512_set1_ps(2.0),
            _mm512_set1_ps(4.0),
            _mm512_set1_ps(5.0),
        );
        let (add, sub) = (_mm512_add_ps, _mm512_sub_ps);
        let (d31, d42) = (sub(d[3], d[1]), sub(d[4], d[2]));
        [
            _mm512_fmadd_ps(f4, d[0], _mm512_fnmadd_ps(f5, d[2], d[4])),
            _mm512_fnmadd_ps(f4, add(d[1], d[2]), add(d[3], d[4])),
            _mm512_fmadd_ps(f4, sub(d[1], d[2]), sub(d[4], d[3])),
            _mm512_fmadd_ps(f2, d31, d42),
            _mm512_fnmadd_ps(f2, d31, d42),
            _mm512_fmadd_ps(f4, d[1], _mm512_fnmadd_ps(f5, d[3], d[5])),
        ]
    }

    /// Aᵀ on six vectors.
    #[inline(always)]
    unsafe fn at(m: [__m512; 6]) -> [__m512; 4] {
        let (add, sub) = (_mm512_add_ps, _mm512_sub_ps);
        let (a, b) = (add(m[1], m[2]), sub(m[1], m[2]));
        let (c, d) = (add(m[3], m[4]), sub(m[3], m[4]));
        [
            add(add(m[0], a), c),
            _mm512_fmadd_ps(_mm512_set1_ps(2.0), d, b),
            _mm512_fmadd_ps(_mm512_set1_ps(4.0), c, a),
            add(_mm512_fmadd_ps(_mm512_set1_ps(8.0), d, b), m[5]),
        ]
    }

    /// V of every input channel for the groups `gs` (x: this image's `[c, h, w]`).
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn input_transform(
        x: &[f32],
        p: &Plan,
        gs: &[Group],
        nt: usize,
        v: &mut [f32],
    ) {
        let (even, odd, next0, next1) = (iv(&EVEN), iv(&ODD), iv(&NEXT0), iv(&NEXT1));
        let vp = v.as_mut_ptr();
        // Column masks of each group's five loads (the zero padding left and right).
        let mut masks = [[0 as __mmask16; 5]; TB];
        for (gr, mg) in gs.iter().zip(masks.iter_mut()) {
            let ix0 = (4 * gr.tx0) as isize - p.pad.1 as isize;
            for (k, m) in mg.iter_mut().enumerate() {
                for lane in 0..16 {
                    let col = ix0 + (16 * k + lane) as isize;
                    if col >= 0 && (col as usize) < p.w {
                        *m |= 1 << lane;
                    }
                }
            }
        }
        debug_assert!(gs.len() <= TB);
        // Channel-major, groups inner: the reads walk along the input rows.
        for ci in 0..p.c {
            for (gr, masks) in gs.iter().zip(&masks) {
                let ix0 = (4 * gr.tx0) as isize - p.pad.1 as isize;
                let store = lanes_mask(gr.cnt);
                let plane = x.as_ptr().add(ci * p.h * p.w);
                let mut rows = [[_mm512_setzero_ps(); 6]; 6];
                for (r, tr) in rows.iter_mut().enumerate() {
                    let iy = (4 * gr.ty + r) as isize - p.pad.0 as isize;
                    let d = if iy >= 0 && (iy as usize) < p.h {
                        // Lanes outside the row are masked off, never read.
                        let row = plane.wrapping_offset(iy * p.w as isize + ix0);
                        let mut a = [_mm512_setzero_ps(); 5];
                        for (k, ak) in a.iter_mut().enumerate() {
                            *ak = _mm512_maskz_loadu_ps(masks[k], row.wrapping_add(16 * k));
                        }
                        let (e01, o01) = (perm(a[0], even, a[1]), perm(a[0], odd, a[1]));
                        let (e23, o23) = (perm(a[2], even, a[3]), perm(a[2], odd, a[3]));
                        let (p0, p1) = (perm(e01, even, e23), perm(o01, even, o23));
                        let (p2, p3) = (perm(e01, odd, e23), perm(o01, odd, o23));
                        [p0, p1, p2, p3, perm(p0, next0, a[4]), perm(p1, next1, a[4])]
                    } else {
                        [_mm512_setzero_ps(); 6]
                    };
                    *tr = bt(d);
                }
                for q in 0..6 {
                    let mut c6 = [_mm512_setzero_ps(); 6];
                    for (r, v) in c6.iter_mut().enumerate() {
                        *v = rows[r][q];
                    }
                    let col = bt(c6);
                    for (r, &vr) in col.iter().enumerate() {
                        let dst = vp.add(((r * 6 + q) * p.c + ci) * nt + gr.col);
                        _mm512_mask_storeu_ps(dst, store, vr);
                    }
                }
            }
        }
    }

    /// Aᵀ M A with bias and SiLU for output channels `o0..o0 + ocn` of image `img`.
    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn output_transform(
        m: &[f32],
        p: &Plan,
        gs: &[Group],
        nt: usize,
        (o0, ocn): (usize, usize),
        bias: Option<&[f32]>,
        silu: bool,
        out: &Out,
        img: usize,
    ) {
        let (zlo, zhi) = (iv(&ZIP_LO), iv(&ZIP_HI));
        let mp = m.as_ptr();
        // Channel-major, groups inner: the stores walk along the output rows.
        for i in 0..ocn {
            let oc = o0 + i;
            let b = bias.map_or(0.0, |b| b[oc]);
            for gr in gs {
                let load = lanes_mask(gr.cnt);
                let (oy0, ox0) = (4 * gr.ty, 4 * gr.tx0);
                // Valid output columns of the group's 4·cnt: 16 per stored vector.
                let valid = (4 * gr.cnt).min(p.wo - ox0);
                let mut smask = [0 as __mmask16; 4];
                for (k, m) in smask.iter_mut().enumerate() {
                    *m = lanes_mask(valid.saturating_sub(16 * k));
                }
                // (Loops, not closures: a closure would not inherit avx512f.)
                let mut rows = [[_mm512_setzero_ps(); 4]; 6];
                for (r, row) in rows.iter_mut().enumerate() {
                    let mut mr = [_mm512_setzero_ps(); 6];
                    for (q, v) in mr.iter_mut().enumerate() {
                        let src = mp.add(((r * 6 + q) * ocn + i) * nt + gr.col);
                        *v = _mm512_maskz_loadu_ps(load, src);
                    }
                    *row = at(mr);
                }
                let dst = out
                    .ptr
                    .get()
                    .add(((img * p.o + oc) * p.ho + oy0) * p.wo + ox0);
                let mut cols = [[_mm512_setzero_ps(); 4]; 4];
                for (j, col) in cols.iter_mut().enumerate() {
                    let mut c6 = [_mm512_setzero_ps(); 6];
                    for (r, v) in c6.iter_mut().enumerate() {
                        *v = rows[r][j];
                    }
                    *col = at(c6);
                }
                for di in 0..4.min(p.ho - oy0) {
                    let mut y = [cols[0][di], cols[1][di], cols[2][di], cols[3][di]];
                    for yj in y.iter_mut() {
                        let mut l: Lane = std::mem::transmute(*yj);
                        finish(&mut l, b, silu);
                        *yj = std::mem::transmute::<Lane, __m512>(l);
                    }
                    // out[4l + j] = y[j][l]: zip y0 with y2 and y1 with y3, then the pairs.
                    let (u_lo, u_hi) = (perm(y[0], zlo, y[2]), perm(y[0], zhi, y[2]));
                    let (w_lo, w_hi) = (perm(y[1], zlo, y[3]), perm(y[1], zhi, y[3]));
                    let o = [
                        perm(u_lo, zlo, w_lo),
                        perm(u_lo, zhi, w_lo),
                        perm(u_hi, zlo, w_hi),
                        perm(u_hi, zhi, w_hi),
                    ];
                    let row = dst.add(di * p.wo);
                    for (k, &ok) in o.iter().enumerate() {
                        if smask[k] != 0 {
                            _mm512_mask_storeu_ps(row.add(16 * k), smask[k], ok);
                        }
                    }
                }
            }
        }
    }
}

/// One job on AVX-512 (`x`: all images, unpadded).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn job_avx512(
    x: &[f32],
    ww: &WinogradWeights,
    bias: Option<&[f32]>,
    silu: bool,
    p: &Plan,
    jb: usize,
    s: &mut Scratch,
    out: &Out,
) {
    let (img, nt, oc) = job_setup(p, jb, s);
    let gs = std::mem::take(&mut s.groups);
    let per = p.c * p.h * p.w;
    // SAFETY: avx512f is enabled here (the caller checked the CPU).
    unsafe { avx512::input_transform(&x[img * per..][..per], p, &gs, nt, &mut s.v) };
    gemms(ww, p, oc, nt, s);
    // SAFETY: as above; `out` has room for every output of this job's tiles and channels.
    unsafe { avx512::output_transform(&s.m, p, &gs, nt, oc, bias, silu, out, img) };
    s.groups = gs;
}

/// `x` `[n, c, h, w]` into `[n, c, hp, wp]` at offset (ph, pw), zeros elsewhere.
fn pad_input(x: &[f32], g: &ConvGeom, hp: usize, wp: usize) -> Vec<f32> {
    let plane = hp * wp;
    let mut xp = vec![0f32; g.n * g.c * plane];
    let fill = |(i, dst): (usize, &mut [f32])| {
        let src = &x[i * g.h * g.w..][..g.h * g.w];
        for (y, row) in src.chunks_exact(g.w.max(1)).enumerate() {
            dst[(y + g.pad.0) * wp + g.pad.1..][..g.w].copy_from_slice(row);
        }
    };
    if x.len() >= PAR_MIN {
        xp.par_chunks_exact_mut(plane).enumerate().for_each(fill);
    } else {
        xp.chunks_exact_mut(plane).enumerate().for_each(fill);
    }
    xp
}

/// `y = conv(x, w) + bias`, then SiLU if `silu`: x `[n, c, h, w]`, y `[n, o, ho, wo]`,
/// with `ww` made from the 3×3 weights. Panics if `applies(g)` does not hold or the
/// buffers do not match `g` (the executor checks shapes first).
pub fn forward(
    x: &[f32],
    ww: &WinogradWeights,
    bias: Option<&[f32]>,
    silu: bool,
    g: &ConvGeom,
) -> Vec<f32> {
    assert!(applies(g), "winograd: geometry {g:?}");
    assert_eq!(
        (ww.o, ww.c),
        (g.o, g.c),
        "winograd: weights for another conv"
    );
    assert_eq!(x.len(), g.n * g.c * g.hw(), "winograd: input length");
    assert!(bias.is_none_or(|b| b.len() == g.o), "winograd: bias length");
    let len = g.n * g.o * g.p();
    if len == 0 {
        return Vec::new();
    }
    let (th, tw) = (g.ho.div_ceil(4), g.wo.div_ceil(4));
    let total = th * tw;
    let nblk = total.div_ceil(TB);
    let tb = total.div_ceil(nblk);
    // Enough jobs to keep every thread busy: split output channels when blocks are few.
    let want = 4 * rayon::current_num_threads();
    let obs = g.o.div_ceil(MR);
    let chunks = want.div_ceil(g.n * nblk).clamp(1, obs);
    let oc = obs.div_ceil(chunks) * MR;
    let chunks = g.o.div_ceil(oc);
    let p = Plan {
        c: g.c,
        o: g.o,
        h: g.h,
        w: g.w,
        pad: g.pad,
        ho: g.ho,
        wo: g.wo,
        hp: 4 * th + 2,
        wp: 4 * tw + 2,
        tw,
        total,
        tb,
        nblk,
        oc,
        chunks,
    };
    let mut y: Vec<f32> = Vec::with_capacity(len);
    let out = Out {
        ptr: SendPtr(y.as_mut_ptr()),
    };
    let jobs = g.n * p.nblk * p.chunks;
    // `available` (not just the CPU flag) so tests can run the portable path here too.
    #[cfg(target_arch = "x86_64")]
    if super::conv_avx512::available() {
        let run = |s: &mut Scratch, jb: usize| {
            // SAFETY: the CPU has AVX-512F (`available` checked it above).
            unsafe { job_avx512(x, ww, bias, silu, &p, jb, s, &out) }
        };
        (0..jobs)
            .into_par_iter()
            .for_each(|jb| SCRATCH.with(|s| run(&mut s.borrow_mut(), jb)));
        // SAFETY: the jobs cover every (image, block, channel chunk), and each writes every
        // in-range output of its tiles and channels: all `len` values are initialised.
        unsafe { y.set_len(len) };
        return y;
    }
    let xp = pad_input(x, g, p.hp, p.wp);
    let run = |s: &mut Scratch, jb: usize| {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU has AVX2 and FMA (checked just above).
            return unsafe { job_avx2(&xp, ww, bias, silu, &p, jb, s, &out) };
        }
        job(&xp, ww, bias, silu, &p, jb, s, &out)
    };
    (0..jobs)
        .into_par_iter()
        .for_each(|jb| SCRATCH.with(|s| run(&mut s.borrow_mut(), jb)));
    // SAFETY: as above: every output is written by exactly one job.
    unsafe { y.set_len(len) };
    y
}
