//! INT8 2-D convolution (NCHW) for the INT8 engine: f32 in, f32 out, the arithmetic of an
//! ONNX QDQ graph (QuantizeLinear → DequantizeLinear → Conv) done on integers.
//!
//! Contract (every entry point below computes exactly this):
//! - `quantize_s8` is ONNX QuantizeLinear to int8 with zero point 0:
//!   `q = saturate(round_half_even(x / scale))` to `[-128, 127]`; NaN → 0. The division is
//!   an IEEE f32 division (not a multiplication by `1/scale`).
//! - `quantize_weights_per_channel`: per output channel symmetric,
//!   `s[o] = max|w[o, ..]| / 127` (1.0 when the channel is all zero),
//!   `q = clamp(round_half_even(w / s[o]), -127, 127)` (NaN → 0).
//! - `qconv2d_*`: `y[n, oc, p] = act(fma(f32(acc), in_scale · w_scale[oc], bias[oc] or 0))`,
//!   `acc = Σ_k wq[oc, k] · xq[n, k-th im2col element of p]` computed exactly in i32, with
//!   `xq = quantize_s8(x, in_scale)` and padding contributing 0. The combined scale is one
//!   f32 product `in_scale * w_scale[oc]`, the conversion `acc as f32` rounds to nearest
//!   even and the fma rounds once (`f32::mul_add`, `vfmadd` in the AVX2 path). The
//!   activations: None; ReLU as `if y > 0 { y } else { 0 }`; SiLU as `y / (1 + e^-y)` with
//!   `math::exp_f32` for `e^x` in every path (reference, portable, AVX2). So the reference,
//!   the portable path and the AVX2 path agree bit for bit for every activation.
//! - x is f32 `[n, c, h, w]`, wq is i8 `[o, c/groups·kh·kw]` (any i8 is exact here;
//!   `quantize_weights_per_channel` gives [-127, 127]), w_scale and bias are `[o]`, the
//!   output is f32 `[n, o, ho, wo]`. Geometry (groups, stride, pad, dilation) follows
//!   `conv::ConvGeom` as in `conv::conv2d_forward`.
//!
//! Paths: `qconv2d_reference` is plain scalar loops (the reference for tests and for a CUDA
//! twin). `qconv2d_forward` packs the weights and runs `qconv2d_forward_packed`; the engine
//! packs once at load (`QConvWeights::pack`). On x86-64 with AVX2+FMA the packed forward
//! runs `qconv_avx2` (i8 → i16 pairs, `vpmaddwd` into i32, a 4 × 24 register block,
//! tiles of output pixels × images × groups (× output-channel chunks when the image is
//! small) in parallel); elsewhere the portable path (same tiling, i32 loops that the
//! compiler vectorises).
use super::SendPtr;
use super::conv::{ConvGeom, valid_cols};
pub use super::int8_gemm::Activation;
use rayon::prelude::*;

/// One value of ONNX QuantizeLinear (int8, zero point 0), written the obvious way.
#[inline]
pub(super) fn quantize_one(x: f32, scale: f32) -> i8 {
    let q = (x / scale).round_ties_even();
    if q.is_nan() {
        0
    } else {
        q.clamp(-128.0, 127.0) as i8
    }
}

/// The same value without a libm call, so loops over it vectorise: clamping to the integer
/// bounds first does not change the rounded result, and adding then subtracting 1.5·2^23
/// rounds a value of magnitude ≤ 128 to the nearest integer, ties to even. NaN stays NaN
/// and `NaN as i32` is 0.
#[inline(always)]
fn quantize_fast(x: f32, scale: f32) -> i8 {
    const ROUND: f32 = 12_582_912.0;
    let c = (x / scale).clamp(-128.0, 127.0);
    ((c + ROUND) - ROUND) as i32 as i8
}

/// ONNX QuantizeLinear (int8, zero point 0): `q = saturate(round_half_even(x / scale))` to
/// `[-128, 127]`; NaN → 0. `out` must be as long as `x`.
pub fn quantize_s8(x: &[f32], scale: f32, out: &mut [i8]) {
    assert_eq!(x.len(), out.len(), "quantize_s8: x and out lengths differ");
    #[cfg(target_arch = "x86_64")]
    if super::qconv_avx2::available() {
        // SAFETY: avx2 was detected; the lengths are equal (asserted).
        unsafe { super::qconv_avx2::quantize(x, scale, out) };
        return;
    }
    for (q, &v) in out.iter_mut().zip(x) {
        *q = quantize_fast(v, scale);
    }
}

