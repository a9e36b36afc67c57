//! Evaluation: COCOeval-exact mAP, mask and box IoU, ultralytics-style P/R/F1 and mAP,
//! confusion matrix, per-image records, reports.
pub mod metrics;
