//! Models built from their reference configs, loading the reference's weight names.
pub mod yolov8;
