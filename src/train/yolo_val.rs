//! Validation of a YOLO model during training, as ultralytics' DetectionValidator /
//! SegmentationValidator do it: NMS at conf 0.001, iou 0.7, max_det 300 on letterboxed
//! inputs; boxes compared in input pixels, masks at prototype resolution (1/4) against the
//! ground truth masks at the same resolution; P, R, mAP50, mAP50-95 for boxes (B) and
//! masks (M) and ultralytics' fitness (0.1·mAP50 + 0.9·mAP50-95, summed over B and M).
use crate::data::loader::Batch;
use crate::data::masks::Rle;
use crate::eval::metrics::{self, Detection, EvalOptions, Evaluation, GtObject, ImageEval};
use crate::models::yolov8::YoloModel;
use crate::models::yolov8::postprocess::{Detections, NmsConfig, non_max_suppression};
use crate::{Error, Result};
use std::collections::BTreeMap;

/// Predictions and ground truth of one letterboxed batch, ready for `metrics::evaluate`.
pub fn batch_evals(model: &YoloModel, batch: &Batch, nms: &NmsConfig) -> Result<Vec<ImageEval>> {
    let out = model.forward_eval(&batch.images)?;
    let dets = non_max_suppression(&out.pred, model.nc(), nms)?;
    let b = dets.len();
    let n = batch.boxes.dims()[1];
    let boxes = batch.boxes.to_vec_f32()?;
    let classes = batch.classes.to_vec_f64()?;
    let crowd = batch.crowd.to_vec_f64()?;
    let gt_masks = match &batch.masks {
        Some(m) => Some((m.to_vec::<u8>()?, m.dims()[2], m.dims()[3])),
        None => None,
    };
    let proto = match &out.proto {
        Some(p) => Some((p.to_vec_f32()?, p.dims()[1], p.dims()[2], p.dims()[3])),
        None => None,
    };
    let (ih, iw) = (batch.images.dims()[2], batch.images.dims()[3]);
    let mut evals = Vec::with_capacity(b);
    for (i, d) in dets.iter().enumerate() {
        let mut gt = Vec::new();
        for j in 0..batch.counts[i].min(n) {
            let k = i * n + j;
            if crowd[k] != 0.0 || classes[k] < 0.0 {
                continue; // ultralytics drops crowd regions from its labels
            }
            let bb = &boxes[k * 4..k * 4 + 4];
            let mask = match &gt_masks {
                Some((m, mh, mw)) => Some(rle(&m[k * mh * mw..(k + 1) * mh * mw], *mh, *mw)?),
                None => None,
            };
            gt.push(GtObject {
                bbox: [bb[0] as f64, bb[1] as f64, bb[2] as f64, bb[3] as f64],
                class: classes[k] as usize,
                mask,
            });
        }
        let masks = match (&proto, gt_masks.is_some()) {
            (Some((p, nm, mh, mw)), true) => {
                let plane = &p[i * nm * mh * mw..(i + 1) * nm * mh * mw];
                Some(proto_masks(plane, *nm, *mh, *mw, d, (ih, iw))?)
            }
            _ => None,
        };
        let pred = (0..d.len())
            .map(|j| Detection {
                bbox: d.boxes[j].map(|v| v as f64),
                class: d.classes[j],
                score: d.scores[j] as f64,
                mask: masks.as_ref().map(|m| m[j].clone()),
            })
            .collect();
        let name = batch
            .image_ids
            .get(i)
            .map_or(format!("batch image {i}"), |id| format!("image {id}"));
        evals.push(ImageEval { name, gt, pred });
    }
    Ok(evals)
}

fn rle(mask: &[u8], h: usize, w: usize) -> Result<Rle> {
    Rle::encode(mask, h as u32, w as u32).map_err(|e| Error::msg(format!("validation mask: {e}")))
}

