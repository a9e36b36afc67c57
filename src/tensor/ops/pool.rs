//! 2-D pooling on `[N, C, H, W]` (PyTorch semantics, floor mode).
use super::{restore, to_compute};
use crate::autograd::record;
use crate::backend::cpu::pool::{self, PoolGeom};
use crate::{Error, Result, Tensor, dispatch_float};

/// Checks a 4-D float input and returns (N·C planes, H, W).
pub(crate) fn planes_of(op: &'static str, x: &Tensor) -> Result<(usize, usize, usize)> {
    if x.rank() != 4 {
        return Err(Error::Shape {
            op,
            msg: format!("expected input [N, C, H, W], got {}", x.shape()),
        });
    }
    if !x.dtype().is_float() {
        return Err(Error::DType {
            op,
            msg: format!("expected a float input, got {} {}", x.dtype(), x.shape()),
        });
    }
    let d = x.dims();
    Ok((d[0] * d[1], d[2], d[3]))
}

fn pool_geom(
    op: &'static str,
    x: &Tensor,
    kernel: (usize, usize),
    stride: (usize, usize),
    pad: (usize, usize),
) -> Result<(usize, PoolGeom)> {
    let (planes, h, w) = planes_of(op, x)?;
    let bad = |msg: String| Error::Shape { op, msg };
    if kernel.0 == 0 || kernel.1 == 0 || stride.0 == 0 || stride.1 == 0 {
        return Err(bad(format!(
            "kernel {kernel:?} and stride {stride:?} must be positive (input {})",
            x.shape()
        )));
    }
    // torch's rule: padding beyond half the kernel would allow all-padding windows.
    if pad.0 > kernel.0 / 2 || pad.1 > kernel.1 / 2 {
        return Err(bad(format!(
            "padding {pad:?} must be at most half of kernel {kernel:?} (input {})",
            x.shape()
        )));
    }
    let (hp, wp) = (h + 2 * pad.0, w + 2 * pad.1);
    if kernel.0 > hp || kernel.1 > wp {
        return Err(bad(format!(
            "kernel {kernel:?} is larger than the padded input {hp}x{wp} of input {}",
            x.shape()
        )));
    }
    Ok((
        planes,
        PoolGeom {
            h,
            w,
            ho: (hp - kernel.0) / stride.0 + 1,
            wo: (wp - kernel.1) / stride.1 + 1,
            kernel,
            stride,
            pad,
        },
    ))
}

impl Tensor {
    /// Max pooling of `[N, C, H, W]` (padding acts as -inf, floor mode). The gradient goes to
    /// the first maximum of each window.
    pub fn max_pool2d(
        &self,
        kernel: (usize, usize),
        stride: (usize, usize),
        padding: (usize, usize),
    ) -> Result<Tensor> {
        const OP: &str = "max_pool2d";
        let (planes, g) = pool_geom(OP, self, kernel, stride, padding)?;
        let dtype = self.dtype();
        let x = to_compute(&self.detach())?;
        let (n, c) = (self.dims()[0], self.dims()[1]);
        if !crate::autograd::grad_enabled() || !self.tracks_grad() {
            // Nothing will ask for the gradient: values only, separably.
            let out = dispatch_float!(x.dtype(), OP, T => {
                let v = x.with_slice(|s: &[T]| pool::max_pool2d_values(s, planes, &g))?;
                Tensor::from_vec(v, [n, c, g.ho, g.wo])?
            });
            return restore(out, dtype);
        }
        let (out, idx) = dispatch_float!(x.dtype(), OP, T => {
            let (v, idx) = x.with_slice(|s: &[T]| pool::max_pool2d(s, planes, &g))?;
            (Tensor::from_vec(v, [n, c, g.ho, g.wo])?, idx)
        });
        let out = restore(out, dtype)?;
        let in_shape = self.shape().clone();
        Ok(record(out, OP, &[self], move |_, gy| {
            let gc = to_compute(gy)?;
            let gx = dispatch_float!(gc.dtype(), OP, T => {
                let v = gc.with_slice(|s: &[T]| pool::max_pool2d_backward(s, &idx, planes, &g))?;
                Tensor::from_vec(v, in_shape.clone())?
            });
            Ok(vec![Some(restore(gx, dtype)?)])
        }))
    }

    /// Average pooling of `[N, C, H, W]`, floor mode, zero padding counted in the divisor
    /// (torch's default count_include_pad=true).
    pub fn avg_pool2d(
        &self,
        kernel: (usize, usize),
        stride: (usize, usize),
        padding: (usize, usize),
    ) -> Result<Tensor> {
        const OP: &str = "avg_pool2d";
        let (planes, g) = pool_geom(OP, self, kernel, stride, padding)?;
        let dtype = self.dtype();
        let x = to_compute(&self.detach())?;
        let (n, c) = (self.dims()[0], self.dims()[1]);
        let out = dispatch_float!(x.dtype(), OP, T => {
            let v = x.with_slice(|s: &[T]| pool::avg_pool2d(s, planes, &g))?;
            Tensor::from_vec(v, [n, c, g.ho, g.wo])?
        });
        let out = restore(out, dtype)?;
        let in_shape = self.shape().clone();
        Ok(record(out, OP, &[self], move |_, gy| {
            let gc = to_compute(gy)?;
            let gx = dispatch_float!(gc.dtype(), OP, T => {
                let v = gc.with_slice(|s: &[T]| pool::avg_pool2d_backward(s, planes, &g))?;
                Tensor::from_vec(v, in_shape.clone())?
            });
            Ok(vec![Some(restore(gx, dtype)?)])
        }))
    }

    /// Adaptive average pooling to `out` = (Ho, Wo): output `i` averages input
    /// `[floor(i·H/Ho), ceil((i+1)·H/Ho))` (likewise along W), as in torch.
    pub fn adaptive_avg_pool2d(&self, out: (usize, usize)) -> Result<Tensor> {
        const OP: &str = "adaptive_avg_pool2d";
        let (planes, h, w) = planes_of(OP, self)?;
        if out.0 == 0 || out.1 == 0 || h == 0 || w == 0 {
            return Err(Error::Shape {
                op: OP,
                msg: format!(
                    "output size {out:?} and input {} must be non-empty",
                    self.shape()
                ),
            });
        }
        let dtype = self.dtype();
        let x = to_compute(&self.detach())?;
        let (n, c) = (self.dims()[0], self.dims()[1]);
        let res = dispatch_float!(x.dtype(), OP, T => {
            let v = x.with_slice(|s: &[T]| pool::adaptive_avg_pool2d(s, planes, (h, w), out))?;
            Tensor::from_vec(v, [n, c, out.0, out.1])?
        });
        let res = restore(res, dtype)?;
        let in_shape = self.shape().clone();
        Ok(record(res, OP, &[self], move |_, gy| {
            let gc = to_compute(gy)?;
            let gx = dispatch_float!(gc.dtype(), OP, T => {
                let v = gc.with_slice(|s: &[T]| pool::adaptive_avg_pool2d_backward(s, planes, (h, w), out))?;
                Tensor::from_vec(v, in_shape.clone())?
            });
            Ok(vec![Some(restore(gx, dtype)?)])
        }))
    }
}
