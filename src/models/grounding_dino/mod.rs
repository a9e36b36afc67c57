//! Grounding DINO as transformers' GroundingDinoForObjectDetection: a Swin image backbone,
//! a BERT text encoder, the text-guided feature enhancer, language-guided query selection
//! and the cross-modality decoder, with contrastive logits over the prompt's tokens.
pub mod attention;
pub mod config;
pub mod decoder;
pub mod deform;
pub mod encoder;
pub mod model;
pub mod names;
pub mod position;
pub mod postprocess;
pub mod prompt;
pub mod text;

pub use config::GroundingDinoConfig;
pub use model::{Encoded, GroundingDino, Inputs, Output};
pub use postprocess::{GdDetection, Thresholds, detections};
pub use prompt::ClassPrompt;
