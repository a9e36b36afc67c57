//! Optimizers. Updates run in place on the parameters' storage, following PyTorch's
//! update order exactly, so a run can be compared step by step with torch.optim.
mod adamw;
pub mod clip;
pub mod ema;
pub mod groups;
pub mod scaler;
pub mod schedule;
mod sgd;

pub use adamw::{AdamW, AdamWConfig};
pub use clip::{clip_grad_norm, grad_norm};
pub use ema::ModelEma;
pub use groups::{
    GroupKind, Optimizer, OptimizerKind, ParamClassifier, ParamGroup, ParamState, classify_param,
};
pub use scaler::LossScaler;
pub use schedule::ScheduleConfig;
pub use sgd::{Sgd, SgdConfig};

use crate::{Error, Result, Tensor};

/// Shared by every optimizer: the parameters and their gradients as f32/f64 slices.
pub(crate) fn check_params(params: &[Tensor]) -> Result<()> {
    for (i, p) in params.iter().enumerate() {
        if !p.requires_grad() {
            return Err(Error::msg(format!(
                "optimizer: parameter {i} {} does not require grad",
                p.shape()
            )));
        }
        if !p.is_contiguous() {
            return Err(Error::msg(format!(
                "optimizer: parameter {i} {} is not contiguous",
                p.shape()
            )));
        }
        if !matches!(p.dtype(), crate::DType::F32 | crate::DType::F64) {
            return Err(Error::msg(format!(
                "optimizer: parameter {i} is {}; master weights must be f32 or f64",
                p.dtype()
            )));
        }
    }
    Ok(())
}

/// The gradient of `p` as f64 values, or None when backward gave it none.
pub(crate) fn grad_values(p: &Tensor) -> Result<Option<Vec<f64>>> {
    match p.grad() {
        None => Ok(None),
        Some(g) => Ok(Some(g.to_vec_f64()?)),
    }
}

/// Apply `f(index, param_value) -> new_value` in place, in the parameter's own dtype.
pub(crate) fn update_in_place(p: &Tensor, mut f: impl FnMut(usize, f64) -> f64) -> Result<()> {
    match p.dtype() {
        crate::DType::F32 => p.with_slice_mut(|w: &mut [f32]| {
            w.iter_mut()
                .enumerate()
                .for_each(|(i, v)| *v = f(i, *v as f64) as f32)
        }),
        _ => p.with_slice_mut(|w: &mut [f64]| {
            w.iter_mut().enumerate().for_each(|(i, v)| *v = f(i, *v))
        }),
    }
}

/// Clear every parameter's gradient.
pub fn zero_grad(params: &[Tensor]) {
    params.iter().for_each(|p| p.zero_grad());
}
