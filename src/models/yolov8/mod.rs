//! YOLOv8 (detect and seg) as ultralytics builds it from its model yaml.
pub mod anchors;
pub mod blocks;
pub mod config;
pub mod head;
pub mod loss;
pub mod model;
pub mod plan;
pub mod postprocess;
pub mod proto;

pub use config::YoloConfig;
pub use model::{EvalOutput, TrainOutput, YoloModel};
pub use loss::{LossGains, compute_loss, head_maps};
