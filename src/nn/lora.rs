//! LoraLinear: a frozen base Linear plus a trainable rank-r adapter, PEFT semantics
//! (y = base(x) + s·B·A·dropout(x), s = alpha/r). Parameter names are the base's own
//! (`weight`, `bias`) and PEFT's adapter-file names (`lora_A.weight`, `lora_B.weight`), so a
//! base state dict and a PEFT adapter_model.safetensors both load by name.
use super::{Dropout, Forward, Linear, Module, init, parameter};
use crate::tensor::Rng;
use crate::{DType, Error, Result, ResultExt, Tensor};
use std::sync::atomic::{AtomicBool, Ordering};

pub struct LoraLinear {
    pub base: Linear,
    pub lora_a: Tensor,
    pub lora_b: Tensor,
    /// s in y = base(x) + s·B·A·x. Change it only while unmerged.
    pub scale: f64,
    dropout: Option<Dropout>,
    merged: AtomicBool,
}

impl LoraLinear {
    /// Wrap `base` with a rank-`r` adapter: A ~ kaiming_uniform(a=√5), B = 0 (PEFT's default
    /// init, so the wrapped layer starts equal to the base), scale = alpha / r. The base is
    /// frozen: it records no graph and gets no gradient.
    pub fn wrap(base: Linear, r: usize, alpha: f64, rng: &mut Rng) -> Result<Self> {
        Self::with_config(base, r, alpha / r.max(1) as f64, 0.0, rng)
    }

    /// As `wrap`, with the scale given directly (rsLoRA, alpha_pattern) and dropout `p` on
    /// the adapter's input in training. The dropout seed is drawn from `rng` only when p > 0.
    pub fn with_config(
        base: Linear,
        r: usize,
        scale: f64,
        dropout: f64,
        rng: &mut Rng,
    ) -> Result<Self> {
        if r == 0 {
            return Err(Error::msg("LoraLinear: rank r must be ≥ 1"));
        }
        if base.weight.rank() != 2 {
            return Err(Error::msg(format!(
                "LoraLinear: base weight {} is not [out, in]",
                base.weight.shape()
            )));
        }
        let (out_f, in_f) = (base.weight.dims()[0], base.weight.dims()[1]);
        base.weight.set_requires_grad(false)?;
        if let Some(b) = &base.bias {
            b.set_requires_grad(false)?;
        }
        let lora_a = parameter(init::default_weight([r, in_f], rng)?)?;
        let lora_b = parameter(Tensor::zeros([out_f, r], DType::F32))?;
        let dropout = if dropout > 0.0 {
            Some(Dropout::new(dropout, rng.next_u64())?)
        } else {
            None
        };
        Ok(LoraLinear {
            base,
            lora_a,
            lora_b,
            scale,
            dropout,
            merged: AtomicBool::new(false),
        })
    }

    pub fn rank(&self) -> usize {
        self.lora_a.dims()[0]
    }
    pub fn dropout_p(&self) -> f64 {
        self.dropout.as_ref().map_or(0.0, |d| d.p)
    }
    pub fn is_merged(&self) -> bool {
        self.merged.load(Ordering::Relaxed)
    }

    /// s·B·A in the base weight's dtype, computed in f32.
    fn delta(&self) -> Result<Tensor> {
        let b = self.lora_b.detach().to_dtype(DType::F32)?;
        let a = self.lora_a.detach().to_dtype(DType::F32)?;
        b.matmul(&a)?.mul_scalar(self.scale)
    }

    /// Fold the adapter into the base weight in place (W += s·B·A); forward is then the plain
    /// base linear (no adapter gradient, no dropout), as PEFT's merged layer.
    pub fn merge(&self) -> Result<()> {
        self.fold(true)
    }
    /// Take the adapter back out of the base weight (W -= s·B·A with the current A, B, s).
    pub fn unmerge(&self) -> Result<()> {
        self.fold(false)
    }
    fn fold(&self, merge: bool) -> Result<()> {
        let what = if merge { "merge" } else { "unmerge" };
        if self.is_merged() == merge {
            return Err(Error::msg(format!(
                "LoraLinear {}: cannot {what}, the adapter is {}",
                self.base.weight.shape(),
                if merge {
                    "already merged"
                } else {
                    "not merged"
                }
            )));
        }
        let _g = crate::no_grad();
        let w = self.base.weight.detach().to_dtype(DType::F32)?;
        let d = self.delta()?;
        let new = if merge { w.add(&d)? } else { w.sub(&d)? };
        self.base
            .weight
            .assign(&new)
            .with_context(|| format!("LoraLinear {what}"))?;
        self.merged.store(merge, Ordering::Relaxed);
        Ok(())
    }
}

impl Forward for LoraLinear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let ctx = || format!("LoraLinear {} r={}", self.base.weight.shape(), self.rank());
        if self.is_merged() {
            return self.base.forward(x).with_context(ctx);
        }
        match &self.dropout {
            // Dropout acts on the adapter's input only: the fused op keeps x and a byte
            // mask instead of the dropped copy of x.
            Some(d) if d.is_training() && d.p > 0.0 => {
                let keep = Tensor::from_vec(d.keep_mask(x.elem_count()), x.shape().clone());
                keep.and_then(|keep| {
                    x.lora_linear_dropout(
                        &self.base.weight,
                        self.base.bias.as_ref(),
                        &self.lora_a,
                        &self.lora_b,
                        self.scale,
                        &keep,
                        d.p,
                    )
                })
                .with_context(ctx)
            }
            _ => x
                .lora_linear(
                    &self.base.weight,
                    self.base.bias.as_ref(),
                    &self.lora_a,
                    &self.lora_b,
                    self.scale,
                )
                .with_context(ctx),
        }
    }
}

impl Module for LoraLinear {
    fn visit_own_params(&self, f: &mut dyn FnMut(&str, &Tensor)) {
        f("weight", &self.base.weight);
        if let Some(b) = &self.base.bias {
            f("bias", b);
        }
        f("lora_A.weight", &self.lora_a);
        f("lora_B.weight", &self.lora_b);
    }
    fn set_own_training(&self, training: bool) {
        if let Some(d) = &self.dropout {
            d.set_own_training(training);
        }
    }
}
