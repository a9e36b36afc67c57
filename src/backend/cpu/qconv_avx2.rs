//! The AVX2 path of `qconv` (x86-64 with AVX2 and FMA; the contract is in `qconv`'s docs).
//!
//! GEMM `acc[oc][p] = Σ_k w[oc][k] · col[k][p]` with the output pixels on the vector axis,
//! so each accumulator is 8 consecutive pixels of one output channel and goes straight to
//! the NCHW output. Products are exact: i8 values widened to i16 and `vpmaddwd`
//! (`_mm256_madd_epi16`) multiplies 16 pairs and adds adjacent products into 8 i32 lanes,
//! so k runs in pairs: the weights are packed once as `[group][oc block of MR][k/2][MR]`
//! i32 (two i16 each), a tile of im2col rows as `[pixel block of NR][k/2][NR][2]` i16.
//! The register block is MR = 4 output channels × NR = 16 pixels (8 accumulators, 2
//! pixel vectors, 1 broadcast weight pair). k is walked in chunks of at most `KPC_MAX`
//! pairs so one block's pixel panel (`KPC_MAX · 64` bytes) stays in L1 while the weights
//! stream past; partial sums between chunks live in a per-job i32 buffer.
//! (`_mm256_maddubs_epi16` on |x| and sign-moved weights does 32 products per instruction
//! but needs a `vpsignb` per block product and a second `vpmaddwd` to widen: no fewer
//! instructions per product than the i16 pairs, and the pairs are simpler.)
#![allow(unsafe_op_in_unsafe_fn)]
use super::SendPtr;
use super::conv::ConvGeom;
use super::int8_gemm::Activation;
use super::qconv::{is_pointwise, quantize_one};
use rayon::prelude::*;
use std::arch::x86_64::*;

/// Output channels per register block.
pub(super) const MR: usize = 4;
/// Output pixels per register block (2 vectors of 8).
pub(super) const NR: usize = 16;
const NV: usize = NR / 8;
/// Most k pairs per chunk: a block's pixel panel is `KPC_MAX · NR · 4` bytes (18 KiB).
const KPC_MAX: usize = 192;
/// Bytes of pixel panel per tile (a tile's panel stays in L2).
const PANEL_BYTES: usize = 384 << 10;

/// Whether this path may run (AVX2 and FMA).
pub fn available() -> bool {
    std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
}

/// `wq [o, k]` (groups of `o/groups` rows) as `[group][ceil(og/MR)][ceil(k/2)][MR]` i32,
/// each the i16 pair `(w[2j], w[2j+1])` (low half first); zero past og and past k.
pub(super) fn pack_weights(wq: &[i8], o: usize, k: usize, groups: usize) -> Vec<i32> {
    let og = o / groups;
    let (ob, kp) = (og.div_ceil(MR), k.div_ceil(2));
    let mut out = vec![0i32; groups * ob * kp * MR];
    let half = |v: i8| i32::from(v as i16 as u16);
    if kp == 0 {
        return out;
    }
    out.par_chunks_mut(kp * MR)
        .enumerate()
        .for_each(|(gb, blk)| {
            let (grp, b) = (gb / ob, gb % ob);
            for i in 0..MR.min(og - b * MR) {
                let row = &wq[(grp * og + b * MR + i) * k..][..k];
                for (j, pair) in row.chunks(2).enumerate() {
                    let hi = pair.get(1).map_or(0, |&v| half(v));
                    blk[j * MR + i] = half(pair[0]) | (hi << 16);
                }
            }
        });
    out
}

/// `qconv::quantize_s8` with 8 lanes: divide, NaN → 0, clamp, round to nearest even, then
/// pack 32 values to bytes. Same results as `quantize_one` (clamping to integer bounds
/// before rounding changes nothing).
///
/// # Safety
/// The CPU must have AVX2; `out.len() == x.len()`.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn quantize(x: &[f32], scale: f32, out: &mut [i8]) {
    let n = x.len().min(out.len());
    let s = _mm256_set1_ps(scale);
    let (lo, hi) = (_mm256_set1_ps(-128.0), _mm256_set1_ps(127.0));
    let perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    let one = |p: *const f32| {
        let a = _mm256_div_ps(_mm256_loadu_ps(p), s);
        let a = _mm256_and_ps(a, _mm256_cmp_ps::<_CMP_ORD_Q>(a, a));
        let a = _mm256_min_ps(_mm256_max_ps(a, lo), hi);
        _mm256_cvtps_epi32(_mm256_round_ps::<
            { _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC },
        >(a))
    };
    let mut i = 0;
    while i + 32 <= n {
        let p = x.as_ptr().add(i);
        let ab = _mm256_packs_epi32(one(p), one(p.add(8)));
        let cd = _mm256_packs_epi32(one(p.add(16)), one(p.add(24)));
        let b = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(ab, cd), perm);
        _mm256_storeu_si256(out.as_mut_ptr().add(i) as *mut __m256i, b);
        i += 32;
    }
    for j in i..n {
        out[j] = quantize_one(x[j], scale);
    }
}

/// Bytes readable past the end of the padded input and of a line buffer: the copy loops
/// below move whole vectors and may read (and write, into lines) up to 64 bytes past the
/// last element they need.
pub(super) const SLACK: usize = 128;

