//! ultralytics' building blocks (nn/modules/conv.py, block.py) with their parameter names:
//! Conv (conv, bn), Bottleneck, C2f, SPPF (Proto is in proto.rs). BatchNorm uses ultralytics'
//! eps 1e-3 / momentum 0.03 (ultralytics initialize_weights). `fuse` folds BN into the convolution (ultralytics
//! `fuse_conv_and_bn`), leaving `conv.weight` + `conv.bias`.
use crate::backend::cpu::math::exp_f32;
use crate::nn::{BatchNorm2d, Conv2d, Module, parameter};
use crate::tensor::{Act, Conv2dParams, Rng};
use crate::{Result, ResultExt, Tensor};
use rayon::prelude::*;

/// SiLU, in place when nothing records a graph through `y` (a fresh result nobody else
/// holds), else the differentiable op.
pub(crate) fn silu(y: Tensor) -> Result<Tensor> {
    if y.tracks_grad() || !y.is_contiguous() || y.dtype() != crate::DType::F32 {
        return y.silu();
    }
    y.with_slice_mut(|s: &mut [f32]| s.par_chunks_mut(1 << 14).for_each(silu_slice))?;
    Ok(y)
}

/// Sigmoid of `x` into a new tensor with the same `exp_f32` and vector dispatch as `silu`
/// (the head's class scores in eval, and the engine); the differentiable op when `x`
/// records a graph or is not contiguous f32.
pub fn sigmoid(x: &Tensor) -> Result<Tensor> {
    if x.tracks_grad() || !x.is_contiguous() || x.dtype() != crate::DType::F32 {
        return x.sigmoid();
    }
    let mut v = x.to_vec_f32()?;
    v.par_chunks_mut(1 << 14).for_each(sigmoid_slice);
    Tensor::from_vec(v, x.shape().clone())
}

