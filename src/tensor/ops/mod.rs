//! The op set, one file per family. Each op checks shapes and dtypes (errors name the op
//! and the shapes), runs the CPU kernel, and records its backward rule.
pub mod binary;
pub mod conv;
pub mod grid_sample;
pub mod pool;
pub mod reduce;
pub mod unary;
pub mod upsample;

use crate::{DType, Result, Tensor};

/// f16/bf16 inputs compute in f32 on CPU; returns the compute-dtype tensor.
pub(crate) fn to_compute(t: &Tensor) -> Result<Tensor> {
    let c = t.dtype().compute();
    if !t.dtype().is_float() {
        return Err(crate::Error::DType {
            op: "float op",
            msg: format!("expected a float tensor, got {}", t.dtype()),
        });
    }
    t.to_dtype(c)
}

/// The dtype a float result is returned in: the input's own.
pub(crate) fn restore(t: Tensor, dtype: DType) -> Result<Tensor> {
    if t.dtype() == dtype {
        Ok(t)
    } else {
        t.to_dtype(dtype)
    }
}
