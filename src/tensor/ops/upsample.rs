//! Resizing `[N, C, H, W]` to a given output size (torch.nn.functional.interpolate with
//! mode 'nearest' and 'bilinear').
use super::pool::planes_of;
use super::{restore, to_compute};
use crate::autograd::record;
use crate::backend::cpu::upsample as k;
use crate::{Error, Result, Tensor, dispatch_float};

fn check_sizes(op: &'static str, x: &Tensor, out: (usize, usize)) -> Result<(usize, usize, usize)> {
    let (planes, h, w) = planes_of(op, x)?;
    if out.0 == 0 || out.1 == 0 || h == 0 || w == 0 {
        return Err(Error::Shape {
            op,
            msg: format!(
                "output size {out:?} and input {} must be non-empty",
                x.shape()
            ),
        });
    }
    Ok((planes, h, w))
}

impl Tensor {
    /// Nearest-neighbour resize to `out` = (Ho, Wo) with torch's legacy 'nearest' rule
    /// `src = min(floor(dst·in/out), in-1)`.
    pub fn upsample_nearest2d(&self, out: (usize, usize)) -> Result<Tensor> {
        const OP: &str = "upsample_nearest2d";
        let (planes, h, w) = check_sizes(OP, self, out)?;
        let dtype = self.dtype();
        let x = to_compute(&self.detach())?;
        let (n, c) = (self.dims()[0], self.dims()[1]);
        let res = dispatch_float!(x.dtype(), OP, T => {
            let v = x.with_slice(|s: &[T]| k::upsample_nearest2d(s, planes, (h, w), out))?;
            Tensor::from_vec(v, [n, c, out.0, out.1])?
        });
        let res = restore(res, dtype)?;
        let in_shape = self.shape().clone();
        Ok(record(res, OP, &[self], move |_, gy| {
            let gc = to_compute(gy)?;
            let gx = dispatch_float!(gc.dtype(), OP, T => {
                let v = gc.with_slice(|s: &[T]| k::upsample_nearest2d_backward(s, planes, (h, w), out))?;
                Tensor::from_vec(v, in_shape.clone())?
            });
            Ok(vec![Some(restore(gx, dtype)?)])
        }))
    }

    /// Bilinear resize to `out` = (Ho, Wo). `align_corners=false` samples at
    /// `(dst+0.5)·in/out - 0.5` (clamped at 0); `true` at `dst·(in-1)/(out-1)`, as in torch.
    pub fn upsample_bilinear2d(&self, out: (usize, usize), align_corners: bool) -> Result<Tensor> {
        const OP: &str = "upsample_bilinear2d";
        let (planes, h, w) = check_sizes(OP, self, out)?;
        let dtype = self.dtype();
        let x = to_compute(&self.detach())?;
        let (n, c) = (self.dims()[0], self.dims()[1]);
        let res = dispatch_float!(x.dtype(), OP, T => {
            let v = x.with_slice(|s: &[T]| k::upsample_bilinear2d(s, planes, (h, w), out, align_corners))?;
            Tensor::from_vec(v, [n, c, out.0, out.1])?
        });
        let res = restore(res, dtype)?;
        let in_shape = self.shape().clone();
        Ok(record(res, OP, &[self], move |_, gy| {
            let gc = to_compute(gy)?;
            let gx = dispatch_float!(gc.dtype(), OP, T => {
                let v = gc.with_slice(|s: &[T]| {
                    k::upsample_bilinear2d_backward(s, planes, (h, w), out, align_corners)
                })?;
                Tensor::from_vec(v, in_shape.clone())?
            });
            Ok(vec![Some(restore(gx, dtype)?)])
        }))
    }
}
