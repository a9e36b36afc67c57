//! A validated COCO dataset bound to its image folder: decodes one image with its
//! instances (class index, xyxy box, mask) on demand. Built after `validate`, so records
//! are known-good; what can still go wrong is the image file, and that error names it.
use super::classes::ClassMap;
use super::coco::{Coco, Segmentation};
use super::image::load_rgb;
use super::sample::{Instance, Sample};
use super::seg_mask::segmentation_rle;
use crate::{Error, Result};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug)]
struct Ann {
    class: usize,
    /// COCO `[x, y, w, h]`.
    bbox: [f64; 4],
    crowd: bool,
    seg: Option<Segmentation>,
}

#[derive(Clone, Debug)]
struct Item {
    id: u64,
    path: PathBuf,
    width: u32,
    height: u32,
    anns: Vec<Ann>,
}

/// Images and their annotations, in image-id order.
#[derive(Clone, Debug)]
pub struct Dataset {
    pub classes: ClassMap,
    /// Every annotation has a mask, so samples carry masks (the validation report's
    /// `has_masks`); otherwise samples are boxes only.
    pub with_masks: bool,
    items: Vec<Item>,
    source: String,
}

impl Dataset {
    /// From a validated COCO file (`validate` output or a split file) and the folder its
    /// `file_name`s are relative to. `source` names the COCO file in errors.
    pub fn from_coco(coco: &Coco, images_dir: &Path, source: &str) -> Result<Self> {
        let classes = ClassMap::from_coco(coco);
        let with_masks =
            !coco.annotations.is_empty() && coco.annotations.iter().all(|a| a.mask().is_some());
        let mut index = HashMap::with_capacity(coco.images.len());
        let mut items = Vec::with_capacity(coco.images.len());
        let mut images: Vec<_> = coco.images.iter().collect();
        images.sort_by_key(|im| im.id);
        for im in images {
            let (Some(width), Some(height)) = (im.width, im.height) else {
                return Err(bad(
                    source,
                    format!("image {}", im.id),
                    "has no width/height; run ed-validate first",
                ));
            };
            index.insert(im.id, items.len());
            items.push(Item {
                id: im.id,
                path: images_dir.join(&im.file_name),
                width,
                height,
                anns: Vec::new(),
            });
        }
        for a in &coco.annotations {
            let rec = || format!("annotation {}", a.id);
            let item = index
                .get(&a.image_id)
                .and_then(|&i| items.get_mut(i))
                .ok_or_else(|| {
                    bad(
                        source,
                        rec(),
                        "image_id is not an image of the file; run ed-validate first",
                    )
                })?;
            let class = classes.index(a.category_id).ok_or_else(|| {
                bad(
                    source,
                    rec(),
                    "category_id is not a category of the file; run ed-validate first",
                )
            })?;
            let bbox = match a.bbox.as_deref() {
                Some(&[x, y, w, h]) => [x, y, w, h],
                _ => {
                    return Err(bad(
                        source,
                        rec(),
                        "has no [x, y, w, h] bbox; run ed-validate first",
                    ));
                }
            };
            item.anns.push(Ann {
                class,
                bbox,
                crowd: a.is_crowd(),
                seg: if with_masks { a.mask().cloned() } else { None },
            });
        }
        Ok(Dataset {
            classes,
            with_masks,
            items,
            source: source.into(),
        })
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
    /// Image id of the `index`-th image.
    pub fn image_id(&self, index: usize) -> Option<u64> {
        self.items.get(index).map(|it| it.id)
    }

    /// Decodes image `index` with its instances at the original size.
    pub fn load(&self, index: usize) -> Result<Sample> {
        let it = self.item(index)?;
        let image = load_rgb(&it.path)?;
        if image.dimensions() != (it.width, it.height) {
            return Err(bad(
                &self.source,
                format!("image {}", it.id),
                &format!(
                    "file {} is {}×{} but the annotations say {}×{}",
                    it.path.display(),
                    image.width(),
                    image.height(),
                    it.width,
                    it.height
                ),
            ));
        }
        Ok(Sample {
            id: it.id,
            image,
            instances: self.instances_of(it)?,
        })
    }

    /// Image `index`'s id, (width, height) and instances, without decoding the image
    /// (for work that needs only the annotations, such as training targets).
    pub fn load_annotations(&self, index: usize) -> Result<(u64, (u32, u32), Vec<Instance>)> {
        let it = self.item(index)?;
        Ok((it.id, (it.width, it.height), self.instances_of(it)?))
    }

    fn item(&self, index: usize) -> Result<&Item> {
        self.items.get(index).ok_or_else(|| {
            Error::msg(format!(
                "dataset index {index} out of range (len {})",
                self.len()
            ))
        })
    }

    fn instances_of(&self, it: &Item) -> Result<Vec<Instance>> {
        let mut instances = Vec::with_capacity(it.anns.len());
        for a in &it.anns {
            let mask = match &a.seg {
                Some(seg) => Some(
                    segmentation_rle(seg, it.height, it.width)
                        .map_err(|e| bad(&self.source, format!("image {}", it.id), &e.to_string()))?
                        .to_gray(),
                ),
                None => None,
            };
            let [x, y, w, h] = a.bbox;
            instances.push(Instance {
                class: a.class,
                bbox: [x as f32, y as f32, (x + w) as f32, (y + h) as f32],
                mask,
                crowd: a.crowd,
            });
        }
        Ok(instances)
    }
}

fn bad(path: &str, record: String, msg: &str) -> Error {
    Error::Format {
        path: path.into(),
        record,
        msg: msg.into(),
    }
}
