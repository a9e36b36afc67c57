//! From raw head outputs to boxes, scores, classes and masks, as ultralytics 8.4.190's
//! segment predictor does it: [`non_max_suppression`] (utils/nms.py, `TorchNMS`),
//! [`process_mask`] (utils/ops.py, `upsample=True`), then [`to_original`] through the
//! letterbox [`Placement`](crate::data::preprocess::Placement) (`scale_boxes`,
//! `scale_masks`). [`predict_segment`] chains them, dropping empty masks as the predictor
//! does. Output rows are in the reference's order, ties included ([`torch_argsort_desc`]);
//! `ed-check` kind `yolov8-postprocess` compares all of it with the reference.
mod interp;
mod mask;
mod nms;
mod scale;
mod sort;

pub use interp::{Tap, axis_taps};
pub use mask::{CropMask, process_mask};
pub use nms::{Detections, NmsConfig, non_max_suppression, torch_nms};
pub use scale::{Binarize, Prediction, predict_segment, scale_mask, to_original};
pub use sort::torch_argsort_desc;
