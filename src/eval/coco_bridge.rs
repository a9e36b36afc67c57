//! COCO ground truth + a COCO results file → the per-image inputs of the ultralytics-style
//! metrics. As ultralytics' COCO conversion: crowd annotations are left out, classes are
//! the categories in ascending id order, boxes become `[x1, y1, x2, y2]` pixels.
use super::metrics::{Detection, GtObject, ImageEval};
use super::results::Results;
use crate::data::classes::ClassMap;
use crate::data::coco::Coco;
use crate::data::seg_mask::segmentation_rle;
use crate::{Error, Result};
use std::collections::HashMap;

fn xyxy(b: [f64; 4]) -> [f64; 4] {
    [b[0], b[1], b[0] + b[2], b[1] + b[3]]
}

/// One [`ImageEval`] per ground-truth image (ascending id), named by `file_name`, and the
/// class map. `masks`: take every object's mask (then every object must have one).
pub fn image_evals(
    gt: &Coco,
    dt: &Results,
    source: &str,
    masks: bool,
) -> Result<(Vec<ImageEval>, ClassMap)> {
    let classes = ClassMap::from_coco(gt);
    let mut images: Vec<_> = gt.images.iter().collect();
    images.sort_by_key(|im| im.id);
    let index: HashMap<u64, usize> = images
        .iter()
        .enumerate()
        .map(|(i, im)| (im.id, i))
        .collect();
    let mut out: Vec<ImageEval> = images
        .iter()
        .map(|im| ImageEval {
            name: if im.file_name.is_empty() {
                format!("image {}", im.id)
            } else {
                im.file_name.clone()
            },
            gt: Vec::new(),
            pred: Vec::new(),
        })
        .collect();
    let bad = |record: String, msg: String| Error::Format {
        path: source.into(),
        record,
        msg,
    };
    for a in gt.annotations.iter().filter(|a| !a.is_crowd()) {
        let rec = || format!("annotation {}", a.id);
        let i = *index.get(&a.image_id).ok_or_else(|| {
            bad(
                rec(),
                format!("image_id {} is not an image of the file", a.image_id),
            )
        })?;
        let im = images[i];
        let class = classes.index(a.category_id).ok_or_else(|| {
            bad(
                rec(),
                format!("category_id {} is not a category", a.category_id),
            )
        })?;
        let (h, w) = (im.height.unwrap_or(0), im.width.unwrap_or(0));
        let mask = match (masks, a.mask()) {
            (false, _) => None,
            (true, Some(seg)) => {
                Some(segmentation_rle(seg, h, w).map_err(|e| bad(rec(), e.to_string()))?)
            }
            (true, None) => {
                return Err(bad(
                    rec(),
                    "has no segmentation, but masks are evaluated".into(),
                ));
            }
        };
        let bbox = match (a.bbox.as_deref(), &mask) {
            (Some(&[x, y, bw, bh]), _) => [x, y, bw, bh],
            (_, Some(m)) => m.to_bbox(),
            _ => {
                return Err(bad(
                    rec(),
                    "has no [x, y, w, h] bbox; run ed-validate first".into(),
                ));
            }
        };
        out[i].gt.push(GtObject {
            bbox: xyxy(bbox),
            class,
            mask,
        });
    }
    for d in &dt.detections {
        let rec = || format!("results[{}] (image_id {})", d.id - 1, d.image_id);
        let i = *index
            .get(&d.image_id)
            .ok_or_else(|| bad(rec(), "image_id is not in the ground truth".into()))?;
        let class = classes.index(d.category_id).ok_or_else(|| {
            bad(
                rec(),
                format!("category_id {} is not in the ground truth", d.category_id),
            )
        })?;
        let mask =
            if masks {
                Some(d.mask.clone().ok_or_else(|| {
                    bad(rec(), "has no segmentation, but masks are evaluated".into())
                })?)
            } else {
                None
            };
        let bbox = d
            .bbox
            .or_else(|| mask.as_ref().map(|m| m.to_bbox()))
            .ok_or_else(|| bad(rec(), "has no bbox".into()))?;
        out[i].pred.push(Detection {
            bbox: xyxy(bbox),
            class,
            score: d.score,
            mask,
        });
    }
    Ok((out, classes))
}
