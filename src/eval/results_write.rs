//! Writing a COCO results file as ultralytics' validator does (`pred_to_json`): per
//! detection `image_id`, `category_id`, `bbox` `[x, y, w, h]` rounded to 3 decimals,
//! `score` rounded to 5, and for masks a compressed RLE `{"size": [h, w], "counts": "…"}`
//! (pycocotools' encoding, [`Rle`]). The file is written atomically and reads back with
//! [`Results::read`](super::results::Results::read).
use super::results::ResultRecord;
use crate::data::coco::{RleCounts, Segmentation};
use crate::data::masks::Rle;
use crate::io::atomic::write_atomic;
use crate::models::yolov8::postprocess::{CropMask, Prediction};
use crate::{Error, Result};
use serde_json::{Value, json};
use std::path::Path;

/// `v` rounded to `decimals` as Python's `round(v, n)` (decimal, half to even on the exact
/// binary value). Non-finite values are returned unchanged.
pub fn round_to(v: f64, decimals: usize) -> f64 {
    if !v.is_finite() {
        return v;
    }
    format!("{v:.decimals$}").parse().unwrap_or(v)
}

/// The RLE of a [`CropMask`] (same runs as `Rle::encode(&m.to_full(), …)`, without
/// building the full mask: columns outside the mask's rectangle are one zero run).
pub fn crop_mask_rle(m: &CropMask) -> Result<Rle> {
    let (w, h) = (m.width, m.height);
    let [x0, y0, x1, y1] = m.rect;
    let rw = x1.saturating_sub(x0) as usize;
    let mut counts = Vec::new();
    let (mut prev, mut run) = (false, 0u32);
    let mut push = |v: bool, n: u32, counts: &mut Vec<u32>| {
        if n == 0 {
            return;
        }
        if v != prev {
            counts.push(run);
            run = 0;
            prev = v;
        }
        run += n;
    };
    for x in 0..w {
        if x < x0 || x >= x1 || y1 <= y0 {
            push(false, h, &mut counts);
            continue;
        }
        push(false, y0, &mut counts);
        for y in y0..y1 {
            let i = (y - y0) as usize * rw + (x - x0) as usize;
            push(m.data.get(i).is_some_and(|&v| v != 0), 1, &mut counts);
        }
        push(false, h - y1.min(h), &mut counts);
    }
    counts.push(run);
    Rle::from_counts(h, w, counts).map_err(|e| Error::msg(format!("mask to RLE: {e}")))
}

/// The results records of one image's prediction: class `c` becomes `category_ids[c]`,
/// boxes become `[x, y, w, h]`, masks compressed RLE (none for a detect model).
pub fn prediction_records(
    pred: &Prediction,
    image_id: u64,
    category_ids: &[u64],
) -> Result<Vec<ResultRecord>> {
    let n = pred.scores.len();
    if pred.boxes.len() != n
        || pred.classes.len() != n
        || !(pred.masks.is_empty() || pred.masks.len() == n)
    {
        return Err(Error::msg(format!(
            "prediction of image {image_id}: {} boxes, {} scores, {} classes, {} masks",
            pred.boxes.len(),
            n,
            pred.classes.len(),
            pred.masks.len()
        )));
    }
    (0..n)
        .map(|k| {
            let c = pred.classes[k];
            let category_id = *category_ids.get(c).ok_or_else(|| {
                Error::msg(format!(
                    "prediction of image {image_id}: class {c} but {} category ids",
                    category_ids.len()
                ))
            })?;
            let [a, b, c2, d] = pred.boxes[k];
            // f32 as torch computes xyxy → ltwh, then widened for the JSON.
            let bbox = [a, b, c2 - a, d - b].map(f64::from).to_vec();
            let segmentation = match pred.masks.get(k) {
                Some(m) => Some(Segmentation::Rle {
                    size: [m.height, m.width],
                    counts: RleCounts::Compressed(crop_mask_rle(m)?.to_compressed()),
                }),
                None => None,
            };
            Ok(ResultRecord {
                image_id,
                category_id,
                score: f64::from(pred.scores[k]),
                bbox: Some(bbox),
                segmentation,
            })
        })
        .collect()
}

