//! edgedistill: LoRA-tuned teachers distilled into an INT8 YOLOv8-seg student, with our own
//! tensor layer, autograd and kernels. Layers import downward only:
//! tools → train/eval/engine → models/loss → nn → tensor/autograd → backend.
//!
//! ```
//! use edgedistill::{Tensor, tensor::Rng};
//!
//! let mut rng = Rng::new(0);
//! let w = Tensor::randn([3, 4], 0.0, 0.1, &mut rng).requires_grad_()?;
//! let x = Tensor::randn([8, 4], 0.0, 1.0, &mut rng);
//! let loss = x.matmul(&w.t()?)?.relu()?.sqr()?.mean_all()?;
//! loss.backward()?;
//! let g = w.grad().unwrap(); // d loss / d w
//! assert_eq!(g.dims(), &[3, 4]);
//! // Errors are values that name the op and the shapes:
//! let e = x.add(&w).unwrap_err().to_string();
//! assert!(e.contains("[8, 4]") && e.contains("[3, 4]"));
//! # Ok::<(), edgedistill::Error>(())
//! ```
pub mod autograd;
pub mod backend;
pub mod check;
pub mod data;
pub mod engine;
pub mod error;
pub mod eval;
pub mod io;
pub mod loss;
pub mod models;
pub mod nn;
pub mod optim;
pub mod quant;
pub mod tensor;
pub mod train;

pub use autograd::{NoGradGuard, no_grad};
pub use error::{Error, Result, ResultExt};
pub use tensor::{DType, Device, Shape, Tensor};
