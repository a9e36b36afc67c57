//! One call from a predictor (model file or engine) to COCOeval figures on a COCO split,
//! with ultralytics' validation settings (conf 0.001, iou 0.7, max_det 300, masks binarised
//! by truncation): what ed-demo reports for the model file and for each engine, so the
//! fp32 → INT8 accuracy delta is measured the same way.
use super::cocoeval::{CocoEvalResult, IouType, evaluate};
use super::results::Results;
use super::results_write::{predict_coco, write_results};
use crate::Result;
use crate::data::Coco;
use crate::models::yolov8::Detector;
use crate::models::yolov8::postprocess::{Binarize, NmsConfig};
use serde::Serialize;
use std::path::Path;

/// COCOeval stats[0] and stats[1] per IoU type (segm only for seg models).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct CocoFigures {
    pub bbox_ap50_95: f64,
    pub bbox_ap50: f64,
    pub segm_ap50_95: Option<f64>,
    pub segm_ap50: Option<f64>,
}

/// Predict every image of `gt` with `det` (set to validation settings here), write
/// `out_dir/predictions.json`, and evaluate it; the full COCOeval results come back too.
pub fn evaluate_detector(
    det: &mut dyn Detector,
    gt: &Coco,
    gt_name: &str,
    images: &Path,
    out_dir: &Path,
) -> Result<(CocoFigures, Vec<(IouType, CocoEvalResult)>)> {
    det.configure(NmsConfig::validation(), Binarize::Truncate);
    let records = predict_coco(&*det, gt, gt_name, images, 4)?;
    std::fs::create_dir_all(out_dir).map_err(|source| crate::Error::Io {
        path: out_dir.to_path_buf(),
        source,
    })?;
    let path = out_dir.join("predictions.json");
    write_results(&path, &records)?;
    let dt = Results::read(&path, gt)?;
    let mut figs = CocoFigures::default();
    let mut all = Vec::new();
    let types: &[IouType] = if det.has_masks() {
        &[IouType::Bbox, IouType::Segm]
    } else {
        &[IouType::Bbox]
    };
    for &ty in types {
        let r = evaluate(gt, &dt, ty)?;
        match ty {
            IouType::Bbox => (figs.bbox_ap50_95, figs.bbox_ap50) = (r.stats[0], r.stats[1]),
            IouType::Segm => {
                (figs.segm_ap50_95, figs.segm_ap50) = (Some(r.stats[0]), Some(r.stats[1]))
            }
        }
        all.push((ty, r));
    }
    Ok((figs, all))
}
