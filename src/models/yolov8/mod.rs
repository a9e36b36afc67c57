//! YOLOv8 (detect and seg) as ultralytics builds it from its model yaml.
pub mod anchors;
pub mod blocks;
pub mod config;
pub mod head;
pub mod loss;
pub mod model;
pub mod model_file;
pub mod plan;
pub mod postprocess;
pub mod predictor;
pub mod proto;

pub use config::YoloConfig;
pub use loss::{LossGains, compute_loss, head_maps};
pub use model::{EvalOutput, TrainOutput, YoloModel};
pub use model_file::{ModelMeta, load_model, save_model};
pub use predictor::{Detector, Predictor};
