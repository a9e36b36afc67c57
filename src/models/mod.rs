//! Models built from their reference configs, loading the reference's weight names.
pub mod bert;
pub mod sam;
pub mod yolov8;
