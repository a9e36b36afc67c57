//! Grounding DINO's fine-tuning loss, as transformers' `GroundingDinoForObjectDetectionLoss`:
//! per head (final decoder layer, each earlier decoder layer, the encoder proposals) a
//! Hungarian matching, then a sigmoid focal loss on the contrastive token logits (summed
//! over the text-masked slots), L1 and 1 − GIoU on the matched boxes, each divided by the
//! batch's box count; the total weights them 2 : 5 : 2.
use super::grounding_dino_match::{GdPrediction, GdTarget, LabelMap, MatchCosts, Matching};
use super::grounding_dino_match::{center_to_corners, giou_xyxy, hungarian_match};
use super::grounding_dino_validate::validate;
use crate::{DType, Error, Result, Tensor};

/// GroundingDinoConfig's loss fields (its defaults). `ce_loss_coefficient` is a constant
/// 2.0 in the reference, not a config field.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GroundingDinoLossConfig {
    pub class_cost: f64,
    pub bbox_cost: f64,
    pub giou_cost: f64,
    pub ce_loss_coefficient: f64,
    pub bbox_loss_coefficient: f64,
    pub giou_loss_coefficient: f64,
    pub focal_alpha: f64,
}

impl Default for GroundingDinoLossConfig {
    fn default() -> Self {
        GroundingDinoLossConfig {
            class_cost: 1.0,
            bbox_cost: 5.0,
            giou_cost: 2.0,
            ce_loss_coefficient: 2.0,
            bbox_loss_coefficient: 5.0,
            giou_loss_coefficient: 2.0,
            focal_alpha: 0.25,
        }
    }
}

/// The loss and what the reference's `loss_dict` holds.
#[derive(Debug)]
pub struct GroundingDinoLoss {
    /// Weighted sum of every head's loss_ce / loss_bbox / loss_giou (a scalar).
    pub total: Tensor,
    /// `loss_ce`, `loss_bbox`, `loss_giou` with suffix "" (final), "_{i}" (decoder layer
    /// i), "_enc"; scalars that carry gradients, in the reference's order.
    pub terms: Vec<(String, Tensor)>,
    /// `cardinality_error{suffix}`: mean |#queries with max sigmoid > 0.5 − #targets|.
    pub cardinality: Vec<(String, f64)>,
    /// Per head (same suffixes), per image: matched (query, target) pairs sorted by query.
    pub indices: Vec<(String, Matching)>,
}

/// The loss over `decoder` (every decoder layer in order, the last being the model's
/// output; auxiliary terms for the others, as with `auxiliary_loss=True` — pass only the
/// last for the config default) and the optional `encoder` proposals (`two_stage`).
/// `label_maps` and `text_mask` come from `build_label_maps` / `build_text_mask`;
/// `targets` has one entry per image.
pub fn grounding_dino_loss(
    decoder: &[GdPrediction],
    encoder: Option<&GdPrediction>,
    label_maps: &[LabelMap],
    text_mask: &[Vec<bool>],
    targets: &[GdTarget],
    cfg: &GroundingDinoLossConfig,
) -> Result<GroundingDinoLoss> {
    let Some(last) = decoder.last() else {
        return Err(Error::msg("grounding_dino_loss: no decoder outputs given"));
    };
    let mut heads: Vec<(String, &GdPrediction)> = vec![(String::new(), last)];
    for (i, p) in decoder[..decoder.len() - 1].iter().enumerate() {
        heads.push((format!("_{i}"), p));
    }
    if let Some(e) = encoder {
        heads.push(("_enc".into(), e));
    }
    for (name, p) in &heads {
        validate(p, label_maps, text_mask, targets)
            .map_err(|e| e.context(format!("grounding_dino_loss head \"{name}\"")))?;
    }
    let num_boxes = (targets.iter().map(|t| t.class_labels.len()).sum::<usize>() as f64).max(1.0);
    let costs = MatchCosts {
        class: cfg.class_cost,
        bbox: cfg.bbox_cost,
        giou: cfg.giou_cost,
    };
    let mut out = GroundingDinoLoss {
        total: Tensor::zeros([], last.logits.dtype()),
        terms: Vec::new(),
        cardinality: Vec::new(),
        indices: Vec::new(),
    };
    let weights = [
        cfg.ce_loss_coefficient,
        cfg.bbox_loss_coefficient,
        cfg.giou_loss_coefficient,
    ];
    for (suffix, p) in heads {
        let idx = hungarian_match(p, label_maps, targets, &costs)?;
        let ce = focal_term(
            p,
            label_maps,
            text_mask,
            targets,
            &idx,
            num_boxes,
            cfg.focal_alpha,
        )?;
        let (l1, giou) = box_terms(p, targets, &idx, num_boxes)?;
        for ((name, t), w) in ["loss_ce", "loss_bbox", "loss_giou"]
            .iter()
            .zip([ce, l1, giou])
            .zip(weights)
        {
            out.total = out.total.add(&t.mul_scalar(w)?)?;
            out.terms.push((format!("{name}{suffix}"), t));
        }
        let card = cardinality_error(&p.logits, targets)?;
        out.cardinality
            .push((format!("cardinality_error{suffix}"), card));
        out.indices.push((suffix, idx));
    }
    Ok(out)
}

fn index_tensor(v: Vec<i64>) -> Result<Tensor> {
    let n = v.len();
    Tensor::from_vec(v, [n])
}