/// `quantize_s8` split over threads (activation tensors are large).
fn quantize_par(x: &[f32], scale: f32) -> Vec<i8> {
    const CHUNK: usize = 1 << 16;
    let mut q = vec![0i8; x.len()];
    q.par_chunks_mut(CHUNK)
        .zip(x.par_chunks(CHUNK))
        .for_each(|(q, x)| quantize_s8(x, scale, q));
    q
}

/// Per-output-channel symmetric weight quantization: `s[o] = max|w[o, ..]| / 127` (1.0
/// when the channel is all zero), `q = clamp(round_half_even(w / s[o]), -127, 127)`
/// (NaN → 0). `w` is `[o, rest]` row-major. Returns `(q, s)`.
pub fn quantize_weights_per_channel(w: &[f32], o: usize) -> (Vec<i8>, Vec<f32>) {
    if o == 0 {
        assert!(
            w.is_empty(),
            "quantize_weights_per_channel: o = 0 with weights"
        );
        return (Vec::new(), Vec::new());
    }
    assert_eq!(
        w.len() % o,
        0,
        "quantize_weights_per_channel: {} weights do not split into {o} channels",
        w.len()
    );
    let rest = w.len() / o;
    let mut q = vec![0i8; w.len()];
    let mut s = vec![1f32; o];
    if rest == 0 {
        return (q, s);
    }
    for ((row, qrow), sc) in w
        .chunks_exact(rest)
        .zip(q.chunks_exact_mut(rest))
        .zip(&mut s)
    {
        let m = row.iter().fold(0f32, |m, v| m.max(v.abs()));
        *sc = if m > 0.0 { m / 127.0 } else { 1.0 };
        for (d, &v) in qrow.iter_mut().zip(row) {
            let r = (v / *sc).round_ties_even();
            *d = if r.is_nan() {
                0
            } else {
                r.clamp(-127.0, 127.0) as i8
            };
        }
    }
    (q, s)
}

/// The epilogue of one output: `act(fma(f32(acc), scale, bias))`.
#[inline(always)]
pub(super) fn finish(acc: i32, scale: f32, bias: f32, act: Activation) -> f32 {
    let y = (acc as f32).mul_add(scale, bias);
    match act {
        Activation::None => y,
        Activation::Relu => {
            if y > 0.0 {
                y
            } else {
                0.0
            }
        }
        Activation::Silu => y / (1.0 + exp_silu(-y)),
    }
}

/// e^x as SiLU uses it in every path (reference, portable, AVX2; a CUDA twin replicates it
/// with `fmaf`): `math::exp_f32`'s method (x clamped to [-87, 88], n = round(x·log2 e),
/// Cody–Waite r = x − n·ln2, degree-6 Taylor for e^r, times 2^n) with each multiply-add
/// fused: `n = fma(t, log2e, 1.5·2²³) − 1.5·2²³`, `r = fma(−n, ln2_hi, t)`,
/// `r = fma(−n, ln2_lo, r)`, Horner `p = fma(p, r, c)` from 1/720 down to 1, 1. Fewer and
/// shorter-latency operations than `exp_f32` (the epilogue's largest cost), within 2 ulp
/// of e^x, and bit-reproducible wherever fma is IEEE (every target: `f32::mul_add`).
#[inline(always)]
pub fn exp_silu(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    const ROUND: f32 = 12_582_912.0; // 1.5·2^23: adding it rounds to an integer
    let t = x.clamp(-87.0, 88.0);
    let n = t.mul_add(LOG2E, ROUND) - ROUND;
    let r = (-n).mul_add(LN2_HI, t);
    let r = (-n).mul_add(LN2_LO, r);
    let mut p = (1.0f32 / 720.0).mul_add(r, 1.0 / 120.0);
    p = p.mul_add(r, 1.0 / 24.0);
    p = p.mul_add(r, 1.0 / 6.0);
    p = p.mul_add(r, 0.5);
    p = p.mul_add(r, 1.0);
    p = p.mul_add(r, 1.0);
    // n is an integer in [-126, 127] (t is clamped), so 2^n is exact; NaN gives NaN
    // (n = NaN converts to 0; p is NaN).
    let ni = if n.is_nan() { 0 } else { n as i32 };
    p * f32::from_bits(((ni + 127) as u32) << 23)
}

