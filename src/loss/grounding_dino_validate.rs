//! Input checks for the Grounding DINO loss: bad data becomes a `crate::Error` naming the
//! image, query or box, never a NaN loss or a panic.
use super::grounding_dino_match::{GdPrediction, GdTarget, LabelMap};
use crate::{Error, Result};

/// Shapes, finiteness, box sizes and class indices, so bad data errors instead of
/// producing NaN or panicking.
pub(super) fn validate(
    p: &GdPrediction,
    label_maps: &[LabelMap],
    text_mask: &[Vec<bool>],
    targets: &[GdTarget],
) -> Result<()> {
    let (lg, bx) = (&p.logits, &p.pred_boxes);
    let d = lg.dims();
    let ok = lg.rank() == 3
        && lg.dtype().is_float()
        && bx.dtype() == lg.dtype()
        && bx.dims() == [d[0], d[1], 4];
    if !ok {
        return Err(Error::Shape {
            op: "grounding_dino_loss",
            msg: format!(
                "logits {} {} and pred_boxes {} {} must be float [B, Q, T] and [B, Q, 4]",
                lg.dtype(),
                lg.shape(),
                bx.dtype(),
                bx.shape()
            ),
        });
    }
    let (b, q, t) = (d[0], d[1], d[2]);
    if label_maps.len() != b || text_mask.len() != b || targets.len() != b {
        return Err(Error::Shape {
            op: "grounding_dino_loss",
            msg: format!(
                "batch {b}, but {} label maps, {} text masks, {} targets",
                label_maps.len(),
                text_mask.len(),
                targets.len()
            ),
        });
    }
    let x = lg.to_vec_f64()?;
    for (i, (m, mask)) in label_maps.iter().zip(text_mask).enumerate() {
        if m.text_len != t || mask.len() != t {
            return Err(Error::Shape {
                op: "grounding_dino_loss",
                msg: format!(
                    "image {i}: label map over {} and text mask over {} token slots, logits have {t}",
                    m.text_len,
                    mask.len()
                ),
            });
        }
        if let Some(c) = m
            .phrases
            .iter()
            .position(|ph| ph.is_empty() || ph.iter().any(|&k| k >= t))
        {
            return Err(Error::msg(format!(
                "image {i}: phrase {c} of the label map is empty or has a token slot >= {t}"
            )));
        }
        for k in 0..q * t {
            let v = x[(i * q) * t + k];
            if v.is_nan() || (mask[k % t] && !v.is_finite()) {
                return Err(Error::msg(format!(
                    "image {i}: logit {v} at query {}, token {} (NaN, or non-finite on a text token)",
                    k / t,
                    k % t
                )));
            }
        }
    }
    for (k, v) in bx.to_vec_f64()?.chunks(4).enumerate() {
        if v.iter().any(|c| !c.is_finite()) || v[2] < 0.0 || v[3] < 0.0 {
            return Err(Error::msg(format!(
                "predicted box {v:?} (image {}, query {}) is not finite or has negative size",
                k / q,
                k % q
            )));
        }
    }
    for (i, (g, m)) in targets.iter().zip(label_maps).enumerate() {
        let n = g.class_labels.len();
        if g.boxes.dims() != [n, 4] {
            return Err(Error::Shape {
                op: "grounding_dino_loss",
                msg: format!(
                    "image {i}: {n} class labels but target boxes {}",
                    g.boxes.shape()
                ),
            });
        }
        if let Some(&c) = g.class_labels.iter().find(|&&c| c >= m.phrases.len()) {
            return Err(Error::Index {
                op: "grounding_dino_loss",
                msg: format!(
                    "image {i}: target class {c}, but the prompt has {} phrases",
                    m.phrases.len()
                ),
            });
        }
        for v in g.boxes.to_vec_f64()?.chunks(4) {
            if v.iter().any(|c| !c.is_finite()) || v[2] <= 0.0 || v[3] <= 0.0 {
                return Err(Error::msg(format!(
                    "image {i}: target box {v:?} (cxcywh) must be finite with width and height > 0"
                )));
            }
        }
    }
    Ok(())
}
