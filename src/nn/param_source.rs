//! Where a model's parameters come from while it is built: a state dict (a checkpoint:
//! each tensor taken by its transformers name and shape-checked) or a seeded random init
//! (tests, and the decoder-only training test). Building from the state dict directly avoids
//! a random init of a ViT-H or a Swin-B that would be overwritten at once. Every missing, mis-shaped or
//! unused tensor is collected and reported together by `finish`.
use crate::io::StateDict;
use crate::nn::{self, Conv2d, LayerNorm, Linear, init, parameter};
use crate::tensor::{Conv2dParams, Rng};
use crate::{DType, Error, Result, Shape, Tensor};
use std::collections::HashSet;

/// How a parameter is drawn when it is not loaded.
#[derive(Clone, Copy, Debug)]
pub enum Init {
    /// torch's Linear/Conv2d default (kaiming_uniform a=√5).
    Default,
    /// torch's default bias for this fan-in.
    Bias(usize),
    Zeros,
    Ones,
    Normal(f64),
}

pub enum ParamSource<'a> {
    Random(Rng),
    Load {
        sd: &'a StateDict,
        used: HashSet<String>,
        missing: Vec<String>,
        mismatched: Vec<String>,
    },
}

impl<'a> ParamSource<'a> {
    pub fn random(seed: u64) -> Self {
        ParamSource::Random(Rng::new(seed))
    }
    pub fn load(sd: &'a StateDict) -> Self {
        ParamSource::Load {
            sd,
            used: HashSet::new(),
            missing: Vec::new(),
            mismatched: Vec::new(),
        }
    }

    /// The trainable f32 parameter `name` of `shape`. A missing or mis-shaped one is noted
    /// (and a zero tensor stands in) so that `finish` reports them all at once.
    pub fn param(&mut self, name: &str, shape: impl Into<Shape>, how: Init) -> Result<Tensor> {
        let shape = shape.into();
        let t = match self {
            ParamSource::Random(rng) => match how {
                Init::Default => init::default_weight(shape.clone(), rng)?,
                Init::Bias(fan_in) => init::default_bias(shape.elem_count(), fan_in, rng),
                Init::Zeros => Tensor::zeros(shape.clone(), DType::F32),
                Init::Ones => Tensor::ones(shape.clone(), DType::F32),
                Init::Normal(std) => Tensor::randn(shape.clone(), 0.0, std, rng),
            },
            ParamSource::Load {
                sd,
                used,
                missing,
                mismatched,
            } => match sd.shape(name) {
                None => {
                    missing.push(name.to_string());
                    Tensor::zeros(shape.clone(), DType::F32)
                }
                Some(s) if s != shape => {
                    mismatched.push(format!("{name} (model {shape}, checkpoint {s})"));
                    used.insert(name.to_string());
                    Tensor::zeros(shape.clone(), DType::F32)
                }
                Some(_) => {
                    used.insert(name.to_string());
                    sd.get(name)?.to_dtype(DType::F32)?
                }
            },
        };
        parameter(t.reshape(shape)?)
    }

    /// Mark `name` as consumed without building anything (a tied duplicate).
    pub fn alias(&mut self, name: &str) {
        if let ParamSource::Load { sd, used, .. } = self
            && sd.contains(name)
        {
            used.insert(name.to_string());
        }
    }

    pub fn linear(&mut self, name: &str, i: usize, o: usize, bias: bool) -> Result<Linear> {
        Ok(Linear {
            weight: self.param(&nn::join(name, "weight"), [o, i], Init::Default)?,
            bias: if bias {
                Some(self.param(&nn::join(name, "bias"), [o], Init::Bias(i))?)
            } else {
                None
            },
        })
    }

    pub fn conv(
        &mut self,
        name: &str,
        i: usize,
        o: usize,
        k: usize,
        params: Conv2dParams,
        bias: bool,
    ) -> Result<Conv2d> {
        Ok(Conv2d {
            weight: self.param(&nn::join(name, "weight"), [o, i, k, k], Init::Default)?,
            bias: if bias {
                Some(self.param(&nn::join(name, "bias"), [o], Init::Bias(i * k * k))?)
            } else {
                None
            },
            params,
        })
    }

    pub fn layer_norm(&mut self, name: &str, n: usize, eps: f64) -> Result<LayerNorm> {
        Ok(LayerNorm {
            normalized_shape: Shape::from(n),
            weight: Some(self.param(&nn::join(name, "weight"), [n], Init::Ones)?),
            bias: Some(self.param(&nn::join(name, "bias"), [n], Init::Zeros)?),
            eps,
        })
    }

    /// `nn.Embedding(num, dim).weight` (N(0, 1) as torch).
    pub fn embedding(&mut self, name: &str, num: usize, dim: usize) -> Result<Tensor> {
        self.param(&nn::join(name, "weight"), [num, dim], Init::Normal(1.0))
    }

    /// Every problem found while building, or Ok. Tensors of the state dict that nothing
    /// took are an error too: a checkpoint of another config must not half-load.
    pub fn finish(self, origin: &str) -> Result<()> {
        let ParamSource::Load {
            sd,
            used,
            missing,
            mismatched,
        } = self
        else {
            return Ok(());
        };
        let mut unexpected: Vec<String> = sd
            .names()
            .filter(|n| !used.contains(*n))
            .map(str::to_string)
            .collect();
        unexpected.sort();
        if missing.is_empty() && mismatched.is_empty() && unexpected.is_empty() {
            return Ok(());
        }
        Err(Error::Load {
            missing,
            unexpected,
            mismatched,
        }
        .context(format!("checkpoint {origin}")))
    }
}
