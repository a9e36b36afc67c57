//! The AVX-512 VNNI im2col path of `qconv` (x86-64 with AVX-512F/BW and VNNI; the
//! contract is in `qconv`'s docs: the same bits as the reference).
//!
//! `vpdpbusd` multiplies 4 unsigned bytes by 4 signed bytes and adds the four products to
//! an i32 lane: 64 products per instruction, twice the i16 pairs of `qconv_avx2`. The
//! activations are signed, so they enter shifted, `u = x + 128` (an xor of the sign bit),
//! and each output channel subtracts `128 · Σ_k w[oc][k]` once: `Σ w·u − 128·Σ w = Σ w·x`
//! exactly (padding is x = 0, shifted like every other value). Sums stay far inside i32
//! (|Σ w·u| ≤ k · 127 · 255).
//!
//! GEMM `acc[oc][p] = Σ_k w[oc][k] · col[k][p]` with output pixels on the vector axis, as
//! in `qconv_avx2`: weights packed once as `[group][oc block of MR][k/4][MR]` i32 (four
//! bytes each), a tile's im2col rows as `[pixel block of NR][k/4][NR][4]` u8. The register
//! block is MR = 8 output channels × NR = 32 pixels (16 accumulators, 2 pixel vectors, one
//! broadcast weight quad). k runs in chunks of at most `KQC_MAX` quads so a pixel block's
//! panel (16 KiB) stays in L1 while the weights stream past. The epilogue `finish16` is
//! `qconv_avx2::finish8` on 16 lanes, operation for operation, so the float results are
//! the AVX2 path's (and the reference's) bit for bit.
#![allow(unsafe_op_in_unsafe_fn)]
use super::SendPtr;
use super::conv::ConvGeom;
use super::int8_gemm::Activation;
use super::qconv::is_pointwise;
use super::qconv_avx2::{
    ACT_NONE, ACT_RELU, ACT_SILU, SLACK, TilePlan, fits, grow, im2col_row, quantize_padded,
};
use rayon::prelude::*;
use std::arch::x86_64::*;

/// Output channels per register block.
const MR: usize = 8;
/// Output pixels per register block (2 vectors of 16).
const NR: usize = 32;
const NV: usize = NR / 16;
/// Most k quads per chunk: a block's pixel panel is `KQC_MAX · NR · 4` bytes (16 KiB).
const KQC_MAX: usize = 128;
/// Bytes of pixel panel per tile (a tile's panel stays in L2).
const PANEL_BYTES: usize = 384 << 10;

/// Whether this path may run (AVX-512F, BW and VNNI; AVX2 and FMA for the shared parts).
pub fn available() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512bw")
        && std::arch::is_x86_feature_detected!("avx512vnni")
        && super::qconv_avx2::available()
}

/// Weights in this kernel's layout.
#[derive(Debug)]
pub struct VnniWeights {
    /// `[group][ceil(og/MR)][ceil(k/4)][MR]`: bytes w[4j..4j + 4] of a row (zero past og
    /// and k), low byte first.
    quads: Vec<i32>,
    /// `128 · Σ_k w[oc][k]` per output channel.
    corr: Vec<i32>,
}

/// Pack `wq [o, k]` (groups of `o/groups` rows).
pub fn pack_weights(wq: &[i8], o: usize, k: usize, groups: usize) -> VnniWeights {
    let og = o / groups;
    let (ob, kq) = (og.div_ceil(MR), k.div_ceil(4));
    let mut quads = vec![0i32; groups * ob * kq * MR];
    if kq > 0 {
        quads
            .par_chunks_mut(kq * MR)
            .enumerate()
            .for_each(|(gb, blk)| {
                let (grp, b) = (gb / ob, gb % ob);
                for i in 0..MR.min(og - b * MR) {
                    let row = &wq[(grp * og + b * MR + i) * k..][..k];
                    for (j, q) in row.chunks(4).enumerate() {
                        let mut bytes = [0u8; 4];
                        for (d, &v) in bytes.iter_mut().zip(q) {
                            *d = v as u8;
                        }
                        blk[j * MR + i] = i32::from_le_bytes(bytes);
                    }
                }
            });
    }
    let corr = wq
        .chunks(k.max(1))
        .take(o)
        .map(|row| 128 * row.iter().map(|&v| i32::from(v)).sum::<i32>())
        .collect();
    VnniWeights { quads, corr }
}

