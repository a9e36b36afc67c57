//! The tensor layer: `Tensor`, `Shape`, `DType`, storage, views and the op set.
//! One file per op family under `ops/`; the arithmetic itself lives in `backend::cpu`.
mod convert;
mod device;
pub mod dtype;
mod layout;
pub mod ops;
pub mod rng;
mod shape;
mod storage;
#[allow(clippy::module_inception)]
mod tensor;
mod view;

pub use device::Device;
pub use dtype::{DType, Element, Float};
pub use layout::Layout;
pub use ops::conv::{Conv2dParams, ConvTranspose2dParams};
pub use ops::norm::Act;
pub use rng::Rng;
pub use shape::Shape;
pub use storage::{CpuStorage, Storage, StorageElement};
pub use tensor::{Tensor, TensorId};

/// Run `$body` with the type alias `$T` set to f32 or f64 for a float compute dtype.
#[macro_export]
macro_rules! dispatch_float {
    ($dt:expr, $op:expr, $T:ident => $body:expr) => {
        match $dt {
            $crate::DType::F32 => {
                #[allow(dead_code)]
                type $T = f32;
                $body
            }
            $crate::DType::F64 => {
                #[allow(dead_code)]
                type $T = f64;
                $body
            }
            other => {
                return Err($crate::Error::DType {
                    op: $op,
                    msg: format!("expected f32 or f64, got {other}"),
                })
            }
        }
    };
}
