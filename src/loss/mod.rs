//! Losses. Model-specific ones (TAL assigner, CIoU/DFL, mask, distillation) join later;
//! these are the basic building blocks, composed from differentiable ops.
mod basic;
pub mod sam;
pub mod yolo;
pub use basic::{bce_with_logits, cross_entropy, mse};
