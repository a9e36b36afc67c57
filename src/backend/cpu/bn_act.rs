//! Batch norm fused with the activation after it (ultralytics `Conv`: conv → BN → SiLU),
//! forward and backward. One parallel task per channel does that channel's statistics and
//! its output (forward), or its two gradient sums and its dx (backward), while the
//! channel's planes are in cache. Unfused, a training step read x and the gradient six
//! times, kept the BN output alive for SiLU's backward and called libm's scalar `expf`
//! twice per element; here SiLU is recomputed from x with a branch-free exp that
//! vectorises.
//!
//! Statistics and gradient sums accumulate in f64 (eight lanes, so they vectorise); the
//! per-element math is in T. `norm::batch_norm_bwd` and `unary`'s SiLU are the unfused
//! reference this is tested against.
use super::math::exp_f32;
use super::{PAR_MIN, SendPtr};
use crate::tensor::Float;
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// The activation applied after the normalisation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Act {
    Identity,
    /// x·σ(x)
    Silu,
}

#[inline(always)]
fn is_f32<T: 'static>() -> bool {
    std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>()
}

/// σ(z): for f32 through the branch-free `exp_f32` (the conversions fold away), else T::exp.
#[inline(always)]
fn sigmoid<T: Float>(z: T) -> T {
    if is_f32::<T>() {
        T::from_f64((1.0 / (1.0 + exp_f32(-(z.to_f64() as f32)))) as f64)
    } else {
        T::ONE / (T::ONE + (-z).exp())
    }
}

/// The BN output z = x·scale + shift, computed in f64 and rounded once (forward and
/// backward must agree on it bit for bit).
#[inline(always)]
fn bn_out<T: Float>(x: T, scale: f64, shift: f64) -> T {
    T::from_f64(x.to_f64() * scale + shift)
}

impl Act {
    #[inline(always)]
    fn apply<T: Float>(self, z: T) -> T {
        match self {
            Act::Identity => z,
            Act::Silu => z * sigmoid(z),
        }
    }
    /// d act / dz.
    #[inline(always)]
    fn grad<T: Float>(self, z: T) -> T {
        match self {
            Act::Identity => T::ONE,
            Act::Silu => {
                let s = sigmoid(z);
                s * (T::ONE + z * (T::ONE - s))
            }
        }
    }
}

/// Per-channel constants of `y = act(x·scale + shift)`, with scale = w·rstd and
/// shift = b − mean·scale.
#[derive(Clone, Debug)]
pub struct BnAffine {
    pub mean: Vec<f64>,
    pub rstd: Vec<f64>,
    pub scale: Vec<f64>,
    pub shift: Vec<f64>,
}

impl BnAffine {
    /// From statistics (batch or running), eps and the optional affine parameters.
    pub fn new(
        mean: Vec<f64>,
        var: &[f64],
        eps: f64,
        w: Option<&[f64]>,
        b: Option<&[f64]>,
    ) -> Self {
        let c = mean.len();
        let (mut rstd, mut scale, mut shift) = (vec![0.0; c], vec![0.0; c], vec![0.0; c]);
        for k in 0..c {
            (rstd[k], scale[k], shift[k]) =
                affine_of(mean[k], var[k], eps, w.map(|w| w[k]), b.map(|b| b[k]));
        }
        BnAffine {
            mean,
            rstd,
            scale,
            shift,
        }
    }
}

/// rstd = 1/√(var + eps), scale = w·rstd, shift = b − mean·scale for one channel (the
/// forward and the backward both take them from here, so they agree bit for bit).
#[inline(always)]
fn affine_of(mean: f64, var: f64, eps: f64, w: Option<f64>, b: Option<f64>) -> (f64, f64, f64) {
    let rstd = 1.0 / (var + eps).sqrt();
    let scale = rstd * w.unwrap_or(1.0);
    (rstd, scale, b.unwrap_or(0.0) - mean * scale)
}

