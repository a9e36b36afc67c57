//! Complete IoU (ultralytics `bbox_iou(xywh=False, CIoU=True)`), as a plain f32 function for
//! the assigner and as a differentiable op for the box loss. Same op order as the reference.
use crate::{Result, Tensor};

const EPS: f32 = 1e-7;
/// 4 / π², rounded to f32 as torch does when it multiplies an f32 tensor by it.
const V_SCALE: f64 = 4.0 / (std::f64::consts::PI * std::f64::consts::PI);

/// CIoU of two xyxy boxes in f32, `box1` first as in the reference.
pub fn ciou_f32(b1: [f32; 4], b2: [f32; 4]) -> f32 {
    let [b1x1, b1y1, b1x2, b1y2] = b1;
    let [b2x1, b2y1, b2x2, b2y2] = b2;
    let (w1, h1) = (b1x2 - b1x1, b1y2 - b1y1 + EPS);
    let (w2, h2) = (b2x2 - b2x1, b2y2 - b2y1 + EPS);
    let iw = (b1x2.min(b2x2) - b1x1.max(b2x1)).max(0.0);
    let ih = (b1y2.min(b2y2) - b1y1.max(b2y1)).max(0.0);
    let inter = iw * ih;
    let union = w1 * h1 + w2 * h2 - inter + EPS;
    let iou = inter / union;
    let cw = b1x2.max(b2x2) - b1x1.min(b2x1);
    let ch = b1y2.max(b2y2) - b1y1.min(b2y1);
    let c2 = cw * cw + ch * ch + EPS;
    let dx = b2x1 + b2x2 - b1x1 - b1x2;
    let dy = b2y1 + b2y2 - b1y1 - b1y2;
    let rho2 = (dx * dx + dy * dy) / 4.0;
    let da = atan_f32(w2 / h2) - atan_f32(w1 / h1);
    let v = V_SCALE as f32 * (da * da);
    let alpha = v / (1.0 - iou + v + EPS);
    iou - (rho2 / c2 + v * alpha)
}

/// atan rounded from f64, the same rule as `Tensor::atan`.
fn atan_f32(x: f32) -> f32 {
    (x as f64).atan() as f32
}

/// CIoU of matching rows of `box1` and `box2` (`[n, 4]` xyxy), as `[n, 1]`. Differentiable
/// in both; the trade-off weight `alpha` is held constant (computed under no_grad), as in
/// the reference.
pub fn ciou(box1: &Tensor, box2: &Tensor) -> Result<Tensor> {
    let (iou, dist, v) = parts(box1, box2)?;
    let alpha = alpha_of(&iou, &v)?;
    iou.sub(&dist.add(&v.mul(&alpha)?)?)
}

/// CIoU's `alpha = v / (1 − IoU + v + eps)`, detached (`[n, 1]`).
pub fn ciou_alpha(box1: &Tensor, box2: &Tensor) -> Result<Tensor> {
    let (iou, _, v) = parts(box1, box2)?;
    alpha_of(&iou, &v)
}

/// `IoU − (ρ²/c² + v·alpha)` with a given `alpha`: CIoU with alpha as a constant input,
/// whose gradient is the one `ciou` records.
pub fn ciou_fixed_alpha(box1: &Tensor, box2: &Tensor, alpha: &Tensor) -> Result<Tensor> {
    let (iou, dist, v) = parts(box1, box2)?;
    iou.sub(&dist.add(&v.mul(alpha)?)?)
}

fn alpha_of(iou: &Tensor, v: &Tensor) -> Result<Tensor> {
    let _g = crate::no_grad();
    let (v, iou) = (v.detach(), iou.detach());
    v.div(
        &iou.neg()?
            .add_scalar(1.0)?
            .add(&v)?
            .add_scalar(EPS as f64)?,
    )
}

/// IoU, ρ²/c² and the aspect term v, each `[n, 1]`.
fn parts(box1: &Tensor, box2: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
    let c1 = box1.chunk(4, -1)?;
    let c2 = box2.chunk(4, -1)?;
    let (b1x1, b1y1, b1x2, b1y2) = (&c1[0], &c1[1], &c1[2], &c1[3]);
    let (b2x1, b2y1, b2x2, b2y2) = (&c2[0], &c2[1], &c2[2], &c2[3]);
    let eps = EPS as f64;
    let w1 = b1x2.sub(b1x1)?;
    let h1 = b1y2.sub(b1y1)?.add_scalar(eps)?;
    let w2 = b2x2.sub(b2x1)?;
    let h2 = b2y2.sub(b2y1)?.add_scalar(eps)?;
    let inf = f64::INFINITY;
    let iw = b1x2
        .minimum(b2x2)?
        .sub(&b1x1.maximum(b2x1)?)?
        .clamp(0.0, inf)?;
    let ih = b1y2
        .minimum(b2y2)?
        .sub(&b1y1.maximum(b2y1)?)?
        .clamp(0.0, inf)?;
    let inter = iw.mul(&ih)?;
    let union = w1
        .mul(&h1)?
        .add(&w2.mul(&h2)?)?
        .sub(&inter)?
        .add_scalar(eps)?;
    let iou = inter.div(&union)?;
    let cw = b1x2.maximum(b2x2)?.sub(&b1x1.minimum(b2x1)?)?;
    let ch = b1y2.maximum(b2y2)?.sub(&b1y1.minimum(b2y1)?)?;
    let c2 = cw.sqr()?.add(&ch.sqr()?)?.add_scalar(eps)?;
    let dx = b2x1.add(b2x2)?.sub(b1x1)?.sub(b1x2)?;
    let dy = b2y1.add(b2y2)?.sub(b1y1)?.sub(b1y2)?;
    let rho2 = dx.sqr()?.add(&dy.sqr()?)?.div_scalar(4.0)?;
    let da = w2.div(&h2)?.atan()?.sub(&w1.div(&h1)?.atan()?)?;
    let v = da.sqr()?.mul_scalar(V_SCALE)?;
    Ok((iou, rho2.div(&c2)?, v))
}