/// One k quad of a tile's pixel panel: pixel j < tpad gets the bytes `(a[j], b[j], c[j],
/// d[j])`, each xor 0x80 (i8 → u8 + 128), at `dst + (j / NR)·block + (j % NR)·4`.
///
/// # Safety
/// AVX-512F/BW; the four rows readable for `tpad` bytes; the panel holds `tpad / NR`
/// blocks.
#[target_feature(enable = "avx512f,avx512bw,avx2")]
unsafe fn interleave4(rows: [*const i8; 4], tpad: usize, dst: *mut u8, block: usize) {
    let flip = _mm_set1_epi8(-128);
    for jb in 0..tpad / NR {
        let d = dst.add(jb * block);
        for h in 0..NR / 16 {
            let at = jb * NR + h * 16;
            let ld = |r: *const i8| _mm_loadu_si128(r.add(at) as *const __m128i);
            let (a, b, c, e) = (ld(rows[0]), ld(rows[1]), ld(rows[2]), ld(rows[3]));
            let (ab0, ab1) = (_mm_unpacklo_epi8(a, b), _mm_unpackhi_epi8(a, b));
            let (ce0, ce1) = (_mm_unpacklo_epi8(c, e), _mm_unpackhi_epi8(c, e));
            let q = [
                _mm_unpacklo_epi16(ab0, ce0),
                _mm_unpackhi_epi16(ab0, ce0),
                _mm_unpacklo_epi16(ab1, ce1),
                _mm_unpackhi_epi16(ab1, ce1),
            ];
            for (i, v) in q.iter().enumerate() {
                let out = d.add((h * 16 + i * 4) * 4) as *mut __m128i;
                _mm_storeu_si128(out, _mm_xor_si128(*v, flip));
            }
        }
    }
}

/// `qconv_avx2::exp8` on 16 lanes, operation for operation (same roundings).
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn exp16(x: __m512) -> __m512 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    const ROUND: f32 = 12_582_912.0;
    let c = _mm512_set1_ps;
    let t = _mm512_min_ps(c(88.0), _mm512_max_ps(c(-87.0), x));
    let n = _mm512_sub_ps(_mm512_fmadd_ps(t, c(LOG2E), c(ROUND)), c(ROUND));
    let r = _mm512_fnmadd_ps(n, c(LN2_HI), t);
    let r = _mm512_fnmadd_ps(n, c(LN2_LO), r);
    let mut p = _mm512_fmadd_ps(c(1.0 / 720.0), r, c(1.0 / 120.0));
    p = _mm512_fmadd_ps(p, r, c(1.0 / 24.0));
    p = _mm512_fmadd_ps(p, r, c(1.0 / 6.0));
    p = _mm512_fmadd_ps(p, r, c(0.5));
    p = _mm512_fmadd_ps(p, r, c(1.0));
    p = _mm512_fmadd_ps(p, r, c(1.0));
    let ni = _mm512_cvttps_epi32(n);
    let bits = _mm512_slli_epi32::<23>(_mm512_add_epi32(ni, _mm512_set1_epi32(127)));
    _mm512_mul_ps(p, _mm512_castsi512_ps(bits))
}

/// `qconv_avx2::finish8` on 16 lanes: `act(fma(f32(acc), s, b))`.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn finish16<const ACT: u8>(acc: __m512i, s: __m512, b: __m512) -> __m512 {
    let y = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc), s, b);
    match ACT {
        ACT_RELU => _mm512_max_ps(y, _mm512_setzero_ps()),
        ACT_SILU => {
            let sign = _mm512_set1_epi32(i32::MIN);
            let neg = _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(y), sign));
            _mm512_div_ps(y, _mm512_add_ps(_mm512_set1_ps(1.0), exp16(neg)))
        }
        _ => y,
    }
}

