//! The IoU matrix of one (image, category) cell, as COCOeval's `computeIoU` gets it from
//! `maskUtils.iou(dt, gt, iscrowd)`: rows are the detections (score order), columns the
//! ground truth (file order). A crowd reference makes the union the detection's own area.
use crate::data::masks::Rle;
use crate::eval::results::Detection;
use crate::{Error, Result};

/// maskApi's `bbIou` on `[x, y, w, h]` boxes, row-major `[dt.len(), gt.len()]`: 0 unless
/// the boxes overlap with positive width and height.
pub fn box_iou(dt: &[[f64; 4]], gt: &[[f64; 4]], crowd: &[bool]) -> Vec<f64> {
    // One implementation of maskApi's bbIou for the crate (same operations and order).
    crate::eval::metrics::box_iou_coco(dt, gt, crowd)
}

/// `maskUtils.iou` on the cell's masks: maskApi's box gate (`bbIou` of the masks'
/// `toBbox` boxes > 0) computed once here, then [`Rle::iou`]'s run walk for the pairs that
/// pass it (pair by pair, so no mask is copied).
pub fn mask_iou(dts: &[&Detection], gts: &[Rle], crowd: &[bool]) -> Result<Vec<f64>> {
    let d: Vec<&Rle> = dts
        .iter()
        .map(|d| {
            d.mask
                .as_ref()
                .ok_or_else(|| Error::msg(format!("detection {} has no mask", d.id)))
        })
        .collect::<Result<_>>()?;
    let db: Vec<[f64; 4]> = d.iter().map(|m| m.to_bbox()).collect();
    let gb: Vec<[f64; 4]> = gts.iter().map(Rle::to_bbox).collect();
    let mut out = box_iou(&db, &gb, crowd);
    let g_n = gts.len();
    for (i, o) in out.iter_mut().enumerate() {
        if *o > 0.0 {
            let (di, gi) = (i / g_n, i % g_n);
            let v = Rle::iou(
                std::slice::from_ref(d[di]),
                std::slice::from_ref(&gts[gi]),
                &crowd[gi..gi + 1],
            )
            .map_err(|e| Error::msg(format!("mask IoU of detection {}: {e}", dts[di].id)))?;
            *o = v.first().copied().unwrap_or(0.0);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crowd_union_is_the_detection_area() {
        let d = [[0.0, 0.0, 10.0, 10.0]];
        let g = [[5.0, 0.0, 10.0, 10.0], [20.0, 0.0, 5.0, 5.0]];
        assert_eq!(box_iou(&d, &g, &[false, false]), vec![50.0 / 150.0, 0.0]);
        assert_eq!(box_iou(&d, &g, &[true, false]), vec![0.5, 0.0]);
        // Touching boxes (zero-width overlap) give 0.
        assert_eq!(box_iou(&d, &[[10.0, 0.0, 1.0, 1.0]], &[false]), vec![0.0]);
        assert!(box_iou(&[], &g, &[false, false]).is_empty());
    }
}