/// The input quantized (`quantize`) into zero-padded planes `[n·c][hp][wp]` (`hp = h +
/// 2·pad.0`, `wp = w + 2·pad.1`) followed by SLACK + `extra` zero bytes, so im2col needs no bounds
/// checks: padding reads the zeros that quantizing 0.0 would give.
pub(super) fn quantize_padded(
    x: &[f32],
    in_scale: f32,
    g: &ConvGeom,
    extra: usize,
) -> (Vec<i8>, usize, usize) {
    let (hp, wp) = (g.h + 2 * g.pad.0, g.w + 2 * g.pad.1);
    let planes = g.n * g.c;
    let mut q = vec![0i8; planes * hp * wp + SLACK + extra];
    let hw = g.hw();
    if hw == 0 {
        return (q, hp, wp);
    }
    let (body, _) = q.split_at_mut(planes * hp * wp);
    if g.pad == (0, 0) {
        const CHUNK: usize = 1 << 16;
        body.par_chunks_mut(CHUNK)
            .zip(x.par_chunks(CHUNK))
            // SAFETY: callers run this only where available() holds; equal lengths.
            .for_each(|(q, x)| unsafe { quantize(x, in_scale, q) });
    } else {
        let min_planes = (1usize << 15).div_ceil(hw);
        body.par_chunks_mut(hp * wp)
            .zip(x.par_chunks(hw))
            .with_min_len(min_planes)
            .for_each_init(
                || vec![0i8; hw],
                |tmp, (dst, src)| {
                    // SAFETY: as above; tmp has hw = src.len() bytes.
                    unsafe { quantize(src, in_scale, tmp) };
                    for (y, row) in tmp.chunks_exact(g.w).enumerate() {
                        let at = (y + g.pad.0) * wp + g.pad.1;
                        dst[at..at + g.w].copy_from_slice(row);
                    }
                },
            );
    }
    (q, hp, wp)
}

/// Row `r` = (c, ky, kx) of the im2col matrix for output pixels `p0..p0 + tt`, from the
/// padded planes at `xg` (`wp` wide, `plane` bytes apart), into `dst`.
///
/// # Safety
/// AVX2; every byte the pixels need lies in the padded input and SLACK bytes follow it;
/// `dst` has `tt + SLACK` bytes.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn im2col_row(
    xg: *const i8,
    g: &ConvGeom,
    (plane, wp): (usize, usize),
    r: usize,
    p0: usize,
    tt: usize,
    dst: *mut i8,
) {
    let kk = g.kh * g.kw;
    let (c, ky, kx) = (r / kk, r % kk / g.kw, r % g.kw);
    let base = xg.add(c * plane + ky * g.dil.0 * wp + kx * g.dil.1);
    let (sh, sw) = g.stride;
    let even = _mm256_setr_epi8(
        0, 2, 4, 6, 8, 10, 12, 14, 0, 0, 0, 0, 0, 0, 0, 0, //
        0, 2, 4, 6, 8, 10, 12, 14, 0, 0, 0, 0, 0, 0, 0, 0,
    );
    let mut j = 0;
    while j < tt {
        let p = p0 + j;
        let (oy, ox0) = (p / g.wo, p % g.wo);
        let run = (g.wo - ox0).min(tt - j);
        let src = base.add(oy * sh * wp + ox0 * sw);
        let d = dst.add(j);
        match sw {
            1 => {
                for i in (0..run).step_by(32) {
                    let v = _mm256_loadu_si256(src.add(i) as *const __m256i);
                    _mm256_storeu_si256(d.add(i) as *mut __m256i, v);
                }
            }
            2 => {
                for i in (0..run).step_by(32) {
                    let s = src.add(2 * i);
                    let a = _mm256_shuffle_epi8(_mm256_loadu_si256(s as *const __m256i), even);
                    let b =
                        _mm256_shuffle_epi8(_mm256_loadu_si256(s.add(32) as *const __m256i), even);
                    let v = _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_unpacklo_epi64(a, b));
                    _mm256_storeu_si256(d.add(i) as *mut __m256i, v);
                }
            }
            _ => {
                for i in 0..run {
                    *d.add(i) = *src.add(i * sw);
                }
            }
        }
        j += run;
    }
}

/// One k pair of a tile's pixel panel: pixel j < tpad gets `(a[j], b[j])` as i16, at
/// `dst + (j / NR)·block + (j % NR)·2`. Pixels past the tile's end carry whatever the
/// lines hold there (their outputs are not stored).
///
/// # Safety
/// AVX2; `a` and `b` readable for `tpad` bytes; the panel holds `tpad / NR` blocks.
#[target_feature(enable = "avx2")]
unsafe fn interleave(a: *const i8, b: *const i8, tpad: usize, dst: *mut i16, block: usize) {
    for jb in 0..tpad / NR {
        let d = dst.add(jb * block);
        for v in 0..NV {
            let at = jb * NR + v * 8;
            let va = _mm_loadl_epi64(a.add(at) as *const __m128i);
            let vb = _mm_loadl_epi64(b.add(at) as *const __m128i);
            let w = _mm256_cvtepi8_epi16(_mm_unpacklo_epi8(va, vb));
            _mm256_storeu_si256(d.add(v * 16) as *mut __m256i, w);
        }
    }
}

/// `Activation` as a const parameter, so each kernel's epilogue is straight-line code.
pub(super) const ACT_NONE: u8 = 0;
pub(super) const ACT_RELU: u8 = 1;
pub(super) const ACT_SILU: u8 = 2;

