//! Evaluation: COCOeval-exact mAP (pycocotools 2.0.11), mask and box IoU, ultralytics-style
//! P/R/F1 and mAP, confusion matrix, per-image records, and the self-contained HTML report.
pub mod coco_bridge;
pub mod cocoeval;
pub mod detector_eval;
pub mod grounding_dino_eval;
pub mod metrics;
pub mod plot;
pub mod report;
pub mod results;
pub mod results_write;

pub use cocoeval::{CocoEvalResult, IouType, evaluate};
pub use detector_eval::{CocoFigures, evaluate_detector};
pub use results::{Detection, ResultRecord, Results, ResultsMode};
pub use results_write::{predict_coco, prediction_records, write_results};
