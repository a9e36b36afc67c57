//! Cross-entropy, BCE-with-logits and MSE, mean-reduced like PyTorch's defaults.
use crate::{DType, Error, Result, Tensor};

/// Mean cross-entropy of `logits` [N, C] against integer `targets` [N] (i64).
pub fn cross_entropy(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    if logits.rank() != 2 || targets.rank() != 1 || targets.dims()[0] != logits.dims()[0] {
        return Err(Error::Shape {
            op: "cross_entropy",
            msg: format!(
                "logits {} and targets {} must be [N, C] and [N]",
                logits.shape(),
                targets.shape()
            ),
        });
    }
    if targets.dtype() != DType::I64 {
        return Err(Error::DType {
            op: "cross_entropy",
            msg: format!("targets must be i64, got {}", targets.dtype()),
        });
    }
    let c = logits.dims()[1];
    let onehot = targets.one_hot(c, logits.dtype())?;
    logits
        .log_softmax(1)?
        .mul(&onehot)?
        .sum_all()?
        .neg()?
        .div_scalar(logits.dims()[0].max(1) as f64)
}

/// Mean binary cross-entropy on logits, in the overflow-free form
/// max(x, 0) - x*y + log(1 + exp(-|x|)).
pub fn bce_with_logits(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    if logits.shape() != targets.shape() {
        return Err(Error::Shape {
            op: "bce_with_logits",
            msg: format!("logits {} vs targets {}", logits.shape(), targets.shape()),
        });
    }
    let l = logits
        .relu()?
        .sub(&logits.mul(targets)?)?
        .add(&logits.abs()?.neg()?.exp()?.add_scalar(1.0)?.log()?)?;
    l.mean_all()
}

/// Mean squared error.
pub fn mse(pred: &Tensor, target: &Tensor) -> Result<Tensor> {
    if pred.shape() != target.shape() {
        return Err(Error::Shape {
            op: "mse",
            msg: format!("pred {} vs target {}", pred.shape(), target.shape()),
        });
    }
    pred.sub(target)?.sqr()?.mean_all()
}
