//! SAM (Segment Anything) as transformers' SamModel: built from its config.json, loaded
//! from its model.safetensors names (or segment-anything's, mapped), box/point/mask prompts
//! in, low-res mask logits and IoU predictions out.
pub mod config;
pub mod decoder;
pub mod model;
pub mod official_names;
pub mod postprocess;
pub mod prompt;
pub mod rel_pos;
pub mod two_way;
pub mod vision;

/// The shared builder, under the names SAM's files have always used.
pub mod build {
    pub use crate::nn::builder::*;
}

pub use config::SamConfig;
pub use decoder::DecoderOutput;
pub use model::{Prompts, SamModel};