// `exp_f32` has no mul_add, so every instruction set gives the same bits; the wider
// ones only run more lanes at once.
fn silu_slice(s: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU has AVX-512F (checked just above).
        return unsafe { silu_avx512(s) };
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2 (checked just above).
        return unsafe { silu_avx2(s) };
    }
    silu_generic(s)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn silu_avx512(s: &mut [f32]) {
    silu_generic(s)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn silu_avx2(s: &mut [f32]) {
    silu_generic(s)
}

fn sigmoid_slice(s: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU has AVX-512F (checked just above).
        return unsafe { sigmoid_avx512(s) };
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2 (checked just above).
        return unsafe { sigmoid_avx2(s) };
    }
    sigmoid_generic(s)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn sigmoid_avx512(s: &mut [f32]) {
    sigmoid_generic(s)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn sigmoid_avx2(s: &mut [f32]) {
    sigmoid_generic(s)
}

/// 1 / (1 + e^(-x)) with the branch-free `exp_f32`, so the loop vectorises.
#[inline(always)]
fn sigmoid_generic(s: &mut [f32]) {
    for v in s.iter_mut() {
        *v = 1.0 / (1.0 + exp_f32(-*v));
    }
}

/// x / (1 + e^(-x)) with the branch-free `exp_f32`, so the loop vectorises.
#[inline(always)]
fn silu_generic(s: &mut [f32]) {
    for v in s.iter_mut() {
        *v /= 1.0 + exp_f32(-*v);
    }
}

/// ultralytics `Conv`: Conv2d (no bias) → BatchNorm2d → SiLU (or identity). After `fuse`
/// the BN is gone and the conv carries a bias.
pub struct Conv {
    pub conv: Conv2d,
    pub bn: Option<BatchNorm2d>,
    pub act: bool,
}

impl Conv {
    /// Conv(c1, c2, k, s, p, g, d, act) with PyTorch default init.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        c1: usize,
        c2: usize,
        k: usize,
        s: usize,
        p: usize,
        g: usize,
        d: usize,
        act: bool,
        rng: &mut Rng,
    ) -> Result<Self> {
        let params = Conv2dParams {
            stride: (s, s),
            padding: (p, p),
            dilation: (d, d),
            groups: g,
        };
        let conv = Conv2d::new(c1, c2, (k, k), params, false, rng)?;
        let bn = BatchNorm2d::new(c2)?
            .with_eps(1e-3)
            .with_momentum(Some(0.03));
        Ok(Conv {
            conv,
            bn: Some(bn),
            act,
        })
    }
    /// The usual "same" Conv(c1, c2, k, s) with autopad k/2.
    pub fn std(c1: usize, c2: usize, k: usize, s: usize, rng: &mut Rng) -> Result<Self> {
        Self::new(c1, c2, k, s, k / 2, 1, 1, true, rng)
    }
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = x
            .conv2d(&self.conv.weight, self.conv.bias.as_ref(), self.conv.params)
            .with_context(|| format!("Conv {}", self.conv.weight.shape()))?;
        match (&self.bn, self.act) {
            (Some(bn), true) => bn.forward_act(&y, Act::Silu),
            (Some(bn), false) => bn.forward(&y),
            (None, true) => silu(y),
            (None, false) => Ok(y),
        }
    }
    /// BN folded into the conv: w·γ/√(var+ε), β − mean·γ/√(var+ε) (+ the conv's own bias),
    /// computed in f64 from the running statistics. Fresh, detached tensors.
    pub fn fuse(&self) -> Result<Conv> {
        let Some(bn) = &self.bn else {
            return Ok(Conv {
                conv: copy_conv(&self.conv)?,
                bn: None,
                act: self.act,
            });
        };
        let w = self.conv.weight.to_vec_f64()?;
        let dims = self.conv.weight.dims().to_vec();
        let o = dims[0];
        let per = w.len() / o.max(1);
        let (g, b) = (bn.weight.to_vec_f64()?, bn.bias.to_vec_f64()?);
        let (m, v) = (bn.running_mean.to_vec_f64()?, bn.running_var.to_vec_f64()?);
        let cb = self
            .conv
            .bias
            .as_ref()
            .map(|t| t.to_vec_f64())
            .transpose()?;
        let scale: Vec<f64> = (0..o).map(|k| g[k] / (v[k] + bn.eps).sqrt()).collect();
        let fw: Vec<f32> = w
            .iter()
            .enumerate()
            .map(|(i, x)| (x * scale[i / per]) as f32)
            .collect();
        let fb: Vec<f32> = (0..o)
            .map(|k| (b[k] + (cb.as_ref().map_or(0.0, |c| c[k]) - m[k]) * scale[k]) as f32)
            .collect();
        let conv = Conv2d {
            weight: parameter(Tensor::from_vec(fw, dims)?)?,
            bias: Some(parameter(Tensor::from_vec(fb, o)?)?),
            params: self.conv.params,
        };
        Ok(Conv {
            conv,
            bn: None,
            act: self.act,
        })
    }
}

/// A detached copy of a Conv2d (weights in fresh storage).
pub(crate) fn copy_conv(c: &Conv2d) -> Result<Conv2d> {
    Ok(Conv2d {
        weight: parameter(c.weight.deep_clone()?)?,
        bias: c
            .bias
            .as_ref()
            .map(|b| b.deep_clone().and_then(parameter))
            .transpose()?,
        params: c.params,
    })
}

impl Module for Conv {
    fn visit_children(&self, f: &mut dyn FnMut(&str, &dyn Module)) {
        f("conv", &self.conv);
        if let Some(bn) = &self.bn {
            f("bn", bn);
        }
    }
}

/// An indexed module list (torch ModuleList / Sequential: children "0", "1", ...).
pub struct List<T>(pub Vec<T>);

impl<T: Module> Module for List<T> {
    fn visit_children(&self, f: &mut dyn FnMut(&str, &dyn Module)) {
        for (i, m) in self.0.iter().enumerate() {
            f(&i.to_string(), m);
        }
    }
}

/// Bottleneck(c, c, shortcut, g, k=(3,3), e=1.0) as C2f builds it.
pub struct Bottleneck {
    pub cv1: Conv,
    pub cv2: Conv,
    pub add: bool,
}

impl Bottleneck {
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = self.cv2.forward(&self.cv1.forward(x)?)?;
        if self.add { x.add(&y) } else { Ok(y) }
    }
}

impl Module for Bottleneck {
    fn visit_children(&self, f: &mut dyn FnMut(&str, &dyn Module)) {
        f("cv1", &self.cv1);
        f("cv2", &self.cv2);
    }
}