/// ultralytics `process_mask(upsample=False)`: coefficients · prototypes, cropped to the
/// box scaled to prototype resolution (`x1 ≤ x < x2` on pixel indices), logits > 0.
pub fn proto_masks(
    proto: &[f32],
    nm: usize,
    mh: usize,
    mw: usize,
    dets: &Detections,
    input_hw: (usize, usize),
) -> Result<Vec<Rle>> {
    let (sx, sy) = (mw as f32 / input_hw.1 as f32, mh as f32 / input_hw.0 as f32);
    let plane = mh * mw;
    (0..dets.len())
        .map(|j| {
            let c = &dets.coefs[j];
            if c.len() != nm {
                return Err(Error::msg(format!(
                    "detection {j} has {} mask coefficients, proto has {nm}",
                    c.len()
                )));
            }
            let b = dets.boxes[j];
            let (x1, y1, x2, y2) = (b[0] * sx, b[1] * sy, b[2] * sx, b[3] * sy);
            let mut m = vec![0u8; plane];
            for y in 0..mh {
                let fy = y as f32;
                if fy < y1 || fy >= y2 {
                    continue;
                }
                for x in 0..mw {
                    let fx = x as f32;
                    if fx < x1 || fx >= x2 {
                        continue;
                    }
                    let mut s = 0f32;
                    for (k, &ck) in c.iter().enumerate() {
                        s += ck * proto[k * plane + y * mw + x];
                    }
                    m[y * mw + x] = (s > 0.0) as u8;
                }
            }
            rle(&m, mh, mw)
        })
        .collect()
}

/// The metrics map logged per epoch (ultralytics' names) from an evaluation.
pub fn metrics_map(ev: &Evaluation) -> BTreeMap<String, f64> {
    let mut m = BTreeMap::new();
    let mut fitness = 0.0;
    for (tag, dm) in [("B", Some(&ev.boxes)), ("M", ev.masks.as_ref())] {
        let Some(dm) = dm else { continue };
        m.insert(format!("precision({tag})"), dm.mp);
        m.insert(format!("recall({tag})"), dm.mr);
        m.insert(format!("mAP50({tag})"), dm.map50);
        m.insert(format!("mAP50-95({tag})"), dm.map);
        fitness += 0.1 * dm.map50 + 0.9 * dm.map;
    }
    m.insert("fitness".into(), fitness);
    m
}

/// Evaluate `images` (from [`batch_evals`]) over `nc` classes.
pub fn evaluate(images: &[ImageEval], nc: usize) -> Result<Evaluation> {
    metrics::evaluate(images, nc, &EvalOptions::default())
}

/// Per-image loss items of `model` over `dataset` (letterboxed at `imgsz`, no
/// augmentation, eval-mode BN): ultralytics' validation loss split by image, each image
/// normalised by its own target scores (`LossOutput::per_image`). Keys: box, seg (seg
/// models), cls, dfl. A seg model on a dataset without masks gets box/cls/dfl from the
/// detection loss.
pub fn per_image_losses(
    model: &YoloModel,
    dataset: std::sync::Arc<crate::data::dataset::Dataset>,
    imgsz: u32,
    gains: &crate::models::yolov8::LossGains,
) -> Result<BTreeMap<u64, BTreeMap<String, f64>>> {
    use crate::data::loader::{Loader, LoaderConfig};
    use crate::loss::yolo::{Targets, detection_loss};
    use crate::models::yolov8::{compute_loss, head_maps, loss::loss_config};
    use crate::nn::Module;
    let with_masks = dataset.with_masks;
    let loader = Loader::new(
        dataset,
        None,
        LoaderConfig {
            batch_size: 8,
            imgsz,
            shuffle: false,
            prefetch: 2,
            ..LoaderConfig::default()
        },
    )?;
    model.eval();
    let _g = crate::no_grad();
    let mut out = BTreeMap::new();
    for b in loader.epoch(0) {
        let b = b?;
        let targets = Targets::from_batch(&b)?;
        let raw = model.forward_raw(&b.images)?;
        let seg = with_masks && model.is_seg();
        let loss = if with_masks || !model.is_seg() {
            compute_loss(model, &raw, &targets, gains)?
        } else {
            detection_loss(&loss_config(model, gains), &head_maps(&raw)?, &targets)?
        };
        for (id, items) in b.image_ids.iter().zip(&loss.per_image) {
            let mut m = BTreeMap::new();
            m.insert("box".to_string(), items[0] as f64);
            if seg {
                m.insert("seg".to_string(), items[1] as f64);
            }
            m.insert("cls".to_string(), items[2] as f64);
            m.insert("dfl".to_string(), items[3] as f64);
            out.insert(*id, m);
        }
    }
    Ok(out)
}