/// One tile's register blocks for one k chunk.
struct TileArgs {
    /// k pairs in this chunk.
    kpn: usize,
    /// Pixel blocks (of NR) in the tile.
    nb: usize,
    /// Output channel blocks (of MR) `ob.0..ob.1` of the group.
    ob: (usize, usize),
    /// Packed weights of the group at this chunk's first pair: block `b` at `w + b·w_stride`.
    w: *const i32,
    w_stride: usize,
    /// The tile's pixel panel: pixel block j at `x + j·blk`.
    x: *const i16,
    blk: usize,
    /// Partial sums between k chunks (null with one chunk): block (b − ob.0, j) at
    /// `partial + ((b − ob.0)·nb + j)·MR·NR`.
    partial: *mut i32,
    first: bool,
    last: bool,
    /// The output at (image, first channel of the group, first pixel of the tile):
    /// channel oc of the group, pixel j at `out + oc·p + j`.
    out: *mut f32,
    p: usize,
    /// Pixels in the tile.
    tt: usize,
    /// Output channels in the group; their combined scales and biases.
    og: usize,
    scale: *const f32,
    bias: *const f32,
}

/// `qconv::exp_silu` on 8 lanes, operation for operation (same roundings, same results).
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn exp8(x: __m256) -> __m256 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    const ROUND: f32 = 12_582_912.0;
    let c = _mm256_set1_ps;
    // clamp(x, -87, 88): `if x < -87 { -87 }`, then `if t > 88 { 88 }` (NaN stays NaN).
    let t = _mm256_min_ps(c(88.0), _mm256_max_ps(c(-87.0), x));
    let n = _mm256_sub_ps(_mm256_fmadd_ps(t, c(LOG2E), c(ROUND)), c(ROUND));
    // fnmadd(a, b, c) = −(a·b) + c, one rounding: fma(−n, ln2, t).
    let r = _mm256_fnmadd_ps(n, c(LN2_HI), t);
    let r = _mm256_fnmadd_ps(n, c(LN2_LO), r);
    let mut p = _mm256_fmadd_ps(c(1.0 / 720.0), r, c(1.0 / 120.0));
    p = _mm256_fmadd_ps(p, r, c(1.0 / 24.0));
    p = _mm256_fmadd_ps(p, r, c(1.0 / 6.0));
    p = _mm256_fmadd_ps(p, r, c(0.5));
    p = _mm256_fmadd_ps(p, r, c(1.0));
    p = _mm256_fmadd_ps(p, r, c(1.0));
    let ni = _mm256_cvttps_epi32(n);
    let bits = _mm256_slli_epi32::<23>(_mm256_add_epi32(ni, _mm256_set1_epi32(127)));
    _mm256_mul_ps(p, _mm256_castsi256_ps(bits))
}

/// The epilogue of 8 accumulators: `act(fma(f32(acc), s, b))`.
#[inline]
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn finish8<const ACT: u8>(acc: __m256i, s: __m256, b: __m256) -> __m256 {
    let y = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc), s, b);
    match ACT {
        // y > 0 ? y : 0 (maxps returns its second operand unless the first is greater).
        ACT_RELU => _mm256_max_ps(y, _mm256_setzero_ps()),
        ACT_SILU => {
            let neg = _mm256_xor_ps(y, _mm256_set1_ps(-0.0));
            _mm256_div_ps(y, _mm256_add_ps(_mm256_set1_ps(1.0), exp8(neg)))
        }
        _ => y,
    }
}

/// The MR × NR register block `acc[i·NV + v]` (channel i, pixels 8v..8v + 8) over `kpn`
/// k pairs: weights at `w` (MR pairs per k pair), pixels at `x` (NR pairs per k pair),
/// starting from zero (`init` null) or the sums at `init`.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_block(
    kpn: usize,
    w: *const i32,
    x: *const i16,
    init: *const i32,
) -> [__m256i; MR * NV] {
    let mut acc = [_mm256_setzero_si256(); MR * NV];
    if !init.is_null() {
        for (i, v) in acc.iter_mut().enumerate() {
            *v = _mm256_loadu_si256(init.add(i * 8) as *const __m256i);
        }
    }
    let (mut w, mut x) = (w, x);
    for _ in 0..kpn {
        let mut xv = [_mm256_setzero_si256(); NV];
        for (v, xv) in xv.iter_mut().enumerate() {
            *xv = _mm256_loadu_si256(x.add(v * 16) as *const __m256i);
        }
        for i in 0..MR {
            let wv = _mm256_set1_epi32(*w.add(i));
            for v in 0..NV {
                acc[i * NV + v] = _mm256_add_epi32(acc[i * NV + v], _mm256_madd_epi16(wv, xv[v]));
            }
        }
        w = w.add(MR);
        x = x.add(2 * NR);
    }
    acc
}

