//! LayerNorm over the trailing `normalized_shape` dims, torch's names (weight, bias).
use super::{Module, parameter};
use crate::{DType, Result, Shape, Tensor};

pub struct LayerNorm {
    pub normalized_shape: Shape,
    /// `None` when built without elementwise affine.
    pub weight: Option<Tensor>,
    pub bias: Option<Tensor>,
    pub eps: f64,
}

impl LayerNorm {
    /// torch defaults: eps 1e-5, weight 1, bias 0.
    pub fn new(normalized_shape: impl Into<Shape>) -> Result<Self> {
        let s = normalized_shape.into();
        Ok(LayerNorm {
            weight: Some(parameter(Tensor::ones(s.clone(), DType::F32))?),
            bias: Some(parameter(Tensor::zeros(s.clone(), DType::F32))?),
            normalized_shape: s,
            eps: 1e-5,
        })
    }
    /// Without weight and bias (torch's elementwise_affine=False).
    pub fn without_affine(normalized_shape: impl Into<Shape>) -> Self {
        LayerNorm {
            normalized_shape: normalized_shape.into(),
            weight: None,
            bias: None,
            eps: 1e-5,
        }
    }
    pub fn with_eps(mut self, eps: f64) -> Self {
        self.eps = eps;
        self
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let k = self.normalized_shape.rank();
        let tail = &x.dims()[x.rank().saturating_sub(k)..];
        if x.rank() < k || tail != self.normalized_shape.dims() {
            return Err(crate::Error::Shape {
                op: "LayerNorm",
                msg: format!(
                    "input {} does not end in the normalised shape {}",
                    x.shape(),
                    self.normalized_shape
                ),
            });
        }
        x.layer_norm(k, self.weight.as_ref(), self.bias.as_ref(), self.eps)
    }
}

impl Module for LayerNorm {
    fn visit_own_params(&self, f: &mut dyn FnMut(&str, &Tensor)) {
        if let Some(w) = &self.weight {
            f("weight", w);
        }
        if let Some(b) = &self.bias {
            f("bias", b);
        }
    }
}
