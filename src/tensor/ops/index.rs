//! Indexing by i64 index tensors: gather, index_select, scatter_add, index_add, one_hot.
//! Every index value is checked before a kernel runs; a bad one is reported with its
//! position. Gather and index_select only move data (any dtype); the adds are float ops.
use super::{restore, split_at_dim, to_compute};
use crate::autograd::record;
use crate::backend::cpu::index as k;
use crate::{DType, Error, Result, Shape, Tensor, dispatch_float};

/// The index values of an i64 tensor (row-major).
fn index_values(op: &'static str, index: &Tensor) -> Result<Vec<i64>> {
    if index.dtype() != DType::I64 {
        return Err(Error::DType {
            op,
            msg: format!("index must be i64, got {} {}", index.dtype(), index.shape()),
        });
    }
    index.to_vec::<i64>()
}

/// Err naming the first index outside `0..bound`, with its position in the index tensor.
fn check_range(
    op: &'static str,
    idx: &[i64],
    idx_shape: &Shape,
    bound: usize,
    what: &str,
) -> Result<()> {
    let Some(flat) = idx.iter().position(|&v| v < 0 || v as u64 >= bound as u64) else {
        return Ok(());
    };
    let mut pos = vec![0usize; idx_shape.rank()];
    let mut rem = flat;
    for d in (0..pos.len()).rev() {
        pos[d] = rem % idx_shape.dims()[d];
        rem /= idx_shape.dims()[d];
    }
    Err(Error::Index {
        op,
        msg: format!(
            "index {} at position {pos:?} is out of range 0..{bound} for {what}",
            idx[flat]
        ),
    })
}

fn float_dtype(op: &'static str, t: &Tensor) -> Result<()> {
    if !t.dtype().is_float() {
        return Err(Error::DType {
            op,
            msg: format!("expected a float tensor, got {} {}", t.dtype(), t.shape()),
        });
    }
    Ok(())
}

impl Tensor {
    /// torch.gather: `out[p] = self[p with p[dim] = index[p]]`. `index` (i64) has the
    /// rank of `self`, no dim larger than self's except along `dim`; out has its shape.
    pub fn gather(&self, dim: isize, index: &Tensor) -> Result<Tensor> {
        let d = self.shape().resolve("gather", dim)?;
        let fits = index.rank() == self.rank()
            && (0..self.rank()).all(|k| k == d || index.dims()[k] <= self.dims()[k]);
        if !fits {
            return Err(Error::Shape {
                op: "gather",
                msg: format!(
                    "index {} does not fit input {} (same rank, no larger dim except {d})",
                    index.shape(),
                    self.shape()
                ),
            });
        }
        let idx = index_values("gather", index)?;
        let what = format!("dim {d} of input {}", self.shape());
        check_range("gather", &idx, index.shape(), self.dims()[d], &what)?;
        let out = dispatch_any!(self.dtype(), T => {
            let v = self.with_slice(|s: &[T]| k::gather(s, self.dims(), &idx, index.dims(), d))?;
            Tensor::from_vec(v, index.shape().clone())?
        });
        let (in_shape, ix) = (self.shape().clone(), index.detach());
        Ok(record(out, "gather", &[self], move |_, g| {
            let z = Tensor::zeros(in_shape.clone(), g.dtype());
            Ok(vec![Some(z.scatter_add(d as isize, &ix, g)?)])
        }))
    }

    /// The slices `index[0], index[1], ...` (1-D i64) along `dim`, in that order.
    pub fn index_select(&self, dim: isize, index: &Tensor) -> Result<Tensor> {
        let d = self.shape().resolve("index_select", dim)?;
        if index.rank() != 1 {
            return Err(Error::Shape {
                op: "index_select",
                msg: format!("index must be 1-D, got {}", index.shape()),
            });
        }
        let idx = index_values("index_select", index)?;
        let what = format!("dim {d} of input {}", self.shape());
        check_range("index_select", &idx, index.shape(), self.dims()[d], &what)?;
        let (o, n, i) = split_at_dim(self.dims(), d);
        let mut shape = self.dims().to_vec();
        shape[d] = idx.len();
        let out = dispatch_any!(self.dtype(), T => {
            let v = self.with_slice(|s: &[T]| k::index_select(s, o, n, i, &idx))?;
            Tensor::from_vec(v, shape)?
        });
        let (in_shape, ix) = (self.shape().clone(), index.detach());
        Ok(record(out, "index_select", &[self], move |_, g| {
            let z = Tensor::zeros(in_shape.clone(), g.dtype());
            Ok(vec![Some(z.index_add(d as isize, &ix, g)?)])
        }))
    }