/// Register block (pixel block j, channel block b) of a tile over one k chunk: starts from
/// zero or the partial sums, ends storing the partial sums or running the epilogue.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn block<const ACT: u8>(a: &TileArgs, j: usize, b: usize) {
    let c = if a.partial.is_null() {
        a.partial
    } else {
        a.partial.add(((b - a.ob.0) * a.nb + j) * MR * NR)
    };
    let init = if a.first {
        std::ptr::null()
    } else {
        c as *const i32
    };
    let acc = dot_block(a.kpn, a.w.add(b * a.w_stride), a.x.add(j * a.blk), init);
    if !a.last {
        for (i, v) in acc.iter().enumerate() {
            _mm256_storeu_si256(c.add(i * 8) as *mut __m256i, *v);
        }
        return;
    }
    let oc0 = b * MR;
    let (n_oc, n_px) = (MR.min(a.og - oc0), NR.min(a.tt - j * NR));
    let out = a.out.add(oc0 * a.p + j * NR);
    if n_oc == MR && n_px == NR {
        for i in 0..MR {
            let s = _mm256_set1_ps(*a.scale.add(oc0 + i));
            let bv = _mm256_set1_ps(*a.bias.add(oc0 + i));
            for v in 0..NV {
                let y = finish8::<ACT>(acc[i * NV + v], s, bv);
                _mm256_storeu_ps(out.add(i * a.p + v * 8), y);
            }
        }
        return;
    }
    // A block at the tile's or the group's edge: through memory (constant indices above
    // keep `acc` in registers).
    let mut all = [0i32; MR * NR];
    for (i, v) in acc.iter().enumerate() {
        _mm256_storeu_si256(all.as_mut_ptr().add(i * 8) as *mut __m256i, *v);
    }
    let mut y = [0f32; NR];
    for i in 0..n_oc {
        let s = _mm256_set1_ps(*a.scale.add(oc0 + i));
        let bv = _mm256_set1_ps(*a.bias.add(oc0 + i));
        for v in 0..NV {
            let av = _mm256_loadu_si256(all.as_ptr().add((i * NV + v) * 8) as *const __m256i);
            _mm256_storeu_ps(y.as_mut_ptr().add(v * 8), finish8::<ACT>(av, s, bv));
        }
        std::ptr::copy_nonoverlapping(y.as_ptr(), out.add(i * a.p), n_px);
    }
}

/// Every register block of a tile for one k chunk, pixel blocks outer (a block's panel
/// stays in L1 while the channel blocks' weights stream past).
#[target_feature(enable = "avx2,fma")]
unsafe fn run_tile<const ACT: u8>(a: &TileArgs) {
    for j in 0..a.nb {
        for b in a.ob.0..a.ob.1 {
            block::<ACT>(a, j, b);
        }
    }
}

/// Whether every input position the outputs read lies in the padded input (true for any
/// geometry whose ho/wo follow from the input size; this path relies on it).
pub(super) fn fits(g: &ConvGeom) -> bool {
    let span = |o: usize, s: usize, k: usize, d: usize| (o.max(1) - 1) * s + (k.max(1) - 1) * d;
    span(g.ho, g.stride.0, g.kh, g.dil.0) < g.h + 2 * g.pad.0
        && span(g.wo, g.stride.1, g.kw, g.dil.1) < g.w + 2 * g.pad.1
}

/// Per-thread scratch, kept between calls (grown, never shrunk).
#[derive(Default)]
struct Bufs {
    line_a: Vec<i8>,
    line_b: Vec<i8>,
    zero: Vec<i8>,
    panel: Vec<i16>,
    partial: Vec<i32>,
}

thread_local! {
    static BUFS: std::cell::RefCell<Bufs> = std::cell::RefCell::default();
}

pub(super) fn grow<T: Clone + Default>(v: &mut Vec<T>, n: usize) {
    if v.len() < n {
        v.resize(n, T::default());
    }
}

/// How an im2col kernel splits a convolution into jobs: tiles of `t` output pixels per
/// (image, group), and output channel blocks in `chunks` of `cb` when tiles are few.
pub(super) struct TilePlan {
    pub t: usize,
    pub tiles: usize,
    pub chunks: usize,
    pub cb: usize,
    pub jobs: usize,
}

impl TilePlan {
    /// `ob` channel blocks per group; tiles a multiple of `nr` pixels, at least `min_t`
    /// (when the image has that many) and at most `cache_px` (the panel's fit in L2);
    /// about `per_thread` jobs a thread.
    pub fn new(
        g: &ConvGeom,
        ob: usize,
        (nr, min_t): (usize, usize),
        cache_px: usize,
        per_thread: usize,
    ) -> TilePlan {
        let p = g.p();
        let want = per_thread * rayon::current_num_threads();
        let imgs = g.n * g.groups;
        let t_cache = (cache_px / nr * nr).clamp(nr, 4096 / nr * nr);
        let t_bal = p
            .div_ceil(want.div_ceil(imgs))
            .next_multiple_of(nr)
            .max(min_t);
        let t = t_cache.min(t_bal).min(p.next_multiple_of(nr));
        let tiles = p.div_ceil(t);
        // Small images: also split the output channels (at least 2 blocks per chunk).
        let base = imgs * tiles;
        let chunks = want.div_ceil(base).clamp(1, ob.div_ceil(2).max(1));
        let cb = ob.div_ceil(chunks);
        let chunks = ob.div_ceil(cb);
        TilePlan {
            t,
            tiles,
            chunks,
            cb,
            jobs: base * chunks,
        }
    }
}