fn check_args(x: usize, wq: usize, w_scale: usize, bias: Option<usize>, g: &ConvGeom) {
    assert!(
        g.groups > 0 && g.c.is_multiple_of(g.groups) && g.o.is_multiple_of(g.groups),
        "qconv2d: c {} and o {} must split into {} groups",
        g.c,
        g.o,
        g.groups
    );
    assert_eq!(
        x,
        g.n * g.c * g.h * g.w,
        "qconv2d: x length vs geometry {g:?}"
    );
    assert_eq!(wq, g.o * g.k(), "qconv2d: wq length vs geometry {g:?}");
    assert_eq!(w_scale, g.o, "qconv2d: w_scale length vs o");
    if let Some(b) = bias {
        assert_eq!(b, g.o, "qconv2d: bias length vs o");
    }
}

/// The reference: `qconv2d_forward`'s contract as plain scalar loops (slow; for tests).
pub fn qconv2d_reference(
    x: &[f32],
    in_scale: f32,
    wq: &[i8],
    w_scale: &[f32],
    bias: Option<&[f32]>,
    act: Activation,
    g: &ConvGeom,
) -> Vec<f32> {
    check_args(x.len(), wq.len(), w_scale.len(), bias.map(<[f32]>::len), g);
    let xq: Vec<i8> = x.iter().map(|&v| quantize_one(v, in_scale)).collect();
    let (og, cg, k) = (g.og(), g.cg(), g.k());
    let mut y = vec![0f32; g.n * g.o * g.ho * g.wo];
    let mut at = 0;
    for img in 0..g.n {
        for oc in 0..g.o {
            let grp = oc / og;
            let scale = in_scale * w_scale[oc];
            let b = bias.map_or(0.0, |b| b[oc]);
            for oy in 0..g.ho {
                for ox in 0..g.wo {
                    let mut acc = 0i32;
                    for ci in 0..cg {
                        for ky in 0..g.kh {
                            for kx in 0..g.kw {
                                let iy =
                                    (oy * g.stride.0 + ky * g.dil.0) as isize - g.pad.0 as isize;
                                let ix =
                                    (ox * g.stride.1 + kx * g.dil.1) as isize - g.pad.1 as isize;
                                if iy < 0 || ix < 0 || iy as usize >= g.h || ix as usize >= g.w {
                                    continue;
                                }
                                let xi = ((img * g.c + grp * cg + ci) * g.h + iy as usize) * g.w
                                    + ix as usize;
                                let wi = oc * k + (ci * g.kh + ky) * g.kw + kx;
                                acc += i32::from(wq[wi]) * i32::from(xq[xi]);
                            }
                        }
                    }
                    y[at] = finish(acc, scale, b, act);
                    at += 1;
                }
            }
        }
    }
    y
}

/// Quantized weights of one convolution with their scales and bias, and the layouts the
/// AVX2 kernels read (made on first use for a geometry, or by `prepare`, then kept).
/// Independent of the input size: pack once at load, reuse for every call.
#[derive(Debug)]
pub struct QConvWeights {
    /// `[o, c/groups, kh, kw]`.
    shape: [usize; 4],
    groups: usize,
    wq: Vec<i8>,
    w_scale: Vec<f32>,
    bias: Option<Vec<f32>>,
    /// i16 pairs for the im2col kernel (`qconv_avx2::pack_weights`).
    #[cfg(target_arch = "x86_64")]
    direct: std::sync::OnceLock<Vec<i32>>,
    /// Winograd-transformed weights (`qconv_avx2::pack_winograd`), 3×3 only.
    #[cfg(target_arch = "x86_64")]
    wino: std::sync::OnceLock<Vec<i32>>,
    /// Byte quads for the AVX-512 VNNI im2col kernel (`qconv_vnni::pack_weights`).
    #[cfg(target_arch = "x86_64")]
    vnni: std::sync::OnceLock<super::qconv_vnni::VnniWeights>,
}

