//! Step 1 of the pipeline: datasets in (COCO JSON, YOLO txt), masks (polygon/RLE raster,
//! bit-packed), images, per-model preprocessing, augmentation and the training loader.
//! Errors name the file, the record (annotation id, line) and the problem.
pub mod image;
pub mod preprocess;
pub mod sample;

pub use sample::{Instance, Sample};