/// The forward pass with `pairs` from `pack_weights`, `scale[oc] = in_scale · w_scale[oc]`,
/// `bias[oc]` (zeros when none).
///
/// # Safety
/// `available()` must hold.
pub(super) unsafe fn forward(
    x: &[f32],
    in_scale: f32,
    pairs: &[i32],
    scale: &[f32],
    bias: &[f32],
    act: Activation,
    g: &ConvGeom,
) -> Vec<f32> {
    let (og, cg, k, p) = (g.og(), g.cg(), g.k(), g.p());
    let len = g.n * g.o * p;
    assert!(
        x.len() == g.n * g.c * g.hw() && scale.len() == g.o && bias.len() == g.o,
        "qconv avx2: buffer lengths vs geometry"
    );
    let (kp, ob) = (k.div_ceil(2), og.div_ceil(MR));
    assert_eq!(
        pairs.len(),
        g.groups * ob * kp * MR,
        "qconv avx2: packed weights"
    );
    if len == 0 {
        return Vec::new();
    }
    let (xq, hp, wp) = quantize_padded(x, in_scale, g, 0);
    assert!(
        fits(g),
        "qconv avx2: output size larger than the input gives"
    );
    let plane = hp * wp;
    let nkc = kp.div_ceil(KPC_MAX).max(1);
    let kpc = kp.div_ceil(nkc);
    let TilePlan {
        t,
        tiles,
        chunks,
        cb,
        jobs,
    } = TilePlan::new(g, ob, (NR, 4 * NR), PANEL_BYTES / (kpc * 4).max(1), 8);
    let pointwise = is_pointwise(g);

    let mut out: Vec<f32> = Vec::with_capacity(len);
    let optr = SendPtr(out.as_mut_ptr());
    let job = |bufs: &mut Bufs, jb: usize| {
        let ch = jb % chunks;
        let jb = jb / chunks;
        let (img, grp, tile) = (jb / (g.groups * tiles), jb / tiles % g.groups, jb % tiles);
        let (p0, tt) = (tile * t, t.min(p - tile * t));
        let tpad = tt.next_multiple_of(NR);
        let nb = tpad / NR;
        let (ob0, ob1) = (ch * cb, ((ch + 1) * cb).min(ob));
        grow(&mut bufs.line_a, t + SLACK);
        grow(&mut bufs.line_b, t + SLACK);
        grow(&mut bufs.zero, t + SLACK);
        grow(&mut bufs.panel, kpc * 2 * t);
        if nkc > 1 {
            grow(&mut bufs.partial, cb * MR * t);
        }
        let xg = xq[(img * g.c + grp * cg) * plane..].as_ptr();
        for kc in 0..nkc {
            let kp0 = kc * kpc;
            let kpn = kpc.min(kp - kp0);
            let blk = kpn * 2 * NR;
            let Bufs {
                line_a,
                line_b,
                zero,
                panel,
                ..
            } = &mut *bufs;
            assert!(panel.len() >= nb * blk, "qconv avx2: panel too small");
            for q in 0..kpn {
                let r0 = 2 * (kp0 + q);
                // SAFETY: available() holds; the rows read the padded input (SLACK
                // follows it) into lines of t + SLACK bytes; the panel holds nb blocks.
                unsafe {
                    let row = |r: usize, line: &mut Vec<i8>| -> *const i8 {
                        if pointwise {
                            xg.add(r * plane + p0)
                        } else {
                            im2col_row(xg, g, (plane, wp), r, p0, tt, line.as_mut_ptr());
                            line.as_ptr()
                        }
                    };
                    let a = row(r0, line_a);
                    let b = if r0 + 1 < k {
                        row(r0 + 1, line_b)
                    } else {
                        zero.as_ptr()
                    };
                    interleave(a, b, tpad, panel.as_mut_ptr().add(q * 2 * NR), blk);
                }
            }
            assert!(
                ((grp * ob + ob1) * kp) * MR <= pairs.len()
                    && (nkc == 1 || bufs.partial.len() >= (ob1 - ob0) * nb * MR * NR)
            );
            let args = TileArgs {
                kpn,
                nb,
                ob: (ob0, ob1),
                w: pairs[(grp * ob * kp + kp0) * MR..].as_ptr(),
                w_stride: kp * MR,
                x: bufs.panel.as_ptr(),
                blk,
                partial: if nkc > 1 {
                    bufs.partial.as_mut_ptr()
                } else {
                    std::ptr::null_mut()
                },
                first: kc == 0,
                last: kc + 1 == nkc,
                // SAFETY: the start of row (img, grp·og) pixel p0, inside `out`'s capacity.
                out: unsafe { optr.get().add((img * g.o + grp * og) * p + p0) },
                p,
                tt,
                og,
                scale: scale[grp * og..].as_ptr(),
                bias: bias[grp * og..].as_ptr(),
            };
            // SAFETY: AVX2+FMA available; the weights of blocks ob0..ob1 over this chunk's
            // pairs, the panel's nb blocks and the partial sums are in bounds (asserted);
            // the epilogue writes only this job's outputs (channels ob0·MR.. of the group
            // below og, pixels p0..p0 + tt).
            unsafe {
                match act {
                    Activation::None => run_tile::<ACT_NONE>(&args),
                    Activation::Relu => run_tile::<ACT_RELU>(&args),
                    Activation::Silu => run_tile::<ACT_SILU>(&args),
                }
            }
        }
    };
    (0..jobs)
        .into_par_iter()
        .for_each(|jb| BUFS.with(|b| job(&mut b.borrow_mut(), jb)));
    // SAFETY: the jobs cover every (image, group, tile, channel chunk); each writes all of
    // its chunk's channels × tile pixels in the last k chunk: all `len` values are set.
    unsafe { out.set_len(len) };
    out
}

// ---------------------------------------------------------------------------------------
// Winograd F(2×2, 3×3) for 3×3 stride-1 convolutions, exact in integers.
//
// Per 2×2 output tile and input channel: V = Bᵀ d B of the 4×4 input window d (i8 →
// |V| ≤ 512), U = G₂ g G₂ᵀ of the 3×3 weights with G₂ = 2G (integer; |U| ≤ 1152), then
// M = Σ_c U ⊙ V (16 GEMMs over the channels, one per transformed position ξ) and
// Aᵀ M A = 4·acc: 16 products per tile and channel instead of 36. Every step is an i32
// ring operation (the i16 × i16 pair products of `vpmaddwd` are exact), so the result is
// exact modulo 2³², and 4·acc fits i32 whenever |acc| < 2²⁹: C·9·128² < 2²⁹, C ≤
// WINO_MAX_C. An arithmetic shift by 2 then gives acc itself, bit for bit the direct sum.
// Input rows and columns an odd output size adds (and tiles past the end) only feed
// outputs that are not stored: in exact arithmetic a kept output does not depend on them.

