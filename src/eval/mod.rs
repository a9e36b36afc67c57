//! Evaluation of detections and masks against ground truth: COCOeval-exact mAP
//! ([`cocoeval`]) on detections loaded from a COCO results file ([`results`]).
pub mod cocoeval;
pub mod results;

pub use cocoeval::{CocoEvalResult, IouType, evaluate};
pub use results::{Detection, ResultRecord, Results, ResultsMode};
