//! Ordering ops along one dim: sort (stable), topk (sorted, ties to the lower index) and
//! cumsum. Sorted values are differentiable: the gradient goes back to the source indices.
use super::{restore, split_at_dim, to_compute};
use crate::autograd::record;
use crate::backend::cpu::sort::{cumsum_mid, sort_mid};
use crate::{DType, Result, Tensor, dispatch_float};

impl Tensor {
    /// Values sorted along `dim` and their source indices (i64). Stable: equal values keep
    /// their order. NaN sorts above every number.
    pub fn sort(&self, dim: isize, descending: bool) -> Result<(Tensor, Tensor)> {
        let d = self.shape().resolve("sort", dim)?;
        self.sorted_prefix("sort", d, self.dims()[d], descending)
    }

    /// The `k` largest (or smallest) values along `dim`, sorted, with their indices (i64);
    /// among equal values the lower index comes first.
    pub fn topk(&self, k: usize, dim: isize, largest: bool) -> Result<(Tensor, Tensor)> {
        let d = self.shape().resolve("topk", dim)?;
        if k > self.dims()[d] {
            return Err(crate::Error::Index {
                op: "topk",
                msg: format!(
                    "k = {k} is larger than dim {dim} (size {}) of {}",
                    self.dims()[d],
                    self.shape()
                ),
            });
        }
        self.sorted_prefix("topk", d, k, largest)
    }

    /// The first `k` of each lane along `d` in sorted order.
    fn sorted_prefix(
        &self,
        op: &'static str,
        d: usize,
        k: usize,
        desc: bool,
    ) -> Result<(Tensor, Tensor)> {
        let (o, r, i) = split_at_dim(self.dims(), d);
        let mut shape = self.dims().to_vec();
        shape[d] = k;
        let (vals, idx) = dispatch_any!(self.dtype(), T => {
            let (v, ix) = self.with_slice(|s: &[T]| sort_mid(s, o, r, i, k, desc))?;
            (Tensor::from_vec(v, shape.clone())?, Tensor::from_vec(ix, shape)?)
        });
        let (in_shape, ix) = (self.shape().clone(), idx.clone());
        let vals = record(vals, op, &[self], move |_, g| {
            let z = Tensor::zeros(in_shape.clone(), g.dtype());
            Ok(vec![Some(z.scatter_add(d as isize, &ix, g)?)])
        });
        Ok((vals, idx))
    }

    /// Running sum along `dim`. Floats keep their dtype (f16/bf16 sum in f32); integer
    /// tensors sum in i64 (as in PyTorch), wrapping on overflow.
    pub fn cumsum(&self, dim: isize) -> Result<Tensor> {
        let d = self.shape().resolve("cumsum", dim)?;
        self.cumsum_impl(d, false)
    }

    fn cumsum_impl(&self, d: usize, reverse: bool) -> Result<Tensor> {
        let (o, r, i) = split_at_dim(self.dims(), d);
        if !self.dtype().is_float() {
            let x = self.to_dtype(DType::I64)?;
            let v = x.with_slice(|s: &[i64]| cumsum_mid(s, o, r, i, reverse, i64::wrapping_add))?;
            return Tensor::from_vec(v, self.shape().clone());
        }
        let dtype = self.dtype();
        let x = to_compute(&self.detach())?;
        let out = dispatch_float!(x.dtype(), "cumsum", T => {
            let v = x.with_slice(|s: &[T]| cumsum_mid(s, o, r, i, reverse, |a: T, b: T| a + b))?;
            Tensor::from_vec(v, x.shape().clone())?
        });
        let out = restore(out, dtype)?;
        // Each input feeds every later output, so its gradient is the reversed running sum.
        Ok(record(out, "cumsum", &[self], move |_, g| {
            Ok(vec![Some(g.cumsum_impl(d, !reverse)?)])
        }))
    }
}
