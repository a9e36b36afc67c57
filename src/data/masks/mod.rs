//! Instance masks as pycocotools handles them, with the same results bit for bit:
//! [`Rle`] (maskApi's column-major run-length mask) from polygons, dense masks, COCO's
//! uncompressed and compressed RLE, and back; area, box, merge and IoU; and [`pack`] into
//! the bit-packed rows that `mask_iou` (CPU and CUDA) takes.
//!
//! Problems with the input are [`MaskError`] values; the caller, which knows the file and the
//! annotation, turns them into `crate::Error::Format` with [`MaskError::at`].
//!
//! ```
//! use edgedistill::data::masks::{Rle, pack};
//!
//! // A triangle in a 4×6 image (h = 4, w = 6), as pycocotools' annToRLE would draw it.
//! let tri = Rle::from_polygons(&[[0.0, 0.0, 5.0, 0.0, 0.0, 3.0]], 4, 6)?;
//! let square = Rle::from_counts(4, 6, vec![0, 2, 2, 2, 18])?; // 2×2 at the top left
//! let both = Rle::merge(&[tri.clone(), square.clone()], true)?; // intersection
//! assert_eq!(both.area(), square.area());
//! let text = tri.to_compressed(); // COCO's "counts" string
//! assert_eq!(Rle::from_compressed(text.as_bytes(), 4, 6)?, tri);
//! let iou = edgedistill::backend::cpu::mask_iou::mask_iou(
//!     &pack(&[tri.clone()], 4, 6)?, &pack(&[square.clone()], 4, 6)?, &[false])?;
//! assert_eq!(iou, Rle::iou(&[tri], &[square], &[false])?);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
mod compressed;
mod contour;
mod error;
mod packed;
mod polygon;
mod rle;

pub use contour::mask_to_polygons;
pub use error::MaskError;
pub use packed::pack;
pub use polygon::polygon_extent;
pub use rle::Rle;

/// Largest polygon coordinate magnitude accepted, in pixels. pycocotools' `(int)(5·v + .5)`
/// overflows near 4.3e8, and its walk of every boundary point would need gigabytes well
/// before that; anything this far outside an image is broken data.
pub const MAX_COORD: f64 = 1e8;