    /// `self` with slice `k` of `src` added to slice `index[k]` along `dim` (repeats
    /// accumulate). `src` has self's shape except `index.len()` along `dim`.
    pub fn index_add(&self, dim: isize, index: &Tensor, src: &Tensor) -> Result<Tensor> {
        let d = self.shape().resolve("index_add", dim)?;
        float_dtype("index_add", self)?;
        if src.dtype() != self.dtype() {
            return Err(Error::DType {
                op: "index_add",
                msg: format!("src is {}, self is {}", src.dtype(), self.dtype()),
            });
        }
        let mut want = self.dims().to_vec();
        if index.rank() == 1 {
            want[d] = index.dims()[0];
        }
        if index.rank() != 1 || src.dims() != want.as_slice() {
            return Err(Error::Shape {
                op: "index_add",
                msg: format!(
                    "index {} (must be 1-D) and src {} do not fit self {} along dim {d}",
                    index.shape(),
                    src.shape(),
                    self.shape()
                ),
            });
        }
        let idx = index_values("index_add", index)?;
        let what = format!("dim {d} of self {}", self.shape());
        check_range("index_add", &idx, index.shape(), self.dims()[d], &what)?;
        let (o, n, i) = split_at_dim(self.dims(), d);
        let dtype = self.dtype();
        let (xc, sc) = (to_compute(&self.detach())?, to_compute(&src.detach())?);
        let out = dispatch_float!(xc.dtype(), "index_add", T => {
            let mut v = xc.to_vec::<T>()?;
            sc.with_slice(|s: &[T]| k::index_add(&mut v, o, n, i, &idx, s))?;
            Tensor::from_vec(v, self.shape().clone())?
        });
        let out = restore(out, dtype)?;
        let ix = index.detach();
        Ok(record(out, "index_add", &[self, src], move |_, g| {
            Ok(vec![
                Some(g.clone()),
                Some(g.index_select(d as isize, &ix)?),
            ])
        }))
    }

    /// torch.scatter_add: `self` with `src[p]` added at `p with p[dim] = index[p]` for
    /// every position `p` of `index`. index, src and self share a rank; index is no larger
    /// than src in any dim and no larger than self except along `dim`.
    pub fn scatter_add(&self, dim: isize, index: &Tensor, src: &Tensor) -> Result<Tensor> {
        let d = self.shape().resolve("scatter_add", dim)?;
        float_dtype("scatter_add", self)?;
        if src.dtype() != self.dtype() {
            return Err(Error::DType {
                op: "scatter_add",
                msg: format!("src is {}, self is {}", src.dtype(), self.dtype()),
            });
        }
        let r = self.rank();
        let fits = index.rank() == r
            && src.rank() == r
            && (0..r).all(|k| {
                index.dims()[k] <= src.dims()[k] && (k == d || index.dims()[k] <= self.dims()[k])
            });
        if !fits {
            return Err(Error::Shape {
                op: "scatter_add",
                msg: format!(
                    "index {} does not fit src {} and self {} along dim {d}",
                    index.shape(),
                    src.shape(),
                    self.shape()
                ),
            });
        }
        let idx = index_values("scatter_add", index)?;
        let what = format!("dim {d} of self {}", self.shape());
        check_range("scatter_add", &idx, index.shape(), self.dims()[d], &what)?;
        let dtype = self.dtype();
        let (xc, sc) = (to_compute(&self.detach())?, to_compute(&src.detach())?);
        let out = dispatch_float!(xc.dtype(), "scatter_add", T => {
            let mut v = xc.to_vec::<T>()?;
            sc.with_slice(|s: &[T]| {
                k::scatter_add(&mut v, self.dims(), &idx, index.dims(), s, src.dims(), d)
            })?;
            Tensor::from_vec(v, self.shape().clone())?
        });
        let out = restore(out, dtype)?;
        let (ix, src_shape) = (index.detach(), src.shape().clone());
        let gsrc = src.tracks_grad();
        Ok(record(out, "scatter_add", &[self, src], move |_, g| {
            let gs = if gsrc {
                // src gets the gradient at the positions it was read from, zero elsewhere.
                let picked = g.gather(d as isize, &ix)?;
                if picked.shape() == &src_shape {
                    Some(picked)
                } else {
                    let z = Tensor::zeros(src_shape.clone(), g.dtype());
                    let mut view = z.clone();
                    for (k, &n) in ix.dims().iter().enumerate() {
                        view = view.narrow(k as isize, 0, n)?;
                    }
                    view.assign(&picked)?;
                    Some(z)
                }
            } else {
                None
            };
            Ok(vec![Some(g.clone()), gs])
        }))
    }

    /// One-hot encoding of an i64 tensor: a new last dim of `num_classes`, 1 at each value.
    pub fn one_hot(&self, num_classes: usize, dtype: DType) -> Result<Tensor> {
        let idx = index_values("one_hot", self)?;
        check_range("one_hot", &idx, self.shape(), num_classes, "the classes")?;
        let mut v = vec![0u8; idx.len() * num_classes];
        for (p, &c) in idx.iter().enumerate() {
            v[p * num_classes + c as usize] = 1;
        }
        let mut shape = self.dims().to_vec();
        shape.push(num_classes);
        Tensor::from_vec(v, shape)?.to_dtype(dtype)
    }
}