/// Largest channel count for which 4·acc cannot overflow i32.
const WINO_MAX_C: usize = 3640;

/// Whether the Winograd path serves `g`: 3×3, stride 1, dilation 1, one group.
pub(super) fn winograd_applies(g: &ConvGeom) -> bool {
    g.kh == 3
        && g.kw == 3
        && g.stride == (1, 1)
        && g.dil == (1, 1)
        && g.groups == 1
        && (1..=WINO_MAX_C).contains(&g.c)
        && fits(g)
}

/// 3×3 weights `wq [o, c·9]` as U = G₂ g G₂ᵀ, `[ceil(o/MR)][16 ξ][ceil(c/2)][MR]` i32 pairs
/// (channels 2j, 2j+1 of one ξ and output channel; zero past o and c).
pub(super) fn pack_winograd(wq: &[i8], o: usize, c: usize) -> Vec<i32> {
    let (ob, cp) = (o.div_ceil(MR), c.div_ceil(2));
    let mut out = vec![0i32; ob * 16 * cp * MR];
    if cp == 0 {
        return out;
    }
    // G₂ = [[2,0,0],[1,1,1],[1,−1,1],[0,0,2]] applied to a 3-vector.
    let g2 = |a: i32, b: i32, c: i32| [2 * a, a + b + c, a - b + c, 2 * c];
    // U of one (output channel, input channel): [ξ = 4r + q] as the low i16 of an i32.
    let u_of = |w: &[i8]| -> [i32; 16] {
        let w: [i32; 9] = std::array::from_fn(|t| i32::from(w[t]));
        // Columns of G₂ g (G₂ along ky for each kx), then G₂ along kx per row.
        let cols = [
            g2(w[0], w[3], w[6]),
            g2(w[1], w[4], w[7]),
            g2(w[2], w[5], w[8]),
        ];
        let mut u = [0i32; 16];
        for r in 0..4 {
            let row = g2(cols[0][r], cols[1][r], cols[2][r]);
            for q in 0..4 {
                u[r * 4 + q] = i32::from(row[q] as i16 as u16);
            }
        }
        u
    };
    out.par_chunks_mut(16 * cp * MR)
        .enumerate()
        .for_each(|(b, blk)| {
            for i in 0..MR.min(o - b * MR) {
                let row = &wq[(b * MR + i) * c * 9..][..c * 9];
                for (j, pair) in row.chunks(18).enumerate() {
                    let lo = u_of(&pair[..9]);
                    let hi = if pair.len() == 18 {
                        u_of(&pair[9..])
                    } else {
                        [0; 16]
                    };
                    for xi in 0..16 {
                        blk[(xi * cp + j) * MR + i] = lo[xi] | (hi[xi] << 16);
                    }
                }
            }
        });
    out
}

/// Tiles per Winograd block (the vector axis: 2 vectors of 8).
const WT: usize = 16;

/// A tile row's run of a block: tiles `tx0..tx0 + len` of tile row `ty` are lanes
/// `i0..i0 + len`.
#[derive(Clone, Copy, Default)]
struct Run {
    ty: usize,
    tx0: usize,
    i0: usize,
}

/// V = Bᵀ d B of one channel for the block's tiles (`runs`), lanes = tiles: `v[ξ]`.
/// `plane` is the channel's padded plane (`wp` wide); `stage` holds 16 rows of 32 bytes
/// (lanes of tiles past the block's valid ones keep old values).
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn wino_v(
    plane: *const i8,
    wp: usize,
    runs: &[Run],
    stage: &mut [[i8; 32]; 16],
    v: &mut [__m256i; 16],
) {
    // Per 128-bit lane: even bytes to the low half, odd bytes to the high half.
    let split = _mm256_setr_epi8(
        0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15, //
        0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15,
    );
    for run in runs {
        for r in 0..4 {
            let row = plane.add((2 * run.ty + r) * wp + 2 * run.tx0);
            for half in 0..2 {
                let raw = _mm256_loadu_si256(row.add(2 * half) as *const __m256i);
                // [even 0-7 | odd 0-7 | even 8-15 | odd 8-15] → [even 0-15 | odd 0-15].
                let t = _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_shuffle_epi8(raw, split));
                let q = 2 * half;
                let mut dst =
                    |qq: usize| stage[r * 4 + qq].as_mut_ptr().add(run.i0) as *mut __m128i;
                _mm_storeu_si128(dst(q), _mm256_castsi256_si128(t));
                _mm_storeu_si128(dst(q + 1), _mm256_extracti128_si256::<1>(t));
            }
        }
    }
    let d = |r: usize, q: usize| {
        _mm256_cvtepi8_epi16(_mm_loadu_si128(stage[r * 4 + q].as_ptr() as *const __m128i))
    };
    let (add, sub) = (_mm256_add_epi16, _mm256_sub_epi16);
    // Bᵀ along each row (over q), then along each column (over r).
    let mut t = [[_mm256_setzero_si256(); 4]; 4];
    for (r, tr) in t.iter_mut().enumerate() {
        let (d0, d1, d2, d3) = (d(r, 0), d(r, 1), d(r, 2), d(r, 3));
        *tr = [sub(d0, d2), add(d1, d2), sub(d2, d1), sub(d1, d3)];
    }
    for q in 0..4 {
        let (t0, t1, t2, t3) = (t[0][q], t[1][q], t[2][q], t[3][q]);
        v[q] = sub(t0, t2);
        v[4 + q] = add(t1, t2);
        v[8 + q] = sub(t2, t1);
        v[12 + q] = sub(t1, t3);
    }
}

