//! Models built from their reference configs, loading the reference's weight names.
pub mod bert;
pub mod config_json;
pub mod grounding_dino;
pub mod sam;
pub mod swin;
pub mod yolov8;
