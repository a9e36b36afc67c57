//! LoraLinear: a frozen base Linear plus a trainable rank-r adapter, PEFT semantics
//! (y = base(x) + (alpha/r)·B·A·x, dropout 0). Parameter names are the base's own
//! (`weight`, `bias`) and PEFT's adapter-file names (`lora_A.weight`, `lora_B.weight`), so a
//! base state dict and a PEFT adapter_model.safetensors both load by name.
use super::{Forward, Linear, Module, init, parameter};
use crate::tensor::Rng;
use crate::{DType, Error, Result, ResultExt, Tensor};

pub struct LoraLinear {
    pub base: Linear,
    pub lora_a: Tensor,
    pub lora_b: Tensor,
    pub scale: f64,
}

impl LoraLinear {
    /// Wrap `base` with a rank-`r` adapter: A ~ kaiming_uniform(a=√5), B = 0 (PEFT's default
    /// init, so the wrapped layer starts equal to the base), scale = alpha / r. The base is
    /// frozen: it records no graph and gets no gradient.
    pub fn wrap(base: Linear, r: usize, alpha: f64, rng: &mut Rng) -> Result<Self> {
        if r == 0 {
            return Err(Error::msg("LoraLinear: rank r must be ≥ 1"));
        }
        let (out_f, in_f) = (base.weight.dims()[0], base.weight.dims()[1]);
        base.weight.set_requires_grad(false)?;
        if let Some(b) = &base.bias {
            b.set_requires_grad(false)?;
        }
        let lora_a = parameter(init::default_weight([r, in_f], rng)?)?;
        let lora_b = parameter(Tensor::zeros([out_f, r], DType::F32))?;
        Ok(LoraLinear {
            base,
            lora_a,
            lora_b,
            scale: alpha / r as f64,
        })
    }
    pub fn rank(&self) -> usize {
        self.lora_a.dims()[0]
    }
}

impl Forward for LoraLinear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.lora_linear(
            &self.base.weight,
            self.base.bias.as_ref(),
            &self.lora_a,
            &self.lora_b,
            self.scale,
        )
        .with_context(|| format!("LoraLinear {} r={}", self.base.weight.shape(), self.rank()))
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
}