/// Σ f(x_i) in f64 over eight interleaved partial sums (a fixed order, so results do not
/// depend on threads, and one the compiler can vectorise).
#[inline(always)]
fn sum8(n: usize, f: impl Fn(usize) -> f64) -> f64 {
    let mut acc = [0f64; 8];
    let body = n / 8 * 8;
    for i in (0..body).step_by(8) {
        for (l, a) in acc.iter_mut().enumerate() {
            *a += f(i + l);
        }
    }
    let mut tail = 0.0;
    for i in body..n {
        tail += f(i);
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
}

/// Runs `f(ch)` for every channel, in parallel when the tensor is large.
fn per_channel(c: usize, len: usize, f: impl Fn(usize) + Sync + Send) {
    if len >= PAR_MIN {
        (0..c).into_par_iter().for_each(f);
    } else {
        (0..c).for_each(f);
    }
}

/// Whether f32 work can run in the `*_avx512` twins below: the same code compiled for
/// AVX-512, where the loops (exp included) vectorise 16 wide.
#[inline(always)]
fn use_avx512<T: 'static>() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_f32::<T>() && super::conv_avx512::available()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Channel `ch`'s mean and biased variance over its n planes of s values: two passes
/// (mean, then centred squares), as torch's CPU kernel.
#[inline(always)]
fn channel_stats<T: Float>(x: &[T], (n, c, s): (usize, usize, usize), ch: usize) -> (f64, f64) {
    let plane = |i: usize| &x[(i * c + ch) * s..][..s];
    let cnt = (n * s).max(1) as f64;
    // Plain loops: iterator adaptors here were outlined out of the AVX-512 twin.
    let mut mean = 0.0;
    for i in 0..n {
        let p = plane(i);
        mean += sum8(s, |j| p[j].to_f64());
    }
    mean /= cnt;
    let mut var = 0.0;
    for i in 0..n {
        let p = plane(i);
        var += sum8(s, |j| {
            let d = p[j].to_f64() - mean;
            d * d
        });
    }
    var /= cnt;
    (mean, var)
}

/// y = act(x·a + sh) over channel `ch`'s planes.
///
/// # Safety
/// `y` points to n·c·s writable values and no other task writes channel `ch`'s planes.
#[inline(always)]
unsafe fn channel_out<T: Float>(
    x: &[T],
    y: *mut MaybeUninit<T>,
    (n, c, s): (usize, usize, usize),
    ch: usize,
    (a, sh): (f64, f64),
    act: Act,
) {
    for i in 0..n {
        let o = (i * c + ch) * s;
        // SAFETY: the caller guarantees y[o..o + s] is ours alone.
        let out = unsafe { std::slice::from_raw_parts_mut(y.add(o), s) };
        let xs = &x[o..o + s];
        // One loop per activation, so each is a straight loop the compiler vectorises.
        match act {
            Act::Identity => {
                for (o, &v) in out.iter_mut().zip(xs) {
                    o.write(bn_out(v, a, sh));
                }
            }
            Act::Silu => {
                for (o, &v) in out.iter_mut().zip(xs) {
                    o.write(Act::Silu.apply(bn_out(v, a, sh)));
                }
            }
        }
    }
}

/// The per-channel constants of the backward.
#[derive(Clone, Copy)]
struct BwdChannel {
    scale: f64,
    shift: f64,
    mean: f64,
    rstd: f64,
    /// d(bn out)/dx when the statistics are constants: w·rstd.
    k: f64,
    cnt: f64,
}

/// One channel of the backward: Σdz and Σdz·x̂ (returned), and when `dx` is given,
/// dx = k·(dz − Σdz/cnt − x̂·Σdz·x̂/cnt) (training) or k·dz (eval), with dz = g·act'(z)
/// staged in dx's own buffer (it is read twice).
///
/// # Safety
/// `dx`, when not null, points to n·c·s writable values and no other task writes channel
/// `ch`'s planes.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn channel_bwd<T: Float>(
    x: &[T],
    g: &[T],
    dx: *mut MaybeUninit<T>,
    (n, c, s): (usize, usize, usize),
    ch: usize,
    p: BwdChannel,
    act: Act,
    training: bool,
) -> (f64, f64) {
    let m = p.mean;
    let (mut sg, mut sgx) = (0.0, 0.0);
    for i in 0..n {
        let o = (i * c + ch) * s;
        let (xs, gs) = (&x[o..o + s], &g[o..o + s]);
        let dz: &[T] = match (act, dx.is_null()) {
            (Act::Identity, _) => gs,
            (Act::Silu, false) => {
                // SAFETY: the caller guarantees dx[o..o + s] is ours alone.
                let out = unsafe { std::slice::from_raw_parts_mut(dx.add(o), s) };
                for ((d, &xv), &gv) in out.iter_mut().zip(xs).zip(gs) {
                    d.write(gv * Act::Silu.grad(bn_out(xv, p.scale, p.shift)));
                }
                // SAFETY: all s values were written just above.
                unsafe { &*(out as *const [MaybeUninit<T>] as *const [T]) }
            }
            (Act::Silu, true) => {
                // No dx wanted (x is a leaf without grad): the sums only.
                let dz =
                    |j: usize| (gs[j] * Act::Silu.grad(bn_out(xs[j], p.scale, p.shift))).to_f64();
                sg += sum8(s, dz);
                sgx += sum8(s, |j| dz(j) * (xs[j].to_f64() - m));
                continue;
            }
        };
        sg += sum8(s, |j| dz[j].to_f64());
        sgx += sum8(s, |j| dz[j].to_f64() * (xs[j].to_f64() - m));
    }
    let sgx = sgx * p.rstd;
    if dx.is_null() {
        return (sg, sgx);
    }
    // In f64, rounded once, as the unfused kernels did.
    let (c1, c2) = if training {
        (sg / p.cnt, p.k * p.rstd * sgx / p.cnt)
    } else {
        (0.0, 0.0)
    };
    for i in 0..n {
        let o = (i * c + ch) * s;
        // SAFETY: ours alone (caller); for SiLU written above, for Identity written here
        // before it is read.
        let out = unsafe { std::slice::from_raw_parts_mut(dx.add(o), s) };
        let (xs, src) = (&x[o..o + s], &g[o..o + s]);
        for (j, (d, &xv)) in out.iter_mut().zip(xs).enumerate() {
            // SAFETY: for SiLU, d holds dz written in the first loop.
            let dz = match act {
                Act::Identity => src[j].to_f64(),
                Act::Silu => unsafe { d.assume_init() }.to_f64(),
            };
            d.write(T::from_f64(p.k * (dz - c1) - c2 * (xv.to_f64() - m)));
        }
    }
    (sg, sgx)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn channel_stats_avx512(x: &[f32], d: (usize, usize, usize), ch: usize) -> (f64, f64) {
    channel_stats(x, d, ch)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn channel_out_avx512(
    x: &[f32],
    y: *mut MaybeUninit<f32>,
    d: (usize, usize, usize),
    ch: usize,
    ash: (f64, f64),
    act: Act,
) {
    // SAFETY: forwarded from the caller.
    unsafe { channel_out(x, y, d, ch, ash, act) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn channel_bwd_avx512(
    x: &[f32],
    g: &[f32],
    dx: *mut MaybeUninit<f32>,
    d: (usize, usize, usize),
    ch: usize,
    p: BwdChannel,
    act: Act,
    training: bool,
) -> (f64, f64) {
    // SAFETY: forwarded from the caller.
    unsafe { channel_bwd(x, g, dx, d, ch, p, act, training) }
}

/// Reinterprets a slice of T as f32 when T is f32 (callers check `use_avx512`).
#[inline(always)]
fn as_f32<T: Float>(v: &[T]) -> &[f32] {
    bytemuck::cast_slice(v)
}

/// Forward over x `[n, c, s]`. Training computes each channel's batch mean and biased
/// variance (returned, for the running statistics and the backward); eval uses `stats`
/// (mean, var) as given. Returns y = act(bn(x)), mean, var and the affine constants.
#[allow(clippy::too_many_arguments)]
pub fn bn_act_fwd<T: Float>(
    x: &[T],
    d: (usize, usize, usize),
    stats: Option<(&[f64], &[f64])>,
    w: Option<&[f64]>,
    b: Option<&[f64]>,
    eps: f64,
    act: Act,
) -> (Vec<T>, Vec<f64>, Vec<f64>, BnAffine) {
    let (n, c, s) = d;
    let len = n * c * s;
    assert_eq!(
        x.len(),
        len,
        "bn_act_fwd: x has {} values, not {n}·{c}·{s}",
        x.len()
    );
    let fast = use_avx512::<T>();
    let mut mv = vec![(0f64, 0f64); c];
    let mp = SendPtr(mv.as_mut_ptr());
    let mut y: Vec<T> = Vec::with_capacity(len);
    let yp = SendPtr(y.as_mut_ptr() as *mut MaybeUninit<T>);
    // One task per channel: its statistics, then its output while its planes are in cache.
    per_channel(c, len, |ch| {
        let (m, v) = match stats {
            Some((m, v)) => (m[ch], v[ch]),
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `fast` means the CPU has AVX-512F and T is f32.
            None if fast => unsafe { channel_stats_avx512(as_f32(x), d, ch) },
            None => channel_stats(x, d, ch),
        };
        let (_, scale, shift) = affine_of(m, v, eps, w.map(|w| w[ch]), b.map(|b| b[ch]));
        // SAFETY: task `ch` alone writes element ch of `mv` and the planes (i, ch) of y,
        // inside its capacity; `fast` means AVX-512F and T = f32.
        unsafe {
            *mp.get().add(ch) = (m, v);
            if fast {
                #[cfg(target_arch = "x86_64")]
                channel_out_avx512(as_f32(x), yp.get().cast(), d, ch, (scale, shift), act);
            } else {
                channel_out(x, yp.get(), d, ch, (scale, shift), act);
            }
        }
    });
    // SAFETY: the loop above wrote every plane (i, ch) of y, i.e. all `len` values.
    unsafe { y.set_len(len) };
    let (mean, var): (Vec<f64>, Vec<f64>) = mv.into_iter().unzip();
    let aff = BnAffine::new(mean.clone(), &var, eps, w, b);
    (y, mean, var, aff)
}

/// Backward of `y = act(bn(x))` over `[n, c, s]` given dL/dy `g`. `w` is the BN weight
/// (None: 1). Training differentiates through the batch statistics; eval treats them as
/// constants. Returns dx (when asked), d(weight) = Σ dz·x̂ and d(bias) = Σ dz per channel,
/// where dz = g·act'(z) is the gradient at the BN output.
#[allow(clippy::too_many_arguments)]
pub fn bn_act_bwd<T: Float>(
    x: &[T],
    g: &[T],
    d: (usize, usize, usize),
    w: Option<&[f64]>,
    aff: &BnAffine,
    act: Act,
    training: bool,
    need_dx: bool,
) -> (Option<Vec<T>>, Vec<f64>, Vec<f64>) {
    let (n, c, s) = d;
    let len = n * c * s;
    assert!(
        x.len() == len && g.len() == len,
        "bn_act_bwd: x/g do not hold {n}·{c}·{s} values"
    );
    let fast = use_avx512::<T>();
    let mut sums = vec![(0f64, 0f64); c];
    let sp = SendPtr(sums.as_mut_ptr());
    let mut dx: Vec<T> = Vec::with_capacity(if need_dx { len } else { 0 });
    let dp = SendPtr(if need_dx {
        dx.as_mut_ptr() as *mut MaybeUninit<T>
    } else {
        std::ptr::null_mut()
    });
    per_channel(c, len, |ch| {
        let p = BwdChannel {
            scale: aff.scale[ch],
            shift: aff.shift[ch],
            mean: aff.mean[ch],
            rstd: aff.rstd[ch],
            k: w.map_or(1.0, |w| w[ch]) * aff.rstd[ch],
            cnt: (n * s).max(1) as f64,
        };
        // SAFETY: task `ch` alone writes the planes (i, ch) of dx (inside its capacity)
        // and element ch of `sums`; `fast` means AVX-512F and T = f32.
        unsafe {
            let r = if fast {
                #[cfg(target_arch = "x86_64")]
                {
                    channel_bwd_avx512(
                        as_f32(x),
                        as_f32(g),
                        dp.get().cast(),
                        d,
                        ch,
                        p,
                        act,
                        training,
                    )
                }
                #[cfg(not(target_arch = "x86_64"))]
                unreachable!()
            } else {
                channel_bwd(x, g, dp.get(), d, ch, p, act, training)
            };
            *sp.get().add(ch) = r;
        }
    });
    let dx = need_dx.then(|| {
        // SAFETY: every plane (i, ch) was written by its channel's task.
        unsafe { dx.set_len(len) };
        dx
    });
    let (db, dw) = sums.into_iter().unzip();
    (dx, dw, db)
}
