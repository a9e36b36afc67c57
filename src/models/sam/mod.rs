//! SAM (Segment Anything) as transformers' SamModel: built from its config.json, loaded
//! from its model.safetensors names (or segment-anything's, mapped), box/point/mask prompts
//! in, low-res mask logits and IoU predictions out.
pub mod build;
pub mod config;
pub mod decoder;
pub mod model;
pub mod official_names;
pub mod params;
pub mod postprocess;
pub mod prompt;
pub mod rel_pos;
pub mod two_way;
pub mod vision;

pub use config::SamConfig;
pub use decoder::DecoderOutput;
pub use model::{Prompts, SamModel};
