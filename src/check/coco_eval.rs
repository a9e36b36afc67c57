//! The `coco-eval` kind: the fixture's `gt` (COCO JSON) and `dt` (results JSON) metadata
//! evaluated with our COCOeval and compared with pycocotools' outputs:
//! - `outputs.bbox_stats`, `outputs.segm_stats`: the 12 `COCOeval.stats`;
//! - `outputs.mask_iou`: `maskUtils.iou(dets, gts, iscrowd)` on the image named by the
//!   `config` key `mask_iou_image_id`, detections (results order) × ground truth
//!   (annotation order), through the bit-packed CPU kernel.
//!
//! Any other `outputs.*` tensor is a failed line (we cannot produce it).
use super::compare::CheckLine;
use super::fixture::Fixture;
use crate::backend::cpu::mask_iou::{PackedMasks, mask_iou};
use crate::data::coco::Coco;
use crate::data::masks::{Rle, pack};
use crate::data::seg_mask::segmentation_rle;
use crate::eval::cocoeval::{IouType, evaluate};
use crate::eval::results::Results;
use crate::{Error, Result, Tensor};

/// One line per `outputs.*` tensor of the fixture.
pub fn check(fx: &Fixture) -> Result<Vec<CheckLine>> {
    let gt_json = meta(fx, "gt")?;
    let (gt, problems) = Coco::from_slice(gt_json.as_bytes(), &format!("{} gt", fx.path()))?;
    if let Some(p) = problems.into_iter().next() {
        return Err(p.into_error(&format!("{} gt", fx.path())));
    }
    let dt = Results::from_slice(
        meta(fx, "dt")?.as_bytes(),
        &format!("{} dt", fx.path()),
        &gt,
    )?;
    let mut lines = Vec::new();
    for name in fx.names_with_prefix("outputs.") {
        let ours = match name.as_str() {
            "outputs.bbox_stats" => stats(&gt, &dt, IouType::Bbox),
            "outputs.segm_stats" => stats(&gt, &dt, IouType::Segm),
            "outputs.mask_iou" => image_mask_iou(fx, &gt, &dt),
            _ => Err(Error::msg(
                "no producer for this output (coco-eval gives bbox_stats, segm_stats, mask_iou)",
            )),
        };
        lines.push(match ours {
            Ok(t) => fx.compare(&name, &t),
            Err(e) => {
                let shape = fx.tensor(&name).map(|t| t.shape().clone());
                CheckLine::failed(&name, shape.unwrap_or_else(|_| [0].into()), e.to_string())
            }
        });
    }
    Ok(lines)
}

fn meta<'a>(fx: &'a Fixture, key: &str) -> Result<&'a str> {
    fx.meta(key).ok_or_else(|| Error::Format {
        path: fx.path().to_string(),
        record: "metadata".into(),
        msg: format!("no {key:?} entry (a coco-eval fixture needs gt and dt)"),
    })
}

fn stats(gt: &Coco, dt: &Results, iou: IouType) -> Result<Tensor> {
    Tensor::from_vec(evaluate(gt, dt, iou)?.stats.to_vec(), [12])
}

/// The IoU matrix of one image's detection masks with its ground-truth masks.
fn image_mask_iou(fx: &Fixture, gt: &Coco, dt: &Results) -> Result<Tensor> {
    let id = fx
        .config()?
        .get("mask_iou_image_id")
        .and_then(|v| v.as_u64())
        .ok_or_else(|| Error::Format {
            path: fx.path().to_string(),
            record: "metadata \"config\"".into(),
            msg: "no integer \"mask_iou_image_id\", which outputs.mask_iou needs".into(),
        })?;
    let im = gt
        .images
        .iter()
        .find(|im| im.id == id)
        .ok_or_else(|| Error::msg(format!("mask_iou_image_id {id} is not a gt image")))?;
    let (h, w) = im
        .height
        .zip(im.width)
        .ok_or_else(|| Error::msg(format!("gt image {id} has no width/height")))?;
    let mut gts: Vec<Rle> = Vec::new();
    let mut crowd = Vec::new();
    for a in gt.annotations.iter().filter(|a| a.image_id == id) {
        let seg = a
            .mask()
            .ok_or_else(|| Error::msg(format!("gt annotation {} has no segmentation", a.id)))?;
        gts.push(
            segmentation_rle(seg, h, w)
                .map_err(|e| Error::msg(format!("gt annotation {}: {e}", a.id)))?,
        );
        crowd.push(a.is_crowd());
    }
    dt.masks_for("outputs.mask_iou")?;
    let dts: Vec<Rle> = (dt.detections.iter())
        .filter(|d| d.image_id == id)
        .filter_map(|d| d.mask.clone())
        .collect();
    // maskUtils.iou answers [] (shape [0]) when either side is empty.
    if dts.is_empty() || gts.is_empty() {
        return Tensor::from_vec(Vec::<f64>::new(), [0]);
    }
    let packed = |r: &[Rle]| -> Result<PackedMasks> {
        pack(r, h, w).map_err(|e| Error::msg(format!("packing masks: {e}")))
    };
    let iou = mask_iou(&packed(&dts)?, &packed(&gts)?, &crowd)?;
    Tensor::from_vec(iou, [dts.len(), gts.len()])
}
