//! The unit that images, augmentation and the loader pass around: one decoded RGB image
//! with its object instances in pixel coordinates of that image.
use image::{GrayImage, RgbImage};

/// One object: class index (0-based, contiguous; not the COCO category id), box and
/// optional mask.
#[derive(Clone, Debug, PartialEq)]
pub struct Instance {
    pub class: usize,
    /// `[x0, y0, x1, y1]` in pixels of the owning image (continuous coordinates: a box
    /// covering pixel columns 0..w spans x 0.0..w as f32).
    pub bbox: [f32; 4],
    /// Same size as the owning image; pixel value 1 inside the object, 0 outside.
    pub mask: Option<GrayImage>,
    /// COCO `iscrowd`: kept so evaluation and the assigner can ignore crowd regions.
    pub crowd: bool,
}

/// A decoded image (always RGB, EXIF orientation applied) and its instances.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// Image id in the source dataset.
    pub id: u64,
    pub image: RgbImage,
    pub instances: Vec<Instance>,
}

impl Sample {
    pub fn width(&self) -> u32 {
        self.image.width()
    }
    pub fn height(&self) -> u32 {
        self.image.height()
    }
    /// True when every instance carries a mask (and there is at least one instance).
    pub fn has_masks(&self) -> bool {
        !self.instances.is_empty() && self.instances.iter().all(|i| i.mask.is_some())
    }
}
