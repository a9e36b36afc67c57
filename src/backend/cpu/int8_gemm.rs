//! s8·s8 → s32 GEMM with the INT8 engine's epilogue; the reference for
//! `kernels/int8_gemm.cu`. Both follow this contract:
//!
//! `acc[m, n] = Σ_k a[m, k]·b[n, k]` exactly in i32 (`a` activations `[M, K]`, `b` weights
//! `[N, K]`, both row-major: `y = a·bᵀ` as `nn::Linear`); then per output channel
//! `y = fma(f32(acc), scale[n], bias[n] or 0)` (round-to-nearest conversions, one rounding
//! in the fma: the kernel uses `fmaf`, we use `f32::mul_add`), then the activation, then
//! the output: f32, f16 (round to nearest even), or s8 = `clamp(rint(y · inv_scale), −128,
//! 127)` with ties to even (CUDA `__float2int_rn`). `scale[n]` is the product of the
//! activation and weight scales, folded by the caller. None/ReLU results are bit-identical
//! between the two; SiLU uses each side's `exp` and may differ by a few ulp.
use super::PAR_MIN;
use crate::{Error, Result};
use half::f16;
use rayon::prelude::*;

const OP: &str = "int8_gemm";

/// The activation fused into the epilogue (YOLOv8 uses SiLU).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    None,
    Relu,
    Silu,
}

impl Activation {
    /// The code `kernels/int8_gemm.cu` takes.
    pub fn code(self) -> i32 {
        match self {
            Activation::None => 0,
            Activation::Relu => 1,
            Activation::Silu => 2,
        }
    }
    #[inline]
    fn apply(self, y: f32) -> f32 {
        match self {
            Activation::None => y,
            Activation::Relu => y.max(0.0),
            Activation::Silu => y / (1.0 + (-y).exp()),
        }
    }
}

/// Per-output-channel scale, optional bias, activation.
#[derive(Clone, Copy, Debug)]
pub struct Epilogue<'a> {
    pub scale: &'a [f32],
    pub bias: Option<&'a [f32]>,
    pub act: Activation,
}

/// Where the result goes, `[M, N]` row-major.
pub enum Int8Out<'a> {
    F32(&'a mut [f32]),
    F16(&'a mut [f16]),
    /// Requantised: `clamp(rint(y · inv_scale), −128, 127)`.
    S8 {
        out: &'a mut [i8],
        inv_scale: f32,
    },
}

impl Int8Out<'_> {
    fn len(&self) -> usize {
        match self {
            Int8Out::F32(o) => o.len(),
            Int8Out::F16(o) => o.len(),
            Int8Out::S8 { out, .. } => out.len(),
        }
    }
}

/// `Σ_k a[k]·b[k]` in i32. i16 products summed in i32 chunks let LLVM use pmaddwd.
#[inline]
fn dot(a: &[i8], b: &[i8]) -> i32 {
    let mut acc = 0i32;
    let (ac, bc) = (a.chunks_exact(32), b.chunks_exact(32));
    let (ar, br) = (ac.remainder(), bc.remainder());
    for (x, y) in ac.zip(bc) {
        let mut s = 0i32;
        for i in 0..32 {
            s += i32::from(i16::from(x[i]) * i16::from(y[i]));
        }
        acc = acc.wrapping_add(s);
    }
    for (&x, &y) in ar.iter().zip(br) {
        acc = acc.wrapping_add(i32::from(x) * i32::from(y));
    }
    acc
}

/// Checks every length against `m, n, k`; the CUDA launcher uses the same check.
pub fn check(
    a: usize,
    b: usize,
    (m, n, k): (usize, usize, usize),
    epi: &Epilogue,
    out: usize,
) -> Result<()> {
    let ok = Some(a) == m.checked_mul(k)
        && Some(b) == n.checked_mul(k)
        && epi.scale.len() == n
        && epi.bias.is_none_or(|b| b.len() == n)
        && Some(out) == m.checked_mul(n);
    if ok {
        Ok(())
    } else {
        Err(Error::Shape {
            op: OP,
            msg: format!(
                "a {a}, b {b}, scale {}, bias {:?}, out {out} elements do not fit m={m} n={n} k={k} (a [m,k], b [n,k], scale/bias [n], out [m,n])",
                epi.scale.len(),
                epi.bias.map(<[f32]>::len)
            ),
        })
    }
}

/// The raw i32 accumulators `[M, N]` (no epilogue).
pub fn int8_gemm_s32(a: &[i8], b: &[i8], (m, n, k): (usize, usize, usize)) -> Result<Vec<i32>> {
    let epi = Epilogue {
        scale: &vec![0.0; n],
        bias: None,
        act: Activation::None,
    };
    check(a.len(), b.len(), (m, n, k), &epi, m * n)?;
    let mut out = vec![0i32; m * n];
    if n > 0 {
        rows(&mut out, a, b, (n, k), |acc, _| acc);
    }
    Ok(out)
}

/// `out = epilogue(a · bᵀ)` as in the module docs.
pub fn int8_gemm(
    a: &[i8],
    b: &[i8],
    (m, n, k): (usize, usize, usize),
    epi: &Epilogue,
    mut out: Int8Out,
) -> Result<()> {
    check(a.len(), b.len(), (m, n, k), epi, out.len())?;
    if m == 0 || n == 0 {
        return Ok(());
    }
    let value = |acc: i32, j: usize| {
        let bias = epi.bias.map_or(0.0, |b| b[j]);
        epi.act.apply((acc as f32).mul_add(epi.scale[j], bias))
    };
    match &mut out {
        Int8Out::F32(o) => rows(o, a, b, (n, k), value),
        Int8Out::F16(o) => rows(o, a, b, (n, k), |acc, j| f16::from_f32(value(acc, j))),
        Int8Out::S8 { out, inv_scale } => {
            let inv = *inv_scale;
            rows(out, a, b, (n, k), |acc, j| requant(value(acc, j), inv))
        }
    }
    Ok(())
}

/// Fills `out` row by row in parallel: the row of `a` stays in L1 while `b` streams past.
fn rows<T: Send>(
    out: &mut [T],
    a: &[i8],
    b: &[i8],
    (n, k): (usize, usize),
    f: impl Fn(i32, usize) -> T + Sync,
) {
    let min_rows = (PAR_MIN / (n * k).max(1)).max(1);
    out.par_chunks_mut(n)
        .with_min_len(min_rows)
        .enumerate()
        .for_each(|(i, row)| {
            let ar = &a[i * k..(i + 1) * k];
            for (j, o) in row.iter_mut().enumerate() {
                *o = f(dot(ar, &b[j * k..(j + 1) * k]), j);
            }
        });
}

/// `clamp(rint(y · inv_scale), −128, 127)`, ties to even; NaN → 0 (as `__float2int_rn`).
#[inline]
pub fn requant(y: f32, inv_scale: f32) -> i8 {
    let q = (y * inv_scale).round_ties_even();
    if q.is_nan() {
        0
    } else {
        q.clamp(-128.0, 127.0) as i8
    }
}