/// `loss_labels`: focal loss over the text-masked slots of all queries, against the
/// matched targets' label-map rows (zeros for unmatched queries), / num_boxes.
fn focal_term(
    p: &GdPrediction,
    label_maps: &[LabelMap],
    text_mask: &[Vec<bool>],
    targets: &[GdTarget],
    idx: &[Vec<(usize, usize)>],
    num_boxes: f64,
    alpha: f64,
) -> Result<Tensor> {
    let d = p.logits.dims();
    let (q, t) = (d[1], d[2]);
    // Each image's own label map. (The reference offsets image i>0 by len(label_maps[i])
    // instead of the running total: the same for batch 2 with equal phrase counts, wrong
    // rows from image 2 on.)
    let mut onehot = vec![0.0f64; p.logits.elem_count()];
    for (i, pairs) in idx.iter().enumerate() {
        for &(qi, tj) in pairs {
            for &k in &label_maps[i].phrases[targets[i].class_labels[tj]] {
                onehot[(i * q + qi) * t + k] = 1.0;
            }
        }
    }
    // masked_select: only the text slots enter (the others may be -inf).
    let sel: Vec<i64> = (0..onehot.len())
        .filter(|&k| text_mask[k / (q * t)][k % t])
        .map(|k| k as i64)
        .collect();
    let y: Vec<f64> = sel.iter().map(|&k| onehot[k as usize]).collect();
    let n = y.len();
    let y = Tensor::from_vec(y, [n])?.to_dtype(p.logits.dtype())?;
    let x = p
        .logits
        .reshape([p.logits.elem_count()])?
        .index_select(0, &index_tensor(sel)?)?;
    let prob = x.sigmoid()?;
    let ce = x
        .relu()?
        .sub(&x.mul(&y)?)?
        .add(&x.abs()?.neg()?.softplus()?)?;
    let one_minus_y = y.neg()?.add_scalar(1.0)?;
    let p_t = prob
        .mul(&y)?
        .add(&prob.neg()?.add_scalar(1.0)?.mul(&one_minus_y)?)?;
    let mut loss = ce.mul(&p_t.neg()?.add_scalar(1.0)?.sqr()?)?;
    if alpha >= 0.0 {
        let alpha_t = y
            .mul_scalar(alpha)?
            .add(&one_minus_y.mul_scalar(1.0 - alpha)?)?;
        loss = alpha_t.mul(&loss)?;
    }
    loss.sum_all()?.div_scalar(num_boxes)
}

/// `loss_boxes`: L1 and 1 − GIoU of matched (prediction, target) boxes, / num_boxes.
fn box_terms(
    p: &GdPrediction,
    targets: &[GdTarget],
    idx: &[Vec<(usize, usize)>],
    num_boxes: f64,
) -> Result<(Tensor, Tensor)> {
    let q = p.logits.dims()[1];
    let rows: Vec<i64> = idx
        .iter()
        .enumerate()
        .flat_map(|(i, pr)| pr.iter().map(move |&(qi, _)| (i * q + qi) as i64))
        .collect();
    let src = p
        .pred_boxes
        .reshape([p.pred_boxes.elem_count() / 4, 4])?
        .index_select(0, &index_tensor(rows)?)?;
    let mut parts = Vec::new();
    for (g, pr) in targets.iter().zip(idx) {
        let j = index_tensor(pr.iter().map(|&(_, tj)| tj as i64).collect())?;
        parts.push(
            g.boxes
                .detach()
                .index_select(0, &j)?
                .to_dtype(src.dtype())?,
        );
    }
    let tgt = if parts.is_empty() {
        Tensor::zeros([0, 4], src.dtype())
    } else {
        Tensor::cat(&parts.iter().collect::<Vec<_>>(), 0)?
    };
    let l1 = src.sub(&tgt)?.abs()?.sum_all()?.div_scalar(num_boxes)?;
    let giou = giou_xyxy(&center_to_corners(&src)?, &center_to_corners(&tgt)?)?;
    let giou = giou
        .neg()?
        .add_scalar(1.0)?
        .sum_all()?
        .div_scalar(num_boxes)?;
    Ok((l1, giou))
}

/// `loss_cardinality` (logging only, no gradient).
fn cardinality_error(logits: &Tensor, targets: &[GdTarget]) -> Result<f64> {
    let _g = crate::no_grad();
    let d = logits.dims();
    let (b, q, t) = (d[0], d[1], d[2]);
    let p = logits.detach().sigmoid()?.to_vec_f64()?;
    let mut err = 0.0;
    for (i, g) in targets.iter().enumerate() {
        let card = (0..q)
            .filter(|&r| {
                let row = &p[(i * q + r) * t..(i * q + r + 1) * t];
                row.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v)) > 0.5
            })
            .count();
        err += (card as f64 - g.class_labels.len() as f64).abs();
    }
    Ok(err / b.max(1) as f64)
}

/// Converts a label map to the reference's dense [C, T] 0/1 layout (for checks).
pub fn dense_label_map(m: &LabelMap) -> Result<Tensor> {
    let rows: Vec<f64> = (0..m.phrases.len()).flat_map(|c| m.dense_row(c)).collect();
    Tensor::from_vec(rows, [m.phrases.len(), m.text_len])?.to_dtype(DType::F32)
}
