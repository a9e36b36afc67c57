//! The op set, one file per family. Each op checks shapes and dtypes (errors name the op
//! and the shapes), runs the CPU kernel, and records its backward rule.

/// Run `$body` with the type alias `$T` set to the element type of any dtype: for ops
/// that only move data (cat, gather, sort, ...). Defined before the modules that use it.
macro_rules! dispatch_any {
    ($dt:expr, $T:ident => $body:expr) => {
        match $dt {
            $crate::DType::F32 => {
                type $T = f32;
                $body
            }
            $crate::DType::F64 => {
                type $T = f64;
                $body
            }
            $crate::DType::F16 => {
                type $T = half::f16;
                $body
            }
            $crate::DType::BF16 => {
                type $T = half::bf16;
                $body
            }
            $crate::DType::I8 => {
                type $T = i8;
                $body
            }
            $crate::DType::U8 => {
                type $T = u8;
                $body
            }
            $crate::DType::I32 => {
                type $T = i32;
                $body
            }
            $crate::DType::I64 => {
                type $T = i64;
                $body
            }
        }
    };
}

pub mod attention;
pub mod binary;
pub mod concat;
pub mod conv;
pub mod grid_sample;
pub mod index;
pub mod lora;
pub mod matmul;
pub mod ms_deform_attn;
pub mod norm;
pub mod pool;
pub mod reduce;
pub mod softmax;
pub mod sort;
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

/// [outer, size, inner] split of `dims` around dim `d` (the view the CPU kernels take).
pub(crate) fn split_at_dim(dims: &[usize], d: usize) -> (usize, usize, usize) {
    (
        dims[..d].iter().product(),
        dims[d],
        dims[d + 1..].iter().product(),
    )
}
