//! softmax / log_softmax along one dim: fused, max-subtracted kernels with analytic
//! backward rules computed from the saved output.
use super::{restore, split_at_dim, to_compute};
use crate::autograd::record;
use crate::backend::cpu::softmax::{softmax_backward_mid, softmax_mid};
use crate::{Error, Result, Tensor, dispatch_float};

impl Tensor {
    /// `exp(x) / Σ exp(x)` along `dim`.
    pub fn softmax(&self, dim: isize) -> Result<Tensor> {
        self.softmax_impl(dim, false)
    }

    /// `x - log Σ exp(x)` along `dim`, computed without forming the softmax.
    pub fn log_softmax(&self, dim: isize) -> Result<Tensor> {
        self.softmax_impl(dim, true)
    }

    fn softmax_impl(&self, dim: isize, log: bool) -> Result<Tensor> {
        let op = if log { "log_softmax" } else { "softmax" };
        let d = self.shape().resolve(op, dim)?;
        if !self.dtype().is_float() {
            return Err(Error::DType {
                op,
                msg: format!(
                    "expected a float tensor, got {} {}",
                    self.dtype(),
                    self.shape()
                ),
            });
        }
        let dtype = self.dtype();
        let x = to_compute(&self.detach())?;
        let (o, r, i) = split_at_dim(x.dims(), d);
        let out = dispatch_float!(x.dtype(), op, T => {
            let v = x.with_slice(|s: &[T]| softmax_mid(s, o, r, i, log))?;
            Tensor::from_vec(v, x.shape().clone())?
        });
        let out = restore(out, dtype)?;
        Ok(record(out, op, &[self], move |y, g| {
            let (y, g) = (to_compute(&y.detach())?, to_compute(g)?);
            let gi = dispatch_float!(y.dtype(), op, T => {
                let v = y.with_slice(|ys: &[T]| {
                    g.with_slice(|gs: &[T]| softmax_backward_mid(ys, gs, o, r, i, log))
                })??;
                Tensor::from_vec(v, y.shape().clone())?
            });
            Ok(vec![Some(restore(gi, dtype)?)])
        }))
    }
}
