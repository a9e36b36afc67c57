//! Grounding DINO's Hungarian matcher (transformers `GroundingDinoHungarianMatcher`), the
//! prompt → label-map / text-mask helpers it needs, and the box utilities (cxcywh → xyxy,
//! GIoU) shared with the loss. Op order follows the reference so f32 costs round alike.
use super::hungarian::linear_sum_assignment;
use crate::{DType, Error, Result, Tensor};

/// Token ids that delimit phrases: [CLS], [SEP], ".", "?" and [PAD] (0).
pub const DELIMITER_TOKENS: [i64; 5] = [101, 102, 1012, 1029, 0];

/// One image's classes: `phrases[c]` lists the token slots (ascending) of class `c`, the
/// c-th phrase of the prompt; `text_len` is the logits' token axis (max_text_len).
#[derive(Clone, Debug, PartialEq)]
pub struct LabelMap {
    pub text_len: usize,
    pub phrases: Vec<Vec<usize>>,
}

impl LabelMap {
    /// Row `c` as 0/1 over the `text_len` slots (the reference's `label_map[c]`).
    pub fn dense_row(&self, c: usize) -> Vec<f64> {
        let mut row = vec![0.0; self.text_len];
        for &t in &self.phrases[c] {
            row[t] = 1.0;
        }
        row
    }
}

/// One head's predictions: `logits` [B, Q, T] (query × token slot; -inf allowed where the
/// text is masked) and `pred_boxes` [B, Q, 4] normalised cxcywh.
#[derive(Clone, Debug)]
pub struct GdPrediction {
    pub logits: Tensor,
    pub pred_boxes: Tensor,
}

/// One image's ground truth: class (phrase) index per box and `boxes` [n, 4] cxcywh.
#[derive(Clone, Debug)]
pub struct GdTarget {
    pub class_labels: Vec<usize>,
    pub boxes: Tensor,
}

fn ids_2d(op: &'static str, t: &Tensor) -> Result<(usize, usize, Vec<i64>)> {
    if t.rank() != 2 || t.dtype().is_float() {
        return Err(Error::Shape {
            op,
            msg: format!(
                "need an integer [B, S] tensor, got {} {}",
                t.dtype(),
                t.shape()
            ),
        });
    }
    let v = t.to_dtype(DType::I64)?.contiguous()?.to_vec::<i64>()?;
    Ok((t.dims()[0], t.dims()[1], v))
}

/// `build_label_maps`: phrases are the runs of tokens between delimiters, numbered by the
/// running delimiter count; tokens before the first delimiter belong to no phrase.
pub fn build_label_maps(input_ids: &Tensor, max_text_len: usize) -> Result<Vec<LabelMap>> {
    let (b, s, ids) = ids_2d("build_label_maps", input_ids)?;
    if s > max_text_len {
        return Err(Error::Shape {
            op: "build_label_maps",
            msg: format!("{s} tokens exceed max_text_len {max_text_len}"),
        });
    }
    Ok((0..b)
        .map(|i| {
            // Group ids rise with the cumulative delimiter count, so runs come out in the
            // order of the reference's torch.unique (ascending).
            let mut phrases: Vec<Vec<usize>> = Vec::new();
            let (mut count, mut open) = (0usize, false);
            for (t, id) in ids[i * s..(i + 1) * s].iter().enumerate() {
                if DELIMITER_TOKENS.contains(id) {
                    count += 1;
                    open = false;
                } else if count > 0 {
                    if !open {
                        phrases.push(Vec::new());
                        open = true;
                    }
                    phrases.last_mut().expect("opened above").push(t);
                }
            }
            LabelMap {
                text_len: max_text_len,
                phrases,
            }
        })
        .collect())
}

/// `build_text_mask`: per image, which of the `max_text_len` token slots are real text
/// (the attention mask, false past the prompt). The reference repeats it for every query.
pub fn build_text_mask(attention_mask: &Tensor, max_text_len: usize) -> Result<Vec<Vec<bool>>> {
    let (b, s, m) = ids_2d("build_text_mask", attention_mask)?;
    if s > max_text_len {
        return Err(Error::Shape {
            op: "build_text_mask",
            msg: format!("{s} tokens exceed max_text_len {max_text_len}"),
        });
    }
    Ok((0..b)
        .map(|i| {
            let mut row = vec![false; max_text_len];
            for t in 0..s {
                row[t] = m[i * s + t] != 0;
            }
            row
        })
        .collect())
}

/// cxcywh → (x0, y0, x1, y1) as four [..., 1] tensors (`center_to_corners_format`).
pub fn center_to_corners(b: &Tensor) -> Result<[Tensor; 4]> {
    let c = b.chunk(4, -1)?;
    let (hw, hh) = (c[2].mul_scalar(0.5)?, c[3].mul_scalar(0.5)?);
    Ok([
        c[0].sub(&hw)?,
        c[1].sub(&hh)?,
        c[0].add(&hw)?,
        c[1].add(&hh)?,
    ])
}

