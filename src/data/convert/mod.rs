//! Dataset conversion between YOLO label text and COCO JSON (the library side of
//! `ed-convert`).
//!
//! **YOLO → COCO** ([`yolo_to_coco`]). Images are found under the images folder (and its
//! subfolders; symlinked folders are not followed, and said so) by extension `jpg`, `jpeg`,
//! `png` or `bmp` in any letter case; labels are the `.txt` files under the labels folder.
//! An image and a label file belong together when their paths relative to their folders
//! are equal without the extension: `train/a.JPG` ↔ `train/a.txt`. Stems are compared
//! exactly (Linux file names are case-sensitive), extensions case-insensitively. Two
//! images with one stem (`a.jpg` and `a.png`) are ambiguous: both are left out and a
//! problem names them. An image without a label file is an image with no objects.
//! - `file_name` = the image path relative to the images folder (`/`-separated);
//!   `width`/`height` from the file header, as displayed (EXIF orientation applied);
//! - image ids 1..N in sorted `file_name` order, annotation ids 1..M in image then line
//!   order, so the same input always gives byte-identical JSON, whatever the thread count;
//! - category ids 1..n in names order (`category_id` = YOLO class + 1), no supercategory;
//! - a detection line gives `bbox` = `[(cx − w/2)·W, (cy − h/2)·H, w·W, h·H]`, `area` =
//!   bbox area, no `segmentation`;
//! - a segmentation line gives one polygon in pixels, `bbox` = its tight extent, and no
//!   `area`: COCO's area is the rasterised mask's pixel count (pycocotools), not the
//!   polygon's geometric area, and `ed-validate` fills it from the mask;
//! - `iscrowd` 0 everywhere.
//!
//! **COCO → YOLO** ([`coco_to_yolo`]). Class index = position of the category when
//! categories are sorted by id; the names file lists them in that order. One label file per
//! image at `file_name` with the extension replaced by `.txt` (empty when the image has no
//! objects). Per annotation:
//! - polygons → a segmentation line; several parts are joined into one polygon by
//!   zero-width bridges between the parts' first points, walked there and back, so the
//!   filled area is unchanged (ultralytics' `merge_multi_segment` bridges nearest points
//!   instead; the rasterised mask is the same);
//! - an RLE mask → its box as a detection line (tracing the mask's outline is not done
//!   here), counted in the summary as "RLE masks written as boxes";
//! - a box only → a detection line;
//! - `iscrowd` 1 → skipped and counted (YOLO has no crowd regions; ultralytics skips them
//!   too);
//! - normalised coordinates outside [0, 1] are clipped (our reader rejects them) and the
//!   annotations so changed are counted.
//!
//! Nothing is dropped silently: every record not converted is a [`ConvertProblem`] naming
//! its file and record (`labels/a.txt:12`, `coco.json: annotation 17`), and the reports
//! count everything else that was changed or skipped.
mod coco_to_yolo;
mod yolo_to_coco;

pub use coco_to_yolo::{
    CocoToYoloReport, LabelFile, coco_to_yolo, join_parts, plan_coco_to_yolo, write_yolo,
};
pub use yolo_to_coco::{YoloToCocoReport, label_to_annotation, yolo_to_coco};

use super::problem::{Problem, RecordKind};
use std::fmt;
use std::path::{Path, PathBuf};

/// Image extensions we convert (compared case-insensitively).
pub const IMAGE_EXTENSIONS: [&str; 4] = ["jpg", "jpeg", "png", "bmp"];

/// A problem with the file it was found in.
#[derive(Clone, Debug, PartialEq)]
pub struct ConvertProblem {
    pub path: PathBuf,
    pub problem: Problem,
}

impl ConvertProblem {
    pub(crate) fn file(path: &Path, code: &'static str, msg: String) -> Self {
        ConvertProblem {
            path: path.to_path_buf(),
            problem: Problem::new(RecordKind::File, None, code, msg),
        }
    }
}

impl fmt::Display for ConvertProblem {
    /// `labels/a.txt:12: msg`, `data.json: annotation 7: msg`, `images/b.jpg: msg`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = &self.problem;
        let path = self.path.display();
        match (p.kind, p.id) {
            (RecordKind::Line, Some(line)) => write!(f, "{path}:{line}: {}", p.msg),
            (RecordKind::File, _) => write!(f, "{path}: {}", p.msg),
            _ => write!(f, "{path}: {}: {}", p.record(), p.msg),
        }
    }
}
