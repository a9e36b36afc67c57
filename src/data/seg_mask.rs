//! A COCO `segmentation` as an RLE mask, pycocotools' `annToRLE`: polygons are rasterised
//! at the image size and their parts merged; plain run lists become RLE; compressed
//! strings are decoded. The RLE's own `size` must match the image.
use super::coco::{RleCounts, Segmentation};
use super::masks::{MaskError, Rle};

/// What went wrong turning a segmentation into a mask.
#[derive(Clone, Debug, PartialEq)]
pub enum SegError {
    Mask(MaskError),
    /// An RLE whose `size` is not the image's `[height, width]`.
    SizeMismatch {
        rle: [u32; 2],
        image: [u32; 2],
    },
    /// A plain run count too large for maskApi's 32-bit counts.
    CountTooLarge {
        index: usize,
        value: u64,
    },
}

impl std::fmt::Display for SegError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SegError::Mask(e) => write!(f, "{e}"),
            SegError::SizeMismatch { rle, image } => write!(
                f,
                "RLE size [{}, {}] does not match the image's [height, width] [{}, {}]",
                rle[0], rle[1], image[0], image[1]
            ),
            SegError::CountTooLarge { index, value } => {
                write!(f, "RLE count {index} is {value}, more than 2^32 - 1")
            }
        }
    }
}

impl From<MaskError> for SegError {
    fn from(e: MaskError) -> Self {
        SegError::Mask(e)
    }
}

/// The mask of `seg` on an image of `h × w` pixels.
pub fn segmentation_rle(seg: &Segmentation, h: u32, w: u32) -> Result<Rle, SegError> {
    match seg {
        Segmentation::Polygons(parts) => Ok(Rle::from_polygons(parts, h, w)?),
        Segmentation::Rle { size, counts } => {
            if *size != [h, w] {
                return Err(SegError::SizeMismatch {
                    rle: *size,
                    image: [h, w],
                });
            }
            match counts {
                RleCounts::Compressed(s) => Ok(Rle::from_compressed(s.as_bytes(), h, w)?),
                RleCounts::Uncompressed(c) => {
                    let counts = c
                        .iter()
                        .enumerate()
                        .map(|(index, &value)| {
                            u32::try_from(value)
                                .map_err(|_| SegError::CountTooLarge { index, value })
                        })
                        .collect::<Result<Vec<u32>, _>>()?;
                    Ok(Rle::from_counts(h, w, counts)?)
                }
            }
        }
    }
}

/// The box a COCO file carries for this segmentation, `[x, y, w, h]`: the tight float
/// extent of the polygon vertices (COCO's convention for polygons), or pycocotools'
/// `toBbox` of the mask for RLE.
pub fn segmentation_bbox(seg: &Segmentation, rle: &Rle) -> [f64; 4] {
    match seg {
        Segmentation::Polygons(parts) => super::masks::polygon_extent(parts).unwrap_or([0.0; 4]),
        Segmentation::Rle { .. } => rle.to_bbox(),
    }
}
