//! Swin Transformer as transformers' SwinBackbone: the image backbone of Grounding DINO,
//! usable on its own.
pub mod backbone;
pub mod config;
pub mod window;

pub use backbone::SwinBackbone;
pub use config::SwinConfig;
