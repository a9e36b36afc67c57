//! SAM's mask loss (Kirillov et al. 2023, §3 and appendix A): focal and dice on the mask
//! logits in a 20 : 1 ratio, plus the MSE between the IoU head's prediction and the IoU of
//! the predicted (logit > 0) mask with the ground truth. Focal is torchvision's
//! sigmoid_focal_loss (α 0.25, γ 2) averaged over pixels; dice is 1 − (2Σpt + 1)/(Σp + Σt
//! + 1) on sigmoid probabilities. Each mask's terms are averaged over the masks.
use crate::{Error, Result, Tensor};

/// Loss weights and focal parameters (the paper's defaults).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SamLossConfig {
    pub focal: f64,
    pub dice: f64,
    pub iou: f64,
    pub alpha: f64,
    pub gamma: f64,
}

impl Default for SamLossConfig {
    fn default() -> Self {
        SamLossConfig {
            focal: 20.0,
            dice: 1.0,
            iou: 1.0,
            alpha: 0.25,
            gamma: 2.0,
        }
    }
}

fn same_shape(op: &'static str, a: &Tensor, b: &Tensor) -> Result<()> {
    if a.shape() != b.shape() || a.rank() < 2 {
        return Err(Error::Shape {
            op,
            msg: format!(
                "logits {} vs targets {} (need [N, ...])",
                a.shape(),
                b.shape()
            ),
        });
    }
    Ok(())
}

/// Per-mask focal loss [N] of `logits` and 0/1 `targets` [N, ...], mean over pixels.
pub fn sigmoid_focal_loss(
    logits: &Tensor,
    targets: &Tensor,
    alpha: f64,
    gamma: f64,
) -> Result<Tensor> {
    same_shape("sigmoid_focal_loss", logits, targets)?;
    let n = logits.dims()[0];
    let x = logits.reshape([n, logits.elem_count() / n.max(1)])?;
    let t = targets.reshape(x.shape().clone())?;
    let ce = x
        .relu()?
        .sub(&x.mul(&t)?)?
        .add(&x.abs()?.neg()?.softplus()?)?;
    let p = x.sigmoid()?;
    // 1 − p_t = p + t − 2pt.
    let one_minus_pt = p.add(&t)?.sub(&p.mul(&t)?.mul_scalar(2.0)?)?;
    let mut loss = ce.mul(&one_minus_pt.powf(gamma)?)?;
    if alpha >= 0.0 {
        // α_t = α·t + (1 − α)(1 − t) = (1 − α) + (2α − 1)·t.
        loss = loss.mul(&t.affine(2.0 * alpha - 1.0, 1.0 - alpha)?)?;
    }
    loss.mean(&[1], false)
}

/// Per-mask dice loss [N].
pub fn dice_loss(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    same_shape("dice_loss", logits, targets)?;
    let n = logits.dims()[0];
    let p = logits
        .reshape([n, logits.elem_count() / n.max(1)])?
        .sigmoid()?;
    let t = targets.reshape(p.shape().clone())?;
    let num = p
        .mul(&t)?
        .sum(&[1], false)?
        .mul_scalar(2.0)?
        .add_scalar(1.0)?;
    let den = p
        .sum(&[1], false)?
        .add(&t.sum(&[1], false)?)?
        .add_scalar(1.0)?;
    num.div(&den)?.neg()?.add_scalar(1.0)
}

/// IoU of (logit > 0) with the 0/1 target per mask; an empty union counts as IoU 1.
pub fn hard_iou(logits: &Tensor, targets: &Tensor) -> Result<Vec<f64>> {
    same_shape("hard_iou", logits, targets)?;
    let n = logits.dims()[0];
    let per = logits.elem_count() / n.max(1);
    let x = logits.to_vec_f32()?;
    let t = targets.to_vec_f32()?;
    Ok((0..n)
        .map(|i| {
            let (mut inter, mut uni) = (0usize, 0usize);
            for j in i * per..(i + 1) * per {
                let (a, b) = (x[j] > 0.0, t[j] > 0.5);
                inter += (a && b) as usize;
                uni += (a || b) as usize;
            }
            if uni == 0 {
                1.0
            } else {
                inter as f64 / uni as f64
            }
        })
        .collect())
}

/// The total loss (a scalar) and its items ("focal", "dice", "iou", "miou" = the batch's
/// mean hard IoU), for `logits` [N, H, W], IoU predictions [N] and targets [N, H, W].
pub fn sam_loss(
    logits: &Tensor,
    iou_pred: &Tensor,
    targets: &Tensor,
    cfg: &SamLossConfig,
) -> Result<(Tensor, Vec<(String, f64)>)> {
    let n = logits.dims().first().copied().unwrap_or(0);
    if iou_pred.dims() != [n] {
        return Err(Error::Shape {
            op: "sam_loss",
            msg: format!("iou_pred {} must be [{n}]", iou_pred.shape()),
        });
    }
    let focal = sigmoid_focal_loss(logits, targets, cfg.alpha, cfg.gamma)?.mean_all()?;
    let dice = dice_loss(logits, targets)?.mean_all()?;
    let ious = hard_iou(logits, targets)?;
    let actual = Tensor::from_vec(ious.iter().map(|&v| v as f32).collect::<Vec<_>>(), [n])?;
    let iou = iou_pred.sub(&actual)?.sqr()?.mean_all()?;
    let total = focal
        .mul_scalar(cfg.focal)?
        .add(&dice.mul_scalar(cfg.dice)?)?
        .add(&iou.mul_scalar(cfg.iou)?)?;
    let items = vec![
        ("focal".to_string(), focal.to_scalar_f64()?),
        ("dice".to_string(), dice.to_scalar_f64()?),
        ("iou".to_string(), iou.to_scalar_f64()?),
        (
            "miou".to_string(),
            ious.iter().sum::<f64>() / n.max(1) as f64,
        ),
    ];
    Ok((total, items))
}
