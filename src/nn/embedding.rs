//! Embedding: rows of `weight` [num, dim] picked by i64 ids (torch init N(0, 1)).
use super::{Forward, Module, parameter};
use crate::tensor::Rng;
use crate::{DType, Error, Result, Tensor};

pub struct Embedding {
    pub weight: Tensor,
}

impl Embedding {
    pub fn new(num: usize, dim: usize, rng: &mut Rng) -> Result<Self> {
        Ok(Embedding {
            weight: parameter(Tensor::randn([num, dim], 0.0, 1.0, rng))?,
        })
    }
}

impl Forward for Embedding {
    /// ids of any shape → [..ids.shape, dim].
    fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        if ids.dtype() != DType::I64 {
            return Err(Error::DType {
                op: "Embedding",
                msg: format!("ids must be i64, got {}", ids.dtype()),
            });
        }
        let flat = ids.flatten(0, -1)?;
        let rows = self.weight.index_select(0, &flat)?;
        let mut shape = ids.dims().to_vec();
        shape.push(self.weight.dims()[1]);
        rows.reshape(shape)
    }
}

impl Module for Embedding {
    fn visit_own_params(&self, f: &mut dyn FnMut(&str, &Tensor)) {
        f("weight", &self.weight);
    }
}