/// One tile's register blocks for one k chunk.
struct TileArgs {
    /// k quads in this chunk.
    kqn: usize,
    /// Pixel blocks (of NR) in the tile.
    nb: usize,
    /// Output channel blocks (of MR) `ob.0..ob.1` of the group.
    ob: (usize, usize),
    /// Packed weights of the group at this chunk's first quad: block b at `w + b·w_stride`.
    w: *const i32,
    w_stride: usize,
    /// The tile's pixel panel: pixel block j at `x + j·blk` bytes.
    x: *const u8,
    blk: usize,
    /// Partial sums between k chunks (null with one chunk).
    partial: *mut i32,
    first: bool,
    last: bool,
    /// Output at (image, first channel of the group, first pixel of the tile).
    out: *mut f32,
    p: usize,
    tt: usize,
    og: usize,
    scale: *const f32,
    bias: *const f32,
    /// The group's corrections `128 · Σ w`.
    corr: *const i32,
}

/// The MR × NR register block over `kqn` quads, from zero or the sums at `init`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn dot_block(
    kqn: usize,
    w: *const i32,
    x: *const u8,
    init: *const i32,
) -> [__m512i; MR * NV] {
    let mut acc = [_mm512_setzero_si512(); MR * NV];
    if !init.is_null() {
        for (i, v) in acc.iter_mut().enumerate() {
            *v = _mm512_loadu_si512(init.add(i * 16) as *const _);
        }
    }
    let (mut w, mut x) = (w, x);
    for _ in 0..kqn {
        let x0 = _mm512_loadu_si512(x as *const _);
        let x1 = _mm512_loadu_si512(x.add(64) as *const _);
        for i in 0..MR {
            let wv = _mm512_set1_epi32(*w.add(i));
            acc[i * NV] = _mm512_dpbusd_epi32(acc[i * NV], x0, wv);
            acc[i * NV + 1] = _mm512_dpbusd_epi32(acc[i * NV + 1], x1, wv);
        }
        w = w.add(MR);
        x = x.add(4 * NR);
    }
    acc
}

/// Register block (pixel block j, channel block b) of a tile over one k chunk.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2,fma")]
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
    let acc = dot_block(a.kqn, a.w.add(b * a.w_stride), a.x.add(j * a.blk), init);
    if !a.last {
        for (i, v) in acc.iter().enumerate() {
            _mm512_storeu_si512(c.add(i * 16) as *mut _, *v);
        }
        return;
    }
    let oc0 = b * MR;
    let (n_oc, n_px) = (MR.min(a.og - oc0), NR.min(a.tt - j * NR));
    let out = a.out.add(oc0 * a.p + j * NR);
    let masks: [__mmask16; NV] = [
        ((1u32 << n_px.min(16)) - 1) as __mmask16,
        ((1u32 << n_px.saturating_sub(16).min(16)) - 1) as __mmask16,
    ];
    for i in 0..n_oc {
        let s = _mm512_set1_ps(*a.scale.add(oc0 + i));
        let bv = _mm512_set1_ps(*a.bias.add(oc0 + i));
        let corr = _mm512_set1_epi32(*a.corr.add(oc0 + i));
        for (v, &m) in masks.iter().enumerate() {
            let y = finish16::<ACT>(_mm512_sub_epi32(acc[i * NV + v], corr), s, bv);
            _mm512_mask_storeu_ps(out.add(i * a.p + v * 16), m, y);
        }
    }
}

/// Every register block of a tile for one k chunk, pixel blocks outer.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2,fma")]
unsafe fn run_tile<const ACT: u8>(a: &TileArgs) {
    for j in 0..a.nb {
        for b in a.ob.0..a.ob.1 {
            block::<ACT>(a, j, b);
        }
    }
}

/// Per-thread scratch, kept between calls.
#[derive(Default)]
struct Bufs {
    lines: [Vec<i8>; 4],
    zero: Vec<i8>,
    panel: Vec<u8>,
    partial: Vec<i32>,
}

thread_local! {
    static BUFS: std::cell::RefCell<Bufs> = std::cell::RefCell::default();
}

