//! Linear: y = x·Wᵀ + b with torch's names (weight [out, in], bias [out]) and default init.
use super::{Forward, Module, init, parameter};
use crate::tensor::Rng;
use crate::{Result, ResultExt, Tensor};

pub struct Linear {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
}

impl Linear {
    /// torch.nn.Linear's default initialisation, drawn from `rng`.
    pub fn new(in_features: usize, out_features: usize, bias: bool, rng: &mut Rng) -> Result<Self> {
        let weight = parameter(init::default_weight([out_features, in_features], rng)?)?;
        let bias = if bias {
            Some(parameter(init::default_bias(
                out_features,
                in_features,
                rng,
            ))?)
        } else {
            None
        };
        Ok(Linear { weight, bias })
    }
}

impl Forward for Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.linear(&self.weight, self.bias.as_ref())
            .with_context(|| format!("Linear {}", self.weight.shape()))
    }
}

impl Module for Linear {
    fn visit_own_params(&self, f: &mut dyn FnMut(&str, &Tensor)) {
        f("weight", &self.weight);
        if let Some(b) = &self.bias {
            f("bias", b);
        }
    }
}
