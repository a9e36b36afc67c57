//! COCOeval's `_prepare`: the ground truth and detections grouped per (category, image),
//! in file order within a group, with the fields the matching reads. Where pycocotools
//! would crash (a missing `area`, `bbox` or `segmentation`) or silently drop a record
//! (an annotation on an unknown image or category), this is an error naming the record.
use super::params::IouType;
use crate::data::coco::{Annotation, Coco};
use crate::eval::results::{Detection, Results};
use crate::{Error, Result};
use std::collections::{HashMap, HashSet};

/// What errors about the ground truth name as the file.
pub(crate) const GT_NAME: &str = "ground truth";

/// The annotations and detections of one (category, image) pair, file order.
pub(crate) struct Cell<'a> {
    /// Index into the sorted category ids.
    pub k: usize,
    pub image_id: u64,
    pub category_id: u64,
    /// `[height, width]` of the image when the ground truth gives it.
    pub size: Option<[u32; 2]>,
    pub gts: Vec<&'a Annotation>,
    pub dts: Vec<&'a Detection>,
}

/// Sorted unique image and category ids (`params.imgIds` / `params.catIds`) and the
/// non-empty cells, sorted by (category, image).
pub(crate) struct Prepared<'a> {
    pub img_ids: Vec<u64>,
    pub cat_ids: Vec<u64>,
    pub cells: Vec<Cell<'a>>,
}

fn gt_err(a: &Annotation, msg: String) -> Error {
    Error::Format {
        path: GT_NAME.into(),
        record: format!("annotation {} (image_id {})", a.id, a.image_id),
        msg,
    }
}

pub(crate) fn prepare<'a>(gt: &'a Coco, dt: &'a Results, iou: IouType) -> Result<Prepared<'a>> {
    let mut sizes: HashMap<u64, Option<[u32; 2]>> = HashMap::with_capacity(gt.images.len());
    for im in &gt.images {
        let size = im.height.zip(im.width).map(|(h, w)| [h, w]);
        if sizes.insert(im.id, size).is_some() {
            return Err(Error::Format {
                path: GT_NAME.into(),
                record: format!("image {}", im.id),
                msg: "duplicate image id".into(),
            });
        }
    }
    let mut img_ids: Vec<u64> = sizes.keys().copied().collect();
    img_ids.sort_unstable();
    let mut cat_ids: Vec<u64> = gt.categories.iter().map(|c| c.id).collect();
    cat_ids.sort_unstable();
    cat_ids.dedup();
    let img_index: HashMap<u64, usize> = img_ids.iter().enumerate().map(|(i, &v)| (v, i)).collect();
    let cat_index: HashMap<u64, usize> = cat_ids.iter().enumerate().map(|(i, &v)| (v, i)).collect();

    // (k, i, gt annotation or detection), grouped by a stable sort so groups keep file order.
    enum Item<'a> {
        Gt(&'a Annotation),
        Dt(&'a Detection),
    }
    let mut items: Vec<(usize, usize, Item<'a>)> =
        Vec::with_capacity(gt.annotations.len() + dt.detections.len());
    let mut ann_ids = HashSet::with_capacity(gt.annotations.len());
    for a in &gt.annotations {
        if !ann_ids.insert(a.id) {
            return Err(gt_err(
                a,
                "duplicate annotation id (pycocotools would evaluate another annotation in its \
                 place)"
                    .into(),
            ));
        }
        let i = *img_index
            .get(&a.image_id)
            .ok_or_else(|| gt_err(a, format!("image_id {} is not in \"images\"", a.image_id)))?;
        let k = *cat_index.get(&a.category_id).ok_or_else(|| {
            gt_err(
                a,
                format!("category_id {} is not in \"categories\"", a.category_id),
            )
        })?;
        match a.area {
            Some(v) if v.is_finite() => {}
            Some(v) => return Err(gt_err(a, format!("area is {v}"))),
            None => {
                return Err(gt_err(
                    a,
                    "has no area (COCOeval's area ranges read it; ed-validate fills it)".into(),
                ));
            }
        }
        match iou {
            IouType::Bbox => {
                gt_box(a)?;
            }
            IouType::Segm => {
                if a.mask().is_none() {
                    return Err(gt_err(
                        a,
                        "has no segmentation, which segm evaluation needs".into(),
                    ));
                }
                if sizes[&a.image_id].is_none() {
                    return Err(gt_err(
                        a,
                        format!(
                            "image {} has no width/height, needed to rasterise the segmentation",
                            a.image_id
                        ),
                    ));
                }
            }
        }
        items.push((k, i, Item::Gt(a)));
    }
    if iou == IouType::Segm {
        dt.masks_for("segm evaluation")?;
    }
    for d in &dt.detections {
        // Results::from_records checked both ids against a ground truth; this one may differ.
        let (Some(&i), Some(&k)) = (img_index.get(&d.image_id), cat_index.get(&d.category_id))
        else {
            return Err(Error::Format {
                path: dt.source.clone(),
                record: format!("results[{}] (image_id {})", d.id - 1, d.image_id),
                msg: format!(
                    "image_id {} or category_id {} is not in the ground truth being evaluated",
                    d.image_id, d.category_id
                ),
            });
        };
        if iou == IouType::Bbox && d.bbox.is_none() {
            return Err(Error::Format {
                path: dt.source.clone(),
                record: format!("results[{}] (image_id {})", d.id - 1, d.image_id),
                msg: "has no bbox, which bbox evaluation needs".into(),
            });
        }
        items.push((k, i, Item::Dt(d)));
    }
    items.sort_by_key(|&(k, i, _)| (k, i));

    let mut cells: Vec<Cell<'a>> = Vec::new();
    for (k, i, item) in items {
        let fresh = cells
            .last()
            .is_none_or(|c| c.k != k || c.image_id != img_ids[i]);
        if fresh {
            cells.push(Cell {
                k,
                image_id: img_ids[i],
                category_id: cat_ids[k],
                size: sizes[&img_ids[i]],
                gts: Vec::new(),
                dts: Vec::new(),
            });
        }
        let c = cells.last_mut().expect("pushed above");
        match item {
            Item::Gt(a) => c.gts.push(a),
            Item::Dt(d) => c.dts.push(d),
        }
    }
    Ok(Prepared {
        img_ids,
        cat_ids,
        cells,
    })
}

/// The annotation's `[x, y, w, h]`, or an error naming it.
pub(crate) fn gt_box(a: &Annotation) -> Result<[f64; 4]> {
    let b = a
        .bbox
        .as_deref()
        .ok_or_else(|| gt_err(a, "has no bbox, which bbox evaluation needs".into()))?;
    let b: [f64; 4] = b.try_into().map_err(|_| {
        gt_err(
            a,
            format!("bbox has {} numbers, expected [x, y, w, h]", b.len()),
        )
    })?;
    Ok(b)
}

/// The annotation's mask at the cell's image size, or an error naming it.
pub(crate) fn gt_mask(a: &Annotation, size: Option<[u32; 2]>) -> Result<crate::data::masks::Rle> {
    let [h, w] = size.ok_or_else(|| gt_err(a, "image has no width/height".into()))?;
    let seg = a
        .mask()
        .ok_or_else(|| gt_err(a, "has no segmentation".into()))?;
    crate::data::seg_mask::segmentation_rle(seg, h, w)
        .map_err(|e| gt_err(a, format!("segmentation: {e}")))
}
