//! Reductions over dims: sum, mean, max/min (+arg), var.
use super::{restore, to_compute};
use crate::autograd::record;
use crate::backend::cpu::reduce::{arg_extreme_mid, sum_mid};
use crate::{Result, Shape, Tensor, dispatch_float};

/// [outer, red, inner] split of `dims` around dim `d`.
fn split(dims: &[usize], d: usize) -> (usize, usize, usize) {
    (
        dims[..d].iter().product(),
        dims[d],
        dims[d + 1..].iter().product(),
    )
}

fn kept_shape(dims: &[usize], reduced: &[usize], keepdim: bool) -> Shape {
    let mut v = Vec::new();
    for (i, &s) in dims.iter().enumerate() {
        if reduced.contains(&i) {
            if keepdim {
                v.push(1);
            }
        } else {
            v.push(s);
        }
    }
    Shape::new(v)
}

impl Tensor {
    /// Sum over `dims` (negative dims count from the end).
    pub fn sum(&self, dims: &[isize], keepdim: bool) -> Result<Tensor> {
        let ds = self.shape().resolve_many("sum", dims)?;
        let dtype = self.dtype();
        let mut x = to_compute(&self.detach())?;
        let mut sorted = ds.clone();
        sorted.sort_unstable();
        for &d in sorted.iter().rev() {
            let (o, r, i) = split(x.dims(), d);
            let mut shape = x.dims().to_vec();
            shape[d] = 1;
            x = dispatch_float!(x.dtype(), "sum", T => {
                let v = x.with_slice(|s: &[T]| sum_mid(s, o, r, i))?;
                Tensor::from_vec(v, shape)?
            });
        }
        let out = restore(x.reshape(kept_shape(self.dims(), &ds, keepdim))?, dtype)?;
        let (in_shape, kshape) = (self.shape().clone(), kept_shape(self.dims(), &ds, true));
        Ok(record(out, "sum", &[self], move |_, g| {
            Ok(vec![Some(
                g.reshape(kshape.clone())?.expand(in_shape.clone())?,
            )])
        }))
    }

    /// Sum of all elements (0-d result).
    pub fn sum_all(&self) -> Result<Tensor> {
        let dims: Vec<isize> = (0..self.rank() as isize).collect();
        self.sum(&dims, false)
    }

    pub fn mean(&self, dims: &[isize], keepdim: bool) -> Result<Tensor> {
        let ds = self.shape().resolve_many("mean", dims)?;
        let n: usize = ds.iter().map(|&d| self.dims()[d]).product();
        self.sum(dims, keepdim)?.div_scalar(n.max(1) as f64)
    }

    pub fn mean_all(&self) -> Result<Tensor> {
        let n = self.elem_count().max(1);
        self.sum_all()?.div_scalar(n as f64)
    }

    /// Variance over `dims`; `unbiased` divides by n-1 (torch's default correction=1).
    pub fn var(&self, dims: &[isize], unbiased: bool, keepdim: bool) -> Result<Tensor> {
        let ds = self.shape().resolve_many("var", dims)?;
        let n: usize = ds.iter().map(|&d| self.dims()[d]).product();
        let mu = self.mean(dims, true)?;
        let d = self.sub(&mu)?;
        let denom = if unbiased { n.saturating_sub(1) } else { n };
        d.sqr()?.sum(dims, keepdim)?.div_scalar(denom as f64)
    }

    fn extreme(&self, dim: isize, keepdim: bool, max: bool) -> Result<(Tensor, Tensor)> {
        let op = if max { "max" } else { "min" };
        let d = self.shape().resolve(op, dim)?;
        if self.dims()[d] == 0 {
            return Err(crate::Error::Shape {
                op,
                msg: format!("cannot reduce empty dim {dim} of {}", self.shape()),
            });
        }
        let dtype = self.dtype();
        let x = to_compute(&self.detach())?;
        let (o, r, i) = split(x.dims(), d);
        let kshape = kept_shape(self.dims(), &[d], keepdim);
        let (vals, idx) = dispatch_float!(x.dtype(), op, T => {
            let (v, ix) = x.with_slice(|s: &[T]| arg_extreme_mid(s, o, r, i, max))?;
            (Tensor::from_vec(v, kshape.clone())?, Tensor::from_vec(ix, kshape.clone())?)
        });
        let vals = restore(vals, dtype)?;
        let (in_shape, idx_c) = (self.shape().clone(), idx.clone());
        let vals = record(vals, op, &[self], move |_, g| {
            // Route each gradient to the index the forward picked.
            let gv = to_compute(g)?;
            let ix = idx_c.to_vec::<i64>()?;
            let gi = dispatch_float!(gv.dtype(), "max_backward", T => {
                let gs = gv.to_vec::<T>()?;
                let mut out = vec![<T as crate::tensor::Float>::ZERO; o * r * i];
                for a in 0..o {
                    for b in 0..i {
                        out[(a * r + ix[a * i + b] as usize) * i + b] = gs[a * i + b];
                    }
                }
                Tensor::from_vec(out, in_shape.clone())?
            });
            Ok(vec![Some(restore(gi, g.dtype())?)])
        });
        Ok((vals, idx))
    }

    /// Max along `dim` and the index of the first maximum (i64).
    pub fn max_with_index(&self, dim: isize, keepdim: bool) -> Result<(Tensor, Tensor)> {
        self.extreme(dim, keepdim, true)
    }
    pub fn min_with_index(&self, dim: isize, keepdim: bool) -> Result<(Tensor, Tensor)> {
        self.extreme(dim, keepdim, false)
    }
    pub fn max(&self, dim: isize, keepdim: bool) -> Result<Tensor> {
        Ok(self.extreme(dim, keepdim, true)?.0)
    }
    pub fn min(&self, dim: isize, keepdim: bool) -> Result<Tensor> {
        Ok(self.extreme(dim, keepdim, false)?.0)
    }
    pub fn argmax(&self, dim: isize, keepdim: bool) -> Result<Tensor> {
        Ok(self.extreme(dim, keepdim, true)?.1)
    }
    pub fn argmin(&self, dim: isize, keepdim: bool) -> Result<Tensor> {
        Ok(self.extreme(dim, keepdim, false)?.1)
    }
    /// Largest element (0-d).
    pub fn max_all(&self) -> Result<Tensor> {
        self.flatten(0, -1)?.max(0, false)
    }
    pub fn min_all(&self) -> Result<Tensor> {
        self.flatten(0, -1)?.min(0, false)
    }
}