/// C2f(c1, c2, n, shortcut, g, e): cv1 → split in two → n bottlenecks on the last part →
/// concat all → cv2.
pub struct C2f {
    pub cv1: Conv,
    pub cv2: Conv,
    pub m: List<Bottleneck>,
    pub c: usize,
}

impl C2f {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        c1: usize,
        c2: usize,
        n: usize,
        shortcut: bool,
        g: usize,
        e: f64,
        rng: &mut Rng,
    ) -> Result<Self> {
        let c = (c2 as f64 * e) as usize;
        let cv1 = Conv::std(c1, 2 * c, 1, 1, rng)?;
        let cv2 = Conv::std((2 + n) * c, c2, 1, 1, rng)?;
        let m = (0..n)
            .map(|_| {
                Ok(Bottleneck {
                    cv1: Conv::std(c, c, 3, 1, rng)?,
                    cv2: Conv::new(c, c, 3, 1, 1, g, 1, true, rng)?,
                    add: shortcut,
                })
            })
            .collect::<Result<_>>()?;
        Ok(C2f {
            cv1,
            cv2,
            m: List(m),
            c,
        })
    }
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let a = self.cv1.forward(x)?;
        // ultralytics: y = cv1(x).chunk(2, 1); y += [m(y[-1]) ...]; cv2(cat(y)). Its two
        // halves concatenated are `a` itself, so only the second half is cut out (one
        // narrow instead of two; same values).
        let mut ys = vec![a.clone()];
        let mut last = a.narrow(1, self.c, self.c)?;
        for b in &self.m.0 {
            last = b.forward(&last)?;
            ys.push(last.clone());
        }
        let refs: Vec<&Tensor> = ys.iter().collect();
        self.cv2.forward(&Tensor::cat(&refs, 1)?)
    }
    pub fn fuse(&self) -> Result<Self> {
        let m = self
            .m
            .0
            .iter()
            .map(|b| {
                Ok(Bottleneck {
                    cv1: b.cv1.fuse()?,
                    cv2: b.cv2.fuse()?,
                    add: b.add,
                })
            })
            .collect::<Result<_>>()?;
        Ok(C2f {
            cv1: self.cv1.fuse()?,
            cv2: self.cv2.fuse()?,
            m: List(m),
            c: self.c,
        })
    }
}

impl Module for C2f {
    fn visit_children(&self, f: &mut dyn FnMut(&str, &dyn Module)) {
        f("cv1", &self.cv1);
        f("cv2", &self.cv2);
        f("m", &self.m);
    }
}

/// SPPF(c1, c2, k, n, shortcut): cv1 → n chained k×k max pools → concat → cv2.
pub struct Sppf {
    pub cv1: Conv,
    pub cv2: Conv,
    pub k: usize,
    pub n: usize,
    pub add: bool,
}

impl Sppf {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        c1: usize,
        c2: usize,
        k: usize,
        n: usize,
        shortcut: bool,
        cv1_act: bool,
        rng: &mut Rng,
    ) -> Result<Self> {
        let c_ = c1 / 2;
        let cv1 = Conv::new(c1, c_, 1, 1, 0, 1, 1, cv1_act, rng)?;
        let cv2 = Conv::std(c_ * (n + 1), c2, 1, 1, rng)?;
        Ok(Sppf {
            cv1,
            cv2,
            k,
            n,
            add: shortcut && c1 == c2,
        })
    }
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut ys = vec![self.cv1.forward(x)?];
        let (k, p) = (self.k, self.k / 2);
        for i in 0..self.n {
            let y = ys[i].max_pool2d((k, k), (1, 1), (p, p))?;
            ys.push(y);
        }
        let refs: Vec<&Tensor> = ys.iter().collect();
        let y = self.cv2.forward(&Tensor::cat(&refs, 1)?)?;
        if self.add { y.add(x) } else { Ok(y) }
    }
    pub fn fuse(&self) -> Result<Self> {
        Ok(Sppf {
            cv1: self.cv1.fuse()?,
            cv2: self.cv2.fuse()?,
            k: self.k,
            n: self.n,
            add: self.add,
        })
    }
}

impl Module for Sppf {
    fn visit_children(&self, f: &mut dyn FnMut(&str, &dyn Module)) {
        f("cv1", &self.cv1);
        f("cv2", &self.cv2);
    }
}