/// One record as ultralytics writes it (rounded box and score).
pub fn record_json(r: &ResultRecord) -> Value {
    let mut o = serde_json::Map::new();
    o.insert("image_id".into(), json!(r.image_id));
    o.insert("category_id".into(), json!(r.category_id));
    if let Some(b) = &r.bbox {
        let b: Vec<f64> = b.iter().map(|&v| round_to(v, 3)).collect();
        o.insert("bbox".into(), json!(b));
    }
    o.insert("score".into(), json!(round_to(r.score, 5)));
    if let Some(s) = &r.segmentation {
        let v = match s {
            Segmentation::Polygons(p) => json!(p),
            Segmentation::Rle { size, counts } => match counts {
                RleCounts::Compressed(c) => json!({"size": size, "counts": c}),
                RleCounts::Uncompressed(c) => json!({"size": size, "counts": c}),
            },
        };
        o.insert("segmentation".into(), v);
    }
    Value::Object(o)
}

/// Write `records` as a COCO results JSON list to `path`, atomically. Errors on a
/// non-finite score or box value (JSON has no NaN), naming the record.
pub fn write_results(path: &Path, records: &[ResultRecord]) -> Result<()> {
    for (i, r) in records.iter().enumerate() {
        let finite = r.score.is_finite() && r.bbox.iter().flatten().all(|v| v.is_finite());
        if !finite {
            return Err(Error::Format {
                path: path.display().to_string(),
                record: format!("results[{i}] (image_id {})", r.image_id),
                msg: "non-finite score or box".into(),
            });
        }
    }
    let list = Value::Array(records.iter().map(record_json).collect());
    let bytes = serde_json::to_vec(&list).map_err(|e| Error::msg(e.to_string()))?;
    write_atomic(path, |w| {
        w.write_all(&bytes).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })
    })
}

/// Every image of `gt` (ascending id; `file_name` relative to `images_dir`) through
/// `predictor`, `batch` images at a time, as COCO result records; progress on stderr. An
/// image that is missing or does not decode stops it, naming `gt_name`, the id and the file.
pub fn predict_coco(
    predictor: &dyn crate::models::yolov8::Detector,
    gt: &crate::data::Coco,
    gt_name: &str,
    images_dir: &Path,
    batch: usize,
) -> Result<Vec<ResultRecord>> {
    let mut images: Vec<_> = gt.images.iter().collect();
    images.sort_by_key(|im| im.id);
    let progress = crate::data::progress::Progress::new("images", images.len() as u64);
    let mut records = Vec::new();
    for chunk in images.chunks(batch.max(1)) {
        let imgs = chunk
            .iter()
            .map(|im| {
                crate::data::image::load_rgb(images_dir.join(&im.file_name)).map_err(|e| {
                    e.context(format!("{gt_name} image id {} ({:?})", im.id, im.file_name))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let preds = predictor.detect(&imgs)?;
        for (im, pred) in chunk.iter().zip(&preds) {
            records.extend(prediction_records(
                pred,
                im.id,
                predictor.class_category_ids(),
            )?);
        }
        progress.inc(chunk.len() as u64);
    }
    progress.finish();
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crop_mask_rle_matches_dense_encode() {
        let mut m = CropMask::empty(7, 5);
        m.rect = [2, 1, 5, 4];
        m.data = vec![1, 0, 1, 1, 1, 0, 0, 1, 1];
        let dense = Rle::encode(&m.to_full(), 5, 7).unwrap();
        assert_eq!(crop_mask_rle(&m).unwrap(), dense);
        let e = CropMask::empty(3, 2);
        assert_eq!(crop_mask_rle(&e).unwrap().counts(), &[6]);
        // Full mask: starts with a zero-length background run.
        let f = CropMask {
            width: 2,
            height: 2,
            rect: [0, 0, 2, 2],
            data: vec![1; 4],
        };
        assert_eq!(crop_mask_rle(&f).unwrap().counts(), &[0, 4]);
    }

    #[test]
    fn rounds_like_python() {
        assert_eq!(round_to(1.23456, 3), 1.235);
        assert_eq!(round_to(0.0625, 3), 0.062);
        assert_eq!(round_to(0.123456789, 5), 0.12346);
        assert_eq!(round_to(-2.5, 0), -2.0);
    }
}
