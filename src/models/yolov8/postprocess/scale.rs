//! From model-input pixels back to the original image, through the letterbox
//! [`Placement`]: boxes as ultralytics `scale_boxes` + `clip_boxes`
//! ([`Placement::box_to_original`], f64 where torch uses f32: within 1 ulp), masks as
//! `scale_masks(masks, orig_shape, ratio_pad)`: crop the content rectangle, bilinear resize
//! to the original size (torch's kernel, [`super::interp`]), then binarise by [`Binarize`].
use super::interp::{Tap, axis_taps, lerp, output_span};
use super::mask::{CropMask, process_mask};
use super::nms::{Detections, NmsConfig, non_max_suppression};
use crate::data::preprocess::Placement;
use crate::{Error, Result, Tensor};
use rayon::prelude::*;

/// How a resized 0/1 mask becomes 0/1 again.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Binarize {
    /// `value > 0.5`: the natural threshold; keeps the mask's size.
    #[default]
    Half,
    /// `.byte()` (truncation: 1 only where the value is ≥ 1), what ultralytics' segment
    /// validator does in `scale_preds` before writing COCO JSON; it erodes edges by about
    /// a pixel when upscaling.
    Truncate,
}

/// Final detections of one image in original-image pixels.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Prediction {
    /// `[x0, y0, x1, y1]`, clipped to the image.
    pub boxes: Vec<[f32; 4]>,
    pub scores: Vec<f32>,
    pub classes: Vec<usize>,
    /// One per detection at the original size; empty for a detect model.
    pub masks: Vec<CropMask>,
}

/// Map detections (and their input-size masks, if any) to original pixels. `masks` must
/// be empty or have one mask per detection, each at the placement's input size.
pub fn to_original(
    dets: &Detections,
    masks: &[CropMask],
    placement: &Placement,
    rule: Binarize,
) -> Result<Prediction> {
    if !masks.is_empty() && masks.len() != dets.len() {
        return Err(Error::msg(format!(
            "to_original: {} detections but {} masks",
            dets.len(),
            masks.len()
        )));
    }
    Ok(Prediction {
        boxes: dets
            .boxes
            .iter()
            .map(|&b| placement.box_to_original(b))
            .collect(),
        scores: dets.scores.clone(),
        classes: dets.classes.clone(),
        masks: masks
            .par_iter()
            .map(|m| scale_mask(m, placement, rule))
            .collect::<Result<_>>()?,
    })
}

/// One input-size mask → original size (ultralytics `scale_masks` with the letterbox's
/// ratio_pad, then [`Binarize`]). A mask already at the original size is returned as is,
/// as the reference does.
pub fn scale_mask(m: &CropMask, p: &Placement, rule: Binarize) -> Result<CropMask> {
    if (m.width, m.height) != (p.input_w, p.input_h) {
        return Err(Error::msg(format!(
            "scale_mask: mask is {}x{} but the model input is {}x{}",
            m.width, m.height, p.input_w, p.input_h
        )));
    }
    if (m.width, m.height) == (p.orig_w, p.orig_h) {
        return Ok(m.clone());
    }
    let [cx0, cy0, cx1, cy1] = p.content_rect();
    let (ty, tx) = (
        axis_taps(p.new_h as usize, p.orig_h as usize),
        axis_taps(p.new_w as usize, p.orig_w as usize),
    );
    // The mask's window in content coordinates; outside it every source value is 0.
    let [mx0, my0, mx1, my1] = m.rect;
    let (sx0, sx1) = (mx0.clamp(cx0, cx1) - cx0, mx1.clamp(cx0, cx1) - cx0);
    let (sy0, sy1) = (my0.clamp(cy0, cy1) - cy0, my1.clamp(cy0, cy1) - cy0);
    let mut out = CropMask::empty(p.orig_w, p.orig_h);
    if sx0 == sx1 || sy0 == sy1 {
        return Ok(out);
    }
    let (ox0, ox1) = output_span(&tx, sx0 as usize, sx1 as usize);
    let (oy0, oy1) = output_span(&ty, sy0 as usize, sy1 as usize);
    let src = |x: usize, y: usize| f32::from(m.get(x as u32 + cx0, y as u32 + cy0));
    let value = |tyi: &Tap, txi: &Tap| {
        let top = lerp(src(txi.i0, tyi.i0), src(txi.i1, tyi.i0), txi);
        let bottom = lerp(src(txi.i0, tyi.i1), src(txi.i1, tyi.i1), txi);
        lerp(top, bottom, tyi)
    };
    let mut data = Vec::with_capacity((oy1 - oy0) * (ox1 - ox0));
    for tyi in &ty[oy0..oy1] {
        for txi in &tx[ox0..ox1] {
            let v = value(tyi, txi);
            data.push(u8::from(match rule {
                Binarize::Half => v > 0.5,
                Binarize::Truncate => v >= 1.0,
            }));
        }
    }
    out.rect = [ox0, oy0, ox1, oy1].map(|v| v as u32);
    out.data = data;
    Ok(out)
}

