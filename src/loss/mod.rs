//! Losses. Model-specific ones (TAL assigner, CIoU/DFL, mask, distillation) join later;
//! these are the basic building blocks, composed from differentiable ops.
mod basic;
pub mod grounding_dino;
pub mod grounding_dino_match;
mod grounding_dino_validate;
pub mod hungarian;
pub mod sam;
pub mod yolo;
pub use basic::{bce_with_logits, cross_entropy, mse};
pub use hungarian::linear_sum_assignment;
