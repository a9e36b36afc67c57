//! Step 1 of the pipeline: datasets in (COCO JSON, YOLO txt), masks (polygon/RLE raster,
//! bit-packed), images, per-model preprocessing, augmentation and the training loader.
//! Errors name the file, the record (annotation id, line) and the problem.
pub mod augment;
pub mod classes;
pub mod coco;
pub mod convert;
pub mod dataset;
pub mod image;
pub mod loader;
pub mod masks;
pub mod preprocess;
pub mod problem;
pub mod progress;
pub mod sample;
pub mod seg_mask;
pub mod split;
pub mod synth;
pub mod validate;
pub mod yolo_txt;

pub use classes::ClassMap;
pub use coco::{Annotation, Category, Coco, Image, RleCounts, Segmentation};
pub use problem::{Problem, RecordKind};
pub use sample::{Instance, Sample};