/// ultralytics' segment predictor end to end for one batch: NMS, `process_mask` at the input
/// size, drop detections whose mask is empty (as `construct_result` does), map to original
/// pixels. `pred` `[B, 4 + nc + nm, A]`, `proto` `[B, nm, mh, mw]`, one placement per image.
pub fn predict_segment(
    pred: &Tensor,
    proto: &Tensor,
    nc: usize,
    cfg: &NmsConfig,
    placements: &[Placement],
    rule: Binarize,
) -> Result<Vec<Prediction>> {
    let dets = non_max_suppression(pred, nc, cfg)?;
    let &[b, nm, mh, mw] = proto.dims() else {
        return Err(Error::msg(format!(
            "predict_segment: proto must be [B, nm, mh, mw], got {}",
            proto.shape()
        )));
    };
    if b != dets.len() || b != placements.len() {
        return Err(Error::msg(format!(
            "predict_segment: {} images in pred, {b} in proto, {} placements",
            dets.len(),
            placements.len()
        )));
    }
    let proto = proto.contiguous()?;
    let mut out = Vec::with_capacity(b);
    for (i, (d, p)) in dets.iter().zip(placements).enumerate() {
        let pi = proto.narrow(0, i, 1)?.reshape([nm, mh, mw])?;
        let masks = process_mask(&pi, d, (p.input_h as usize, p.input_w as usize))?;
        let keep: Vec<usize> = (0..d.len()).filter(|&k| !masks[k].is_empty()).collect();
        let kept = Detections {
            boxes: keep.iter().map(|&k| d.boxes[k]).collect(),
            scores: keep.iter().map(|&k| d.scores[k]).collect(),
            classes: keep.iter().map(|&k| d.classes[k]).collect(),
            coefs: keep.iter().map(|&k| d.coefs[k].clone()).collect(),
            anchors: keep.iter().map(|&k| d.anchors[k]).collect(),
        };
        let masks: Vec<CropMask> = keep.iter().map(|&k| masks[k].clone()).collect();
        out.push(to_original(&kept, &masks, p, rule)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::preprocess::Letterbox;

    #[test]
    fn mask_maps_through_the_letterbox() {
        // 100×50 image letterboxed to 64: content 64×32 at top 16.
        let p = Letterbox { size: 64 }.placement(100, 50);
        assert_eq!((p.new_w, p.new_h, p.left, p.top), (64, 32, 0, 16));
        // A block covering input x 16..48, y 24..40 = content y 8..24.
        let mut m = CropMask::empty(64, 64);
        m.rect = [16, 24, 48, 40];
        m.data = vec![1; 32 * 16];
        let o = scale_mask(&m, &p, Binarize::Half).unwrap();
        assert_eq!((o.width, o.height), (100, 50));
        // Scale 1.5625 per axis: x 25..75, y 12.5..37.5.
        let full = o.to_full();
        let at = |x: usize, y: usize| full[y * 100 + x];
        assert_eq!(
            (at(26, 20), at(73, 36), at(20, 20), at(50, 5)),
            (1, 1, 0, 0)
        );
        let area = o.area() as f64;
        assert!((area - 50.0 * 25.0).abs() < 100.0, "{area}");
        let t = scale_mask(&m, &p, Binarize::Truncate).unwrap();
        assert!(t.area() < o.area());
        let b = p.box_to_original([16.0, 24.0, 48.0, 40.0]);
        assert_eq!(b, [25.0, 12.5, 75.0, 37.5]);
        let wrong = CropMask::empty(32, 32);
        assert!(scale_mask(&wrong, &p, Binarize::Half).is_err());
    }
}
