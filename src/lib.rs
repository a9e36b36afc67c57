//! edgedistill: LoRA-tuned teachers distilled into an INT8 YOLOv8-seg student, with our own
//! tensor layer, autograd and kernels. Layers import downward only:
//! tools → train/eval/engine → models/loss → nn → tensor/autograd → backend.
pub mod autograd;
pub mod backend;
pub mod check;
pub mod error;
pub mod io;
pub mod loss;
pub mod nn;
pub mod optim;
pub mod tensor;

pub use autograd::{NoGradGuard, no_grad};
pub use error::{Error, Result, ResultExt};
pub use tensor::{DType, Device, Shape, Tensor};
