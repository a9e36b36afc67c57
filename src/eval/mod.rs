//! Evaluation: COCOeval-exact mAP, mask and box IoU, ultralytics-style P/R/F1 and mAP,
//! confusion matrix, per-image records, and the self-contained HTML report.
pub mod metrics;
pub mod plot;
pub mod report;
