//! Ultralytics-style detection and segmentation metrics, reproducing ultralytics 8.4.190's
//! validator (tests/eval_metrics.rs checks them against its own functions), plus IoU
//! matrices and per-image records.
//!
//! - [`box_iou`]: box IoU matrices (torchvision f64, ultralytics f32-exact, pycocotools
//!   xywh with crowd); [`mask_iou`]: mask IoU on the CPU or the CUDA kernel.
//! - [`matching`]: ultralytics' greedy prediction-to-object matching at IoU 0.50:0.95.
//! - [`ap`]: `ap_per_class`: AP per class, P/R/F1 at the max-F1 confidence, mAP50,
//!   mAP50-95, the PR and F1-confidence curves (plain vectors for the report).
//! - [`confusion`]: the confusion matrix with background row and column.
//! - [`per_image`]: per-image records (counts, mean IoU, mean confidence, recall, Dice, loss).
//! - [`evaluate`]: all of it over a dataset of [`ImageEval`]s.
//!
//! ```
//! use edgedistill::eval::metrics::{evaluate, Detection, EvalOptions, GtObject, ImageEval};
//!
//! let img = ImageEval {
//!     name: "a.jpg".into(),
//!     gt: vec![GtObject { bbox: [0.0, 0.0, 10.0, 10.0], class: 0, mask: None }],
//!     pred: vec![
//!         Detection { bbox: [0.0, 0.0, 10.0, 9.0], class: 0, score: 0.9, mask: None },
//!         Detection { bbox: [20.0, 20.0, 30.0, 30.0], class: 1, score: 0.8, mask: None },
//!     ],
//! };
//! let ev = evaluate(&[img], 2, &EvalOptions::default())?;
//! assert_eq!(ev.boxes.classes, vec![0]); // only classes with ground truth are scored
//! // IoU 0.9: a hit up to the 0.90 threshold; 101-point AP of a perfect class is 0.995
//! assert!((ev.boxes.ap[0][0] - 0.995).abs() < 1e-12 && ev.boxes.ap[0][9] == 0.0);
//! assert_eq!(ev.confusion.get(0, 0), 1); // [predicted][true]
//! assert_eq!(ev.confusion.get(1, 2), 1); // class 1 on background
//! assert_eq!(ev.per_image[0].boxes.recall, 1.0);
//! # Ok::<(), edgedistill::Error>(())
//! ```
pub mod ap;
pub mod box_iou;
pub mod confusion;
pub mod evaluate;
pub mod mask_iou;
pub mod matching;
pub mod numpy;
pub mod per_image;
pub mod types;

pub use ap::{Curves, DetectionMetrics, N_IOU, ap_per_class, compute_ap};
pub use box_iou::{box_iou, box_iou_coco, box_iou_ultralytics};
pub use confusion::{ConfusionMatrix, ConfusionOptions};
pub use evaluate::{EvalOptions, Evaluation, ImageMatch, evaluate, match_image, per_image};
pub use mask_iou::{MaskIouBackend, mask_iou, mask_iou_rle};
pub use matching::{IOU_THRESHOLDS, greedy_match, match_predictions};
pub use per_image::{ImageScores, MaskScores, PerImage, write_jsonl};
pub use types::{Detection, GtObject, ImageEval, masks_present};
