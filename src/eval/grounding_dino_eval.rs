//! A Grounding DINO teacher over a COCO split: every image prompted with the split's class
//! names ("a. b. c."), one detection per query (its best class, scored by the max sigmoid
//! over the class's tokens) above the thresholds, as COCO results records for COCOeval.
use super::results::ResultRecord;
use crate::Result;
use crate::data::Coco;
use crate::data::classes::ClassMap;
use crate::data::image::load_rgb;
use crate::data::preprocess::grounding_dino::GroundingDinoResize;
use crate::data::progress::Progress;
use crate::models::grounding_dino::{
    ClassPrompt, GdDetection, GroundingDino, Inputs, Thresholds, detections,
};
use crate::nn::Module;
use std::path::Path;

pub fn predict_grounding_dino(
    model: &GroundingDino,
    prompt: &ClassPrompt,
    gt: &Coco,
    images: &Path,
    resize: &GroundingDinoResize,
    th: Thresholds,
) -> Result<Vec<ResultRecord>> {
    let classes = ClassMap::from_coco(gt);
    let (ids, mask, types) = (
        prompt.input_ids()?,
        prompt.attention_mask()?,
        prompt.token_type_ids()?,
    );
    let mut imgs: Vec<_> = gt.images.iter().collect();
    imgs.sort_by_key(|im| im.id);
    let bar = Progress::new("grounding dino", imgs.len() as u64);
    let _g = crate::no_grad();
    model.eval();
    let mut records = Vec::new();
    for im in imgs {
        let path = images.join(&im.file_name);
        let img = load_rgb(&path)
            .map_err(|e| e.context(format!("image {} ({})", im.id, path.display())))?;
        let x = resize.apply(&img)?.pixel_values.unsqueeze(0)?;
        let (_, out) = model.forward(&Inputs {
            pixel_values: &x,
            pixel_mask: None,
            input_ids: &ids,
            attention_mask: Some(&mask),
            token_type_ids: Some(&types),
        })?;
        let (q, t) = (out.logits.dims()[1], out.logits.dims()[2]);
        let dets = detections(
            &out.logits.reshape([q, t])?,
            &out.pred_boxes.reshape([q, 4])?,
            prompt,
            (img.width(), img.height()),
            th,
        )?;
        records.extend(records_of(&dets, im.id, &classes.ids));
        bar.inc(1);
    }
    bar.finish();
    Ok(records)
}

/// COCO results records (xywh pixels) of one image's detections; `class_ids[c]` is class
/// c's category id.
pub fn records_of(dets: &[GdDetection], image_id: u64, class_ids: &[u64]) -> Vec<ResultRecord> {
    dets.iter()
        .map(|d| {
            let [x0, y0, x1, y1] = d.bbox.map(f64::from);
            ResultRecord {
                image_id,
                category_id: class_ids[d.class],
                score: d.score as f64,
                bbox: Some(vec![x0, y0, x1 - x0, y1 - y0]),
                segmentation: None,
            }
        })
        .collect()
}
