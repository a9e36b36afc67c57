//! Gradient clipping by global norm — `torch.nn.utils.clip_grad_norm_` semantics, except
//! that a non-finite norm is an error (the trainer stops with a clear message instead of
//! stepping with NaN).
use crate::{DType, Error, Result, Tensor};

/// The global 2-norm of the gradients of `params` (parameters without a gradient are
/// skipped), accumulated in f64.
pub fn grad_norm<'a>(params: impl IntoIterator<Item = &'a Tensor>) -> Result<f64> {
    let mut sq = 0.0f64;
    for p in params {
        if let Some(g) = p.grad() {
            sq += g.to_vec_f64()?.iter().map(|v| v * v).sum::<f64>();
        }
    }
    Ok(sq.sqrt())
}

/// Multiply every gradient by `factor` (in the gradient's dtype).
pub fn scale_grads<'a>(params: impl IntoIterator<Item = &'a Tensor>, factor: f64) -> Result<()> {
    for p in params {
        if let Some(g) = p.grad() {
            p.set_grad(Some(scaled(&g, factor)?));
        }
    }
    Ok(())
}

/// A fresh tensor `g * factor`, computed as torch does for the dtype (f32 grads times an
/// f32 factor).
fn scaled(g: &Tensor, factor: f64) -> Result<Tensor> {
    let g = g.contiguous()?;
    match g.dtype() {
        DType::F32 => {
            let f = factor as f32;
            let v: Vec<f32> = g.with_slice(|s: &[f32]| s.iter().map(|x| x * f).collect())?;
            Tensor::from_vec(v, g.shape().clone())
        }
        _ => {
            let v: Vec<f64> = g.to_vec_f64()?.iter().map(|x| x * factor).collect();
            Tensor::from_vec(v, g.shape().clone())?.to_dtype(g.dtype())
        }
    }
}

/// Clip the gradients of `params` so their global 2-norm is at most `max_norm`; returns the
/// norm before clipping. As torch: `coef = max_norm / (norm + 1e-6)`, applied when < 1.
/// A NaN or infinite norm is an error naming "non-finite gradient norm"; no gradient is
/// changed then.
pub fn clip_grad_norm(params: &[Tensor], max_norm: f64) -> Result<f64> {
    let norm = grad_norm(params)?;
    if !norm.is_finite() {
        return Err(Error::msg(format!(
            "non-finite gradient norm ({norm}) over {} parameters: the loss or a gradient \
             overflowed; lower the learning rate or check the data",
            params.len()
        )));
    }
    let coef = max_norm / (norm + 1e-6);
    if coef < 1.0 {
        scale_grads(params, coef)?;
    }
    Ok(norm)
}