/// The block's panel `[16 ξ][cp][WT tiles][2]` i16 (channel pairs interleaved per tile).
#[target_feature(enable = "avx2")]
unsafe fn wino_panel(
    xg: *const i8,
    (plane, wp): (usize, usize),
    c: usize,
    runs: &[Run],
    stage: &mut [[i8; 32]; 16],
    panel: *mut i16,
) {
    let cp = c.div_ceil(2);
    let mut v0 = [_mm256_setzero_si256(); 16];
    let mut v1 = [_mm256_setzero_si256(); 16];
    for j in 0..cp {
        wino_v(xg.add(2 * j * plane), wp, runs, stage, &mut v0);
        if 2 * j + 1 < c {
            wino_v(xg.add((2 * j + 1) * plane), wp, runs, stage, &mut v1);
        } else {
            v1 = [_mm256_setzero_si256(); 16];
        }
        for xi in 0..16 {
            // unpack works within 128-bit lanes: lo = tiles 0-3 | 8-11, hi = 4-7 | 12-15.
            let lo = _mm256_unpacklo_epi16(v0[xi], v1[xi]);
            let hi = _mm256_unpackhi_epi16(v0[xi], v1[xi]);
            let dst = panel.add((xi * cp + j) * 2 * WT);
            _mm256_storeu_si256(
                dst as *mut __m256i,
                _mm256_permute2x128_si256::<0x20>(lo, hi),
            );
            _mm256_storeu_si256(
                dst.add(16) as *mut __m256i,
                _mm256_permute2x128_si256::<0x31>(lo, hi),
            );
        }
    }
}

/// What one Winograd block writes to.
struct WinoOut {
    /// Output of (image, channel 0): channel oc, pixel (y, x) at `out + oc·ho·wo + y·wo + x`.
    out: *mut f32,
    ho: usize,
    wo: usize,
    tw: usize,
    /// Tiles per image.
    total: usize,
    o: usize,
    scale: *const f32,
    bias: *const f32,
}

/// Channel block b of one Winograd block (tiles t0..t0 + WT): the 16 GEMMs over the
/// channel pairs, Aᵀ M A, the epilogue, the stores.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn wino_block<const ACT: u8>(
    cp: usize,
    u: *const i32,
    b: usize,
    panel: *const i16,
    t0: usize,
    w: &WinoOut,
) {
    let mut m = [[_mm256_setzero_si256(); MR * NV]; 16];
    for (xi, m) in m.iter_mut().enumerate() {
        *m = dot_block(
            cp,
            u.add((b * 16 + xi) * cp * MR),
            panel.add(xi * cp * 2 * WT),
            std::ptr::null(),
        );
    }
    let (add, sub) = (_mm256_add_epi32, _mm256_sub_epi32);
    for i in 0..MR {
        let oc = b * MR + i;
        if oc >= w.o {
            break;
        }
        let s = _mm256_set1_ps(*w.scale.add(oc));
        let bv = _mm256_set1_ps(*w.bias.add(oc));
        let dst = w.out.add(oc * w.ho * w.wo);
        for v in 0..NV {
            let mv = |xi: usize| m[xi][i * NV + v];
            // Aᵀ over the rows r (ξ = 4r + q), then over the columns q.
            let mut s0 = [_mm256_setzero_si256(); 4];
            let mut s1 = [_mm256_setzero_si256(); 4];
            for q in 0..4 {
                s0[q] = add(add(mv(q), mv(4 + q)), mv(8 + q));
                s1[q] = sub(sub(mv(4 + q), mv(8 + q)), mv(12 + q));
            }
            let y = |sr: &[__m256i; 4], right: bool| {
                let a4 = if right {
                    sub(sub(sr[1], sr[2]), sr[3])
                } else {
                    add(add(sr[0], sr[1]), sr[2])
                };
                finish8::<ACT>(_mm256_srai_epi32::<2>(a4), s, bv)
            };
            let (y00, y01, y10, y11) = (y(&s0, false), y(&s0, true), y(&s1, false), y(&s1, true));
            let t = t0 + v * 8;
            let (ty, tx) = (t / w.tw, t % w.tw);
            if t + 8 <= w.total && tx + 8 <= w.tw && 2 * tx + 16 <= w.wo && 2 * ty + 2 <= w.ho {
                // Eight whole tiles in one tile row: rows 2ty and 2ty + 1, 16 pixels each.
                let row = dst.add(2 * ty * w.wo + 2 * tx);
                for (k, (ya, yb)) in [(y00, y01), (y10, y11)].into_iter().enumerate() {
                    let lo = _mm256_unpacklo_ps(ya, yb);
                    let hi = _mm256_unpackhi_ps(ya, yb);
                    let r = row.add(k * w.wo);
                    _mm256_storeu_ps(r, _mm256_permute2f128_ps::<0x20>(lo, hi));
                    _mm256_storeu_ps(r.add(8), _mm256_permute2f128_ps::<0x31>(lo, hi));
                }
            } else {
                let mut ys = [[0f32; 8]; 4];
                for (k, yv) in [y00, y01, y10, y11].into_iter().enumerate() {
                    _mm256_storeu_ps(ys[k].as_mut_ptr(), yv);
                }
                for l in 0..8 {
                    let t = t + l;
                    if t >= w.total {
                        break;
                    }
                    let (oy, ox) = (2 * (t / w.tw), 2 * (t % w.tw));
                    for (k, yk) in ys.iter().enumerate() {
                        let (y, x) = (oy + k / 2, ox + k % 2);
                        if y < w.ho && x < w.wo {
                            *dst.add(y * w.wo + x) = yk[l];
                        }
                    }
                }
            }
        }
    }
}