/// GIoU of matching rows of two xyxy box sets (`generalized_box_iou`'s element formula).
pub fn giou_xyxy(a: &[Tensor; 4], b: &[Tensor; 4]) -> Result<Tensor> {
    let inf = f64::INFINITY;
    let area1 = a[2].sub(&a[0])?.mul(&a[3].sub(&a[1])?)?;
    let area2 = b[2].sub(&b[0])?.mul(&b[3].sub(&b[1])?)?;
    let iw = a[2]
        .minimum(&b[2])?
        .sub(&a[0].maximum(&b[0])?)?
        .clamp(0.0, inf)?;
    let ih = a[3]
        .minimum(&b[3])?
        .sub(&a[1].maximum(&b[1])?)?
        .clamp(0.0, inf)?;
    let inter = iw.mul(&ih)?;
    let union = area1.add(&area2)?.sub(&inter)?;
    let iou = inter.div(&union)?;
    let ew = a[2]
        .maximum(&b[2])?
        .sub(&a[0].minimum(&b[0])?)?
        .clamp(0.0, inf)?;
    let eh = a[3]
        .maximum(&b[3])?
        .sub(&a[1].minimum(&b[1])?)?
        .clamp(0.0, inf)?;
    let area = ew.mul(&eh)?;
    iou.sub(&area.sub(&union)?.div(&area)?)
}

/// Per image, matched (query, target) pairs sorted by query.
pub type Matching = Vec<Vec<(usize, usize)>>;

/// Matcher weights (GroundingDinoConfig's class_cost, bbox_cost, giou_cost).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MatchCosts {
    pub class: f64,
    pub bbox: f64,
    pub giou: f64,
}

/// Hungarian matching of one head's predictions to the targets, on detached values. Per
/// image, `(query, target)` pairs sorted by query (min(Q, n) of them). Inputs must have
/// passed `validate` (the loss does it).
pub fn hungarian_match(
    pred: &GdPrediction,
    label_maps: &[LabelMap],
    targets: &[GdTarget],
    w: &MatchCosts,
) -> Result<Matching> {
    let _g = crate::no_grad();
    let (b, q, t) = (
        pred.logits.dims()[0],
        pred.logits.dims()[1],
        pred.logits.dims()[2],
    );
    let dtype = pred.logits.dtype();
    let sizes: Vec<usize> = targets.iter().map(|g| g.class_labels.len()).collect();
    let n: usize = sizes.iter().sum();
    if n == 0 {
        return Ok(vec![Vec::new(); b]);
    }
    // Label-map rows of every target, each normalised by its phrase's token count.
    let mut lm = Vec::with_capacity(n * t);
    for (map, g) in label_maps.iter().zip(targets) {
        for &c in &g.class_labels {
            let k = map.phrases[c].len() as f64;
            lm.extend(map.dense_row(c).into_iter().map(|v| v / k));
        }
    }
    let lm = Tensor::from_vec(lm, [n, t])?.to_dtype(dtype)?;
    let p = pred.logits.detach().reshape([b * q, t])?.sigmoid()?;
    let one_minus_p = p.neg()?.add_scalar(1.0)?;
    let neg = p
        .sqr()?
        .mul_scalar(0.75)?
        .mul(&one_minus_p.add_scalar(1e-8)?.log()?.neg()?)?;
    let pos = one_minus_p
        .sqr()?
        .mul_scalar(0.25)?
        .mul(&p.add_scalar(1e-8)?.log()?.neg()?)?;
    let class_cost = pos.sub(&neg)?.matmul(&lm.t()?)?;

    let out_bbox = pred.pred_boxes.detach().reshape([b * q, 4])?;
    let tgt: Vec<&Tensor> = targets.iter().map(|g| &g.boxes).collect();
    let tgt_bbox = Tensor::cat(&tgt, 0)?.to_dtype(dtype)?;
    let full = [b * q, n, 4];
    let ob = out_bbox.unsqueeze(1)?.broadcast_as(full)?;
    let tb = tgt_bbox.unsqueeze(0)?.broadcast_as(full)?;
    let bbox_cost = ob.sub(&tb)?.abs()?.sum(&[2], false)?;
    let giou =
        giou_xyxy(&center_to_corners(&ob)?, &center_to_corners(&tb)?)?.reshape([b * q, n])?;
    let cost = bbox_cost
        .mul_scalar(w.bbox)?
        .add(&class_cost.mul_scalar(w.class)?)?
        .add(&giou.neg()?.mul_scalar(w.giou)?)?;
    // nan_to_num(nan/±inf → dtype max), as the reference does before the solver.
    let max = if dtype == DType::F64 {
        f64::MAX
    } else {
        f32::MAX as f64
    };
    let cost: Vec<f64> = cost
        .to_vec_f64()?
        .into_iter()
        .map(|c| if c.is_finite() { c } else { max })
        .collect();
    let mut out = Vec::with_capacity(b);
    let mut col0 = 0;
    for (i, &m) in sizes.iter().enumerate() {
        let sub: Vec<f64> = (0..q)
            .flat_map(|r| {
                let row = (i * q + r) * n + col0;
                cost[row..row + m].iter().copied()
            })
            .collect();
        out.push(linear_sum_assignment(&sub, q, m)?);
        col0 += m;
    }
    Ok(out)
}
