//! Step 1 of the pipeline: datasets in (COCO JSON, YOLO txt), masks (polygon/RLE raster,
//! bit-packed), images, per-model preprocessing, augmentation and the training loader.
//! Errors name the file, the record (annotation id, line) and the problem.
pub mod coco;
pub mod convert;
pub mod image_header;
pub mod problem;
pub mod progress;
pub mod sample;
pub mod yolo_txt;

pub use coco::{Annotation, Category, Coco, Image, RleCounts, Segmentation};
pub use problem::{Problem, RecordKind};
pub use sample::{Instance, Sample};