/// Channel blocks `obs` of Winograd blocks `blks` of one image.
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn wino_job<const ACT: u8>(
    xg: *const i8,
    geo: (usize, usize),
    c: usize,
    u: *const i32,
    obs: (usize, usize),
    blks: (usize, usize),
    panel: *mut i16,
    w: &WinoOut,
) {
    let mut stage = [[0i8; 32]; 16];
    let cp = c.div_ceil(2);
    let mut runs = [Run::default(); WT];
    for blk in blks.0..blks.1 {
        let t0 = blk * WT;
        let (mut n, mut t) = (0, t0);
        while t < (t0 + WT).min(w.total) {
            let (ty, tx0) = (t / w.tw, t % w.tw);
            runs[n] = Run {
                ty,
                tx0,
                i0: t - t0,
            };
            n += 1;
            t += (w.tw - tx0).min(t0 + WT - t);
        }
        wino_panel(xg, geo, c, &runs[..n], &mut stage, panel);
        for b in obs.0..obs.1 {
            wino_block::<ACT>(cp, u, b, panel, t0, w);
        }
    }
}

/// The Winograd forward pass (`winograd_applies(g)`), `u` from `pack_winograd`.
///
/// # Safety
/// `available()` must hold.
pub(super) unsafe fn forward_winograd(
    x: &[f32],
    in_scale: f32,
    u: &[i32],
    scale: &[f32],
    bias: &[f32],
    act: Activation,
    g: &ConvGeom,
) -> Vec<f32> {
    assert!(winograd_applies(g), "qconv winograd: geometry {g:?}");
    let (c, o, ho, wo) = (g.c, g.o, g.ho, g.wo);
    let (ob, cp) = (o.div_ceil(MR), c.div_ceil(2));
    assert!(
        x.len() == g.n * c * g.hw() && scale.len() == o && bias.len() == o,
        "qconv winograd: buffer lengths vs geometry"
    );
    assert_eq!(u.len(), 16 * ob * cp * MR, "qconv winograd: packed weights");
    let len = g.n * o * ho * wo;
    if len == 0 {
        return Vec::new();
    }
    // A tile reads 4 rows and (via 32-byte loads at 2·tx0 + {0, 2}) up to 34 bytes from its
    // run's start: at most one row past the padded plane and 34 bytes past that row.
    let wp = g.w + 2 * g.pad.1;
    let (xq, hp, wp2) = quantize_padded(x, in_scale, g, wp + 64);
    debug_assert_eq!(wp, wp2);
    let plane = hp * wp;
    let (th, tw) = (ho.div_ceil(2), wo.div_ceil(2));
    let total = th * tw;
    let nblk = total.div_ceil(WT);
    let want = 8 * rayon::current_num_threads();
    let per_img = want.div_ceil(g.n).min(nblk).max(1);
    let bpj = nblk.div_ceil(per_img);
    let per_img = nblk.div_ceil(bpj);
    let base = g.n * per_img;
    let chunks = want.div_ceil(base).clamp(1, ob.div_ceil(2).max(1));
    let cb = ob.div_ceil(chunks);
    let chunks = ob.div_ceil(cb);
    let jobs = base * chunks;

    let mut out: Vec<f32> = Vec::with_capacity(len);
    let optr = SendPtr(out.as_mut_ptr());
    let job = |bufs: &mut Bufs, jb: usize| {
        let ch = jb % chunks;
        let jb = jb / chunks;
        let (img, part) = (jb / per_img, jb % per_img);
        let blks = (part * bpj, ((part + 1) * bpj).min(nblk));
        let obs = (ch * cb, ((ch + 1) * cb).min(ob));
        grow(&mut bufs.panel, 16 * cp * 2 * WT);
        let w = WinoOut {
            // SAFETY: start of image img's output, inside `out`'s capacity.
            out: unsafe { optr.get().add(img * o * ho * wo) },
            ho,
            wo,
            tw,
            total,
            o,
            scale: scale.as_ptr(),
            bias: bias.as_ptr(),
        };
        let xg = xq[img * c * plane..].as_ptr();
        // SAFETY: AVX2+FMA available; reads stay in `xq` (rows ≤ hp, SLACK + wp + 64
        // bytes past the last plane), the panel holds 16·cp·2·WT values, `u` is packed for
        // (o, c); this job alone writes the outputs of its tiles and channel blocks.
        unsafe {
            let args = (xg, (plane, wp), c, u.as_ptr(), obs, blks);
            let p = bufs.panel.as_mut_ptr();
            match act {
                Activation::None => {
                    wino_job::<ACT_NONE>(args.0, args.1, args.2, args.3, args.4, args.5, p, &w)
                }
                Activation::Relu => {
                    wino_job::<ACT_RELU>(args.0, args.1, args.2, args.3, args.4, args.5, p, &w)
                }
                Activation::Silu => {
                    wino_job::<ACT_SILU>(args.0, args.1, args.2, args.3, args.4, args.5, p, &w)
                }
            }
        }
    };
    (0..jobs)
        .into_par_iter()
        .for_each(|jb| BUFS.with(|b| job(&mut b.borrow_mut(), jb)));
    // SAFETY: the jobs cover every (image, block, channel chunk): every tile's in-range
    // outputs of every channel are written.
    unsafe { out.set_len(len) };
    out
}
