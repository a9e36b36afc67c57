//! YOLOv8 (detect and seg) as ultralytics builds it from its model yaml.
pub mod anchors;
pub mod postprocess;
