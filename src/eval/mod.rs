//! Evaluation: COCOeval-exact mAP, mask IoU, P/R/F1, and the HTML report.
pub mod plot;
pub mod report;
