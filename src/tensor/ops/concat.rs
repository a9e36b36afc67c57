//! Joining and splitting along a dim: cat, stack (copies), split, chunk (views). They
//! only move data, so every dtype works.
use super::split_at_dim;
use crate::autograd::record;
use crate::backend::cpu::index::copy_block;
use crate::{Error, Result, Tensor};

impl Tensor {
    /// Concatenate along `dim`; all other dims and the dtype must match.
    pub fn cat(ts: &[&Tensor], dim: isize) -> Result<Tensor> {
        let Some(first) = ts.first() else {
            return Err(Error::Shape {
                op: "cat",
                msg: "no tensors to concatenate".into(),
            });
        };
        let d = first.shape().resolve("cat", dim)?;
        for (i, t) in ts.iter().enumerate() {
            if t.dtype() != first.dtype() {
                return Err(Error::DType {
                    op: "cat",
                    msg: format!(
                        "tensor {i} is {} {}, tensor 0 is {} {}",
                        t.dtype(),
                        t.shape(),
                        first.dtype(),
                        first.shape()
                    ),
                });
            }
            let fits = t.rank() == first.rank()
                && (0..t.rank()).all(|k| k == d || t.dims()[k] == first.dims()[k]);
            if !fits {
                return Err(Error::Shape {
                    op: "cat",
                    msg: format!(
                        "tensor {i} has shape {}, tensor 0 has {}: all dims but {d} must match",
                        t.shape(),
                        first.shape()
                    ),
                });
            }
        }
        let sizes: Vec<usize> = ts.iter().map(|t| t.dims()[d]).collect();
        let mut shape = first.dims().to_vec();
        shape[d] = sizes.iter().sum();
        let (outer, total, inner) = split_at_dim(&shape, d);
        let width = total * inner;
        let out = dispatch_any!(first.dtype(), T => {
            let mut v = vec![T::default(); outer * width];
            let mut col = 0;
            for (t, &s) in ts.iter().zip(&sizes) {
                t.with_slice(|x: &[T]| copy_block(&mut v, width, col, x, s * inner))?;
                col += s * inner;
            }
            Tensor::from_vec(v, shape)?
        });
        Ok(record(out, "cat", ts, move |_, g| {
            let mut start = 0;
            let mut grads = Vec::with_capacity(sizes.len());
            for &s in &sizes {
                grads.push(Some(g.narrow(d as isize, start, s)?));
                start += s;
            }
            Ok(grads)
        }))
    }

    /// Stack equal-shaped tensors along a new dim `dim` (0..=rank; negative counts from
    /// the end, -1 appends).
    pub fn stack(ts: &[&Tensor], dim: isize) -> Result<Tensor> {
        let Some(first) = ts.first() else {
            return Err(Error::Shape {
                op: "stack",
                msg: "no tensors to stack".into(),
            });
        };
        if let Some((i, t)) = ts
            .iter()
            .enumerate()
            .find(|(_, t)| t.shape() != first.shape())
        {
            return Err(Error::Shape {
                op: "stack",
                msg: format!(
                    "tensor {i} has shape {}, tensor 0 has {}: all must match",
                    t.shape(),
                    first.shape()
                ),
            });
        }
        let r = first.rank() as isize;
        if dim < -(r + 1) || dim > r {
            return Err(Error::Index {
                op: "stack",
                msg: format!("dim {dim} out of range for stacking {}", first.shape()),
            });
        }
        let d = if dim < 0 { dim + r + 1 } else { dim };
        let us: Vec<Tensor> = ts.iter().map(|t| t.unsqueeze(d)).collect::<Result<_>>()?;
        let refs: Vec<&Tensor> = us.iter().collect();
        Tensor::cat(&refs, d)
    }

    /// Views of consecutive pieces of `sizes[i]` elements along `dim` (sizes must sum to
    /// the dim's size).
    pub fn split(&self, sizes: &[usize], dim: isize) -> Result<Vec<Tensor>> {
        let d = self.shape().resolve("split", dim)?;
        let n = self.dims()[d];
        let total: usize = sizes.iter().sum();
        if total != n {
            return Err(Error::Shape {
                op: "split",
                msg: format!(
                    "sizes {sizes:?} sum to {total}, but dim {dim} of {} has size {n}",
                    self.shape()
                ),
            });
        }
        let mut start = 0;
        let mut out = Vec::with_capacity(sizes.len());
        for &s in sizes {
            out.push(self.narrow(d as isize, start, s)?);
            start += s;
        }
        Ok(out)
    }

    /// torch.chunk: pieces of ceil(size / n) along `dim`, the last one smaller; fewer than
    /// `n` pieces when the size does not fill them (an empty dim gives one empty piece).
    pub fn chunk(&self, n: usize, dim: isize) -> Result<Vec<Tensor>> {
        let d = self.shape().resolve("chunk", dim)?;
        if n == 0 {
            return Err(Error::Shape {
                op: "chunk",
                msg: format!("cannot split {} into 0 chunks", self.shape()),
            });
        }
        let size = self.dims()[d];
        if size == 0 {
            return Ok(vec![self.narrow(d as isize, 0, 0)?]);
        }
        let step = size.div_ceil(n);
        let sizes: Vec<usize> = (0..size)
            .step_by(step)
            .map(|s| step.min(size - s))
            .collect();
        self.split(&sizes, d as isize)
    }
}

/// The gradient of a narrow: `g` placed at `start` along dim `d` of a zero tensor of shape
/// `full`, written in one pass (each row: zeros, g's values, zeros).
pub(crate) fn pad_along(g: &Tensor, full: &crate::Shape, d: usize, start: usize) -> Result<Tensor> {
    let (outer, total, inner) = split_at_dim(full.dims(), d);
    let len = g.dims()[d];
    let (w, lo) = (total * inner, start * inner);
    let hi = lo + len * inner;
    dispatch_any!(g.dtype(), T => {
        let v = g.with_slice(|src: &[T]| {
            let mut v: Vec<T> = Vec::with_capacity(outer * w);
            for o in 0..outer {
                v.resize(o * w + lo, T::default());
                v.extend_from_slice(&src[o * (hi - lo)..(o + 1) * (hi - lo)]);
                v.resize((o + 1) * w, T::default());
            }
            v
        })?;
        Tensor::from_vec(v, full.clone())
    })
}