/// The forward pass with `w` from `pack_weights`, `scale[oc] = in_scale · w_scale[oc]`,
/// `bias[oc]` (zeros when none).
///
/// # Safety
/// `available()` must hold.
pub(super) unsafe fn forward(
    x: &[f32],
    in_scale: f32,
    w: &VnniWeights,
    scale: &[f32],
    bias: &[f32],
    act: Activation,
    g: &ConvGeom,
) -> Vec<f32> {
    let (og, cg, k, p) = (g.og(), g.cg(), g.k(), g.p());
    let len = g.n * g.o * p;
    assert!(
        x.len() == g.n * g.c * g.hw() && scale.len() == g.o && bias.len() == g.o,
        "qconv vnni: buffer lengths vs geometry"
    );
    let (kq, ob) = (k.div_ceil(4), og.div_ceil(MR));
    assert!(
        w.quads.len() == g.groups * ob * kq * MR && w.corr.len() == g.o,
        "qconv vnni: packed weights"
    );
    if len == 0 {
        return Vec::new();
    }
    let (xq, hp, wp) = quantize_padded(x, in_scale, g, 0);
    assert!(
        fits(g),
        "qconv vnni: output size larger than the input gives"
    );
    let plane = hp * wp;
    let nkc = kq.div_ceil(KQC_MAX).max(1);
    let kqc = kq.div_ceil(nkc);
    // 4 jobs a thread (not qconv_avx2's 8): more would split small layers' channels
    // further, and each chunk repeats its tile's im2col.
    let TilePlan {
        t,
        tiles,
        chunks,
        cb,
        jobs,
    } = TilePlan::new(g, ob, (NR, 2 * NR), PANEL_BYTES / (kqc * 4).max(1), 4);
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
        for line in bufs.lines.iter_mut() {
            grow(line, t + SLACK);
        }
        grow(&mut bufs.zero, t + SLACK);
        grow(&mut bufs.panel, kqc * 4 * t.next_multiple_of(NR));
        if nkc > 1 {
            grow(&mut bufs.partial, cb * MR * t.next_multiple_of(NR));
        }
        let xg = xq[(img * g.c + grp * cg) * plane..].as_ptr();
        for kc in 0..nkc {
            let kq0 = kc * kqc;
            let kqn = kqc.min(kq - kq0);
            let blk = kqn * 4 * NR;
            let Bufs {
                lines, zero, panel, ..
            } = &mut *bufs;
            assert!(panel.len() >= nb * blk, "qconv vnni: panel too small");
            for q in 0..kqn {
                let r0 = 4 * (kq0 + q);
                let mut rows = [zero.as_ptr(); 4];
                for (i, (row, line)) in rows.iter_mut().zip(lines.iter_mut()).enumerate() {
                    let r = r0 + i;
                    if r >= k {
                        break;
                    }
                    // SAFETY: available() holds; the rows read the padded input (SLACK
                    // follows it) into lines of t + SLACK bytes.
                    *row = unsafe {
                        if pointwise {
                            xg.add(r * plane + p0)
                        } else {
                            im2col_row(xg, g, (plane, wp), r, p0, tt, line.as_mut_ptr());
                            line.as_ptr()
                        }
                    };
                }
                // SAFETY: the four rows hold tpad ≤ t + SLACK readable bytes (a pointwise
                // row reads the planes, which SLACK bytes follow); the panel holds nb
                // blocks.
                unsafe { interleave4(rows, tpad, panel.as_mut_ptr().add(q * 4 * NR), blk) };
            }
            assert!(
                ((grp * ob + ob1) * kq) * MR <= w.quads.len()
                    && (nkc == 1 || bufs.partial.len() >= (ob1 - ob0) * nb * MR * NR)
            );
            let args = TileArgs {
                kqn,
                nb,
                ob: (ob0, ob1),
                w: w.quads[(grp * ob * kq + kq0) * MR..].as_ptr(),
                w_stride: kq * MR,
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
                corr: w.corr[grp * og..].as_ptr(),
            };
            // SAFETY: AVX-512 VNNI available; weights of blocks ob0..ob1 over this chunk's
            // quads, the panel's nb blocks and the partial sums are in bounds (asserted);
            // the epilogue writes only this job's outputs.
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
    // its chunk's channels × tile pixels in the last k chunk.
    unsafe { out.set_len(len) };
    out
}