/// Which implementation `qconv2d_forward_with` runs. Callers use `Auto`; tests and
/// benches pick one to check or time it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QConvPath {
    /// The fastest that applies: on x86-64 with AVX2+FMA, Winograd F(2×2, 3×3) for 3×3
    /// stride-1 single-group convolutions and the im2col kernel for the rest; with
    /// AVX-512 VNNI its im2col kernel for everything but 3×3 layers of 256+ input
    /// channels; elsewhere the portable path.
    Auto,
    /// The AVX2 im2col kernel even where Winograd applies (portable without AVX2).
    Direct,
    /// The AVX-512 VNNI im2col kernel (`Direct` where the CPU lacks VNNI).
    Vnni,
    /// The portable path (what CPUs without AVX2, e.g. Arm boards, run).
    Portable,
}

impl QConvWeights {
    /// `wq` is the ONNX weight `[o, c/groups, kh, kw]` (`shape`) row-major, `w_scale` and
    /// `bias` are `[o]`.
    pub fn pack(
        wq: &[i8],
        w_scale: &[f32],
        bias: Option<&[f32]>,
        shape: [usize; 4],
        groups: usize,
    ) -> Self {
        let [o, cg, kh, kw] = shape;
        assert!(
            groups > 0 && o % groups == 0,
            "QConvWeights::pack: o {o} does not split into {groups} groups"
        );
        assert_eq!(
            wq.len(),
            o * cg * kh * kw,
            "QConvWeights::pack: wq length vs {shape:?}"
        );
        assert_eq!(w_scale.len(), o, "QConvWeights::pack: w_scale length vs o");
        if let Some(b) = bias {
            assert_eq!(b.len(), o, "QConvWeights::pack: bias length vs o");
        }
        QConvWeights {
            shape,
            groups,
            wq: wq.to_vec(),
            w_scale: w_scale.to_vec(),
            bias: bias.map(<[f32]>::to_vec),
            #[cfg(target_arch = "x86_64")]
            direct: std::sync::OnceLock::new(),
            #[cfg(target_arch = "x86_64")]
            wino: std::sync::OnceLock::new(),
            #[cfg(target_arch = "x86_64")]
            vnni: std::sync::OnceLock::new(),
        }
    }
    /// `[o, c/groups, kh, kw]`.
    pub fn shape(&self) -> [usize; 4] {
        self.shape
    }
    pub fn groups(&self) -> usize {
        self.groups
    }
    /// Makes the layout `g` needs now (the forward would make it on first use).
    pub fn prepare(&self, g: &ConvGeom) {
        self.check(g.n * g.c * g.h * g.w, g);
        #[cfg(target_arch = "x86_64")]
        let _ = self.avx2_weights(g, QConvPath::Auto);
    }
    fn check(&self, x: usize, g: &ConvGeom) {
        let [o, cg, kh, kw] = self.shape;
        assert!(
            g.o == o && g.groups == self.groups && g.cg() == cg && (g.kh, g.kw) == (kh, kw),
            "qconv2d: weights {:?} (groups {}) do not fit geometry {g:?}",
            self.shape,
            self.groups
        );
        check_args(
            x,
            self.wq.len(),
            self.w_scale.len(),
            self.bias.as_ref().map(Vec::len),
            g,
        );
    }
    /// The SIMD kernel and its layout for `g`, or None where AVX2 cannot run.
    #[cfg(target_arch = "x86_64")]
    fn avx2_weights(&self, g: &ConvGeom, path: QConvPath) -> Option<Packed<'_>> {
        use super::qconv_avx2 as k;
        if path == QConvPath::Portable || !k::available() || !k::fits(g) {
            return None;
        }
        let vnni = path != QConvPath::Direct && super::qconv_vnni::available();
        // With VNNI the direct kernel (64 products per instruction) beats the i16 Winograd
        // kernel (16 of 36 products, 32 per instruction) except on the widest layers
        // (measured on Zen 4 with `qconv`'s timing test: faster below 256 input channels,
        // about even at 256).
        if path == QConvPath::Auto && k::winograd_applies(g) && (!vnni || g.c >= 256) {
            let u = self
                .wino
                .get_or_init(|| k::pack_winograd(&self.wq, g.o, g.c));
            return Some(Packed::Winograd(u));
        }
        if vnni {
            let v = self
                .vnni
                .get_or_init(|| super::qconv_vnni::pack_weights(&self.wq, g.o, g.k(), g.groups));
            return Some(Packed::Vnni(v));
        }
        let d = self
            .direct
            .get_or_init(|| k::pack_weights(&self.wq, g.o, g.k(), g.groups));
        Some(Packed::Direct(d))
    }
}

/// Which SIMD kernel runs, with its weights.
#[cfg(target_arch = "x86_64")]
enum Packed<'a> {
    Winograd(&'a [i32]),
    Direct(&'a [i32]),
    Vnni(&'a super::qconv_vnni::VnniWeights),
}

/// `y = act(dequant(conv(quantize_s8(x, in_scale), wq)) + bias)` as in the module docs
/// (packs the weights on each call; the engine packs once with `QConvWeights::pack`).
pub fn qconv2d_forward(
    x: &[f32],
    in_scale: f32,
    wq: &[i8],
    w_scale: &[f32],
    bias: Option<&[f32]>,
    act: Activation,
    g: &ConvGeom,
) -> Vec<f32> {
    check_args(x.len(), wq.len(), w_scale.len(), bias.map(<[f32]>::len), g);
    let w = QConvWeights::pack(wq, w_scale, bias, [g.o, g.cg(), g.kh, g.kw], g.groups);
    qconv2d_forward_packed(x, in_scale, &w, act, g)
}

/// `qconv2d_forward` with weights packed beforehand.
pub fn qconv2d_forward_packed(
    x: &[f32],
    in_scale: f32,
    w: &QConvWeights,
    act: Activation,
    g: &ConvGeom,
) -> Vec<f32> {
    qconv2d_forward_with(x, in_scale, w, act, g, QConvPath::Auto)
}

/// `qconv2d_forward_packed` on a chosen implementation (all give the same bits).
pub fn qconv2d_forward_with(
    x: &[f32],
    in_scale: f32,
    w: &QConvWeights,
    act: Activation,
    g: &ConvGeom,
    path: QConvPath,
) -> Vec<f32> {
    w.check(x.len(), g);
    #[cfg(target_arch = "x86_64")]
    if let Some(packed) = w.avx2_weights(g, path) {
        if g.n * g.o * g.p() == 0 {
            return Vec::new();
        }
        let scale: Vec<f32> = w.w_scale.iter().map(|&s| in_scale * s).collect();
        let bias = w.bias.clone().unwrap_or_else(|| vec![0.0; g.o]);
        use super::qconv_avx2 as k;
        // SAFETY: avx2_weights returned Some only where k::available() holds, and Vnni
        // only where qconv_vnni::available() does.
        return unsafe {
            match packed {
                Packed::Winograd(u) => k::forward_winograd(x, in_scale, u, &scale, &bias, act, g),
                Packed::Direct(d) => k::forward(x, in_scale, d, &scale, &bias, act, g),
                Packed::Vnni(v) => {
                    super::qconv_vnni::forward(x, in_scale, v, &scale, &bias, act, g)
                }
            }
        };
    }
    let _ = path;
    forward_portable(x, in_scale, w, act, g)
}

/// The portable path: the same tiling as the AVX2 im2col kernel, i32 loops that the
/// compiler vectorises.
fn forward_portable(
    x: &[f32],
    in_scale: f32,
    w: &QConvWeights,
    act: Activation,
    g: &ConvGeom,
) -> Vec<f32> {
    let (og, cg, k, p, hw) = (g.og(), g.cg(), g.k(), g.p(), g.hw());
    let len = g.n * g.o * p;
    if len == 0 {
        return Vec::new();
    }
    let xq = quantize_par(x, in_scale);
    let mut out: Vec<f32> = Vec::with_capacity(len);
    let optr = SendPtr(out.as_mut_ptr());
    // Pixels per tile: the i8 im2col block (k × t) stays in L2.
    let t = ((256usize << 10) / k.max(1)).clamp(16, 4096).min(p);
    let tiles = p.div_ceil(t);
    let jobs = g.n * g.groups * tiles;
    let pointwise = is_pointwise(g);
    let job = |(col, acc): &mut (Vec<i8>, Vec<i32>), jb: usize| {
        let (img, grp, tile) = (jb / (g.groups * tiles), jb / tiles % g.groups, jb % tiles);
        let (p0, tt) = (tile * t, t.min(p - tile * t));
        let xg = &xq[(img * g.c + grp * cg) * hw..][..cg * hw];
        if !pointwise {
            for r in 0..k {
                im2col_row(xg, g, r, p0, &mut col[r * tt..][..tt]);
            }
        }
        let row = |r: usize| -> &[i8] {
            if pointwise {
                &xg[r * hw + p0..][..tt]
            } else {
                &col[r * tt..][..tt]
            }
        };
        let acc = &mut acc[..tt];
        for oc in 0..og {
            let ocg = grp * og + oc;
            acc.fill(0);
            for (r, &wv) in w.wq[ocg * k..][..k].iter().enumerate() {
                if wv != 0 {
                    let wv = i32::from(wv);
                    for (a, &v) in acc.iter_mut().zip(row(r)) {
                        *a += wv * i32::from(v);
                    }
                }
            }
            let scale = in_scale * w.w_scale[ocg];
            let b = w.bias.as_ref().map_or(0.0, |b| b[ocg]);
            // SAFETY: job (img, grp, tile) alone writes out[img, ocg, p0..p0+tt], inside
            // `out`'s capacity; `out` outlives the parallel loop.
            let dst = unsafe {
                std::slice::from_raw_parts_mut(optr.get().add((img * g.o + ocg) * p + p0), tt)
            };
            for (d, &a) in dst.iter_mut().zip(acc.iter()) {
                *d = finish(a, scale, b, act);
            }
        }
    };
    let col_len = if pointwise { 0 } else { k * t };
    let init = || (vec![0i8; col_len], vec![0i32; t]);
    (0..jobs).into_par_iter().for_each_init(init, job);
    // SAFETY: the jobs cover every (image, group, tile) and write all og channels × tt
    // pixels of theirs: all `len` values are initialised.
    unsafe { out.set_len(len) };
    out
}

/// 1×1, stride 1, no padding: the input planes are the im2col rows.
pub(super) fn is_pointwise(g: &ConvGeom) -> bool {
    g.kh == 1 && g.kw == 1 && g.stride == (1, 1) && g.pad == (0, 0)
}

/// Row `r` = (c, ky, kx) of the im2col matrix of one image and group (`xg` its `cg`
/// planes), for output pixels `p0..p0 + dst.len()`; padding gives 0.
fn im2col_row(xg: &[i8], g: &ConvGeom, r: usize, p0: usize, dst: &mut [i8]) {
    let kk = g.kh * g.kw;
    let (c, ky, kx) = (r / kk, r % kk / g.kw, r % g.kw);
    let plane = &xg[c * g.hw()..][..g.hw()];
    let (sh, sw) = g.stride;
    let off = (kx * g.dil.1) as isize - g.pad.1 as isize;
    let t = dst.len();
    let mut j = 0;
    while j < t {
        let p = p0 + j;
        let (oy, ox0) = (p / g.wo, p % g.wo);
        let run = (g.wo - ox0).min(t - j);
        let d = &mut dst[j..j + run];
        j += run;
        let iy = (oy * sh + ky * g.dil.0) as isize - g.pad.0 as isize;
        if iy < 0 || iy as usize >= g.h {
            d.fill(0);
            continue;
        }
        let src = &plane[iy as usize * g.w..][..g.w];
        let (lo, hi) = valid_cols(ox0, run, sw, off, g.w);
        d[..lo].fill(0);
        d[hi..].fill(0);
        let s0 = ((ox0 + lo) * sw) as isize + off;
        let s0 = s0 as usize;
        if sw == 1 {
            d[lo..hi].copy_from_slice(&src[s0..s0 + hi - lo]);
        } else {
            for (i, v) in d[lo..hi].iter_mut().enumerate() {
                *v = src[s0 + i * sw];
            }
        }
    }
}
