//! Views: new layouts over the same storage, no copies (reshape copies only when the
//! layout cannot be reshaped in place, like torch.reshape). Each records its backward.
use super::{Layout, Shape, Tensor};
use crate::autograd::record;
use crate::{Error, Result};

impl Tensor {
    /// Same elements, new shape (element count must match). A view when contiguous.
    pub fn reshape(&self, shape: impl Into<Shape>) -> Result<Tensor> {
        let shape = shape.into();
        if shape.elem_count() != self.elem_count() {
            return Err(Error::Shape {
                op: "reshape",
                msg: format!(
                    "cannot reshape {} ({} elements) to {} ({} elements)",
                    self.shape(),
                    self.elem_count(),
                    shape,
                    shape.elem_count()
                ),
            });
        }
        let src = self.contiguous()?;
        let layout = Layout {
            strides: shape.contiguous_strides(),
            shape,
            offset: src.layout().offset,
        };
        let out = src.view_with(layout, None);
        let in_shape = self.shape().clone();
        Ok(record(out, "reshape", &[&src], move |_, g| {
            Ok(vec![Some(g.reshape(in_shape.clone())?)])
        }))
    }

    /// Reshape with at most one `-1` dim inferred from the element count.
    pub fn reshape_infer(&self, dims: &[isize]) -> Result<Tensor> {
        let known: usize = dims
            .iter()
            .filter(|&&d| d >= 0)
            .map(|&d| d as usize)
            .product();
        let infer = dims.iter().filter(|&&d| d < 0).count();
        if infer > 1
            || dims.iter().any(|&d| d < -1)
            || (infer == 1 && (known == 0 || !self.elem_count().is_multiple_of(known)))
        {
            return Err(Error::Shape {
                op: "reshape",
                msg: format!("cannot reshape {} to {dims:?}", self.shape()),
            });
        }
        let v: Vec<usize> = dims
            .iter()
            .map(|&d| {
                if d < 0 {
                    self.elem_count() / known.max(1)
                } else {
                    d as usize
                }
            })
            .collect();
        self.reshape(v)
    }

    /// Merge dims `start..=end` into one.
    pub fn flatten(&self, start: isize, end: isize) -> Result<Tensor> {
        if self.rank() == 0 {
            return self.reshape(1);
        }
        let s = self.shape().resolve("flatten", start)?;
        let e = self.shape().resolve("flatten", end)?;
        if s > e {
            return Err(Error::Index {
                op: "flatten",
                msg: format!("start {start} after end {end} for {}", self.shape()),
            });
        }
        let d = self.dims();
        let mut v = d[..s].to_vec();
        v.push(d[s..=e].iter().product());
        v.extend_from_slice(&d[e + 1..]);
        self.reshape(v)
    }

    /// Reorder dims: output dim i is input dim `perm[i]`.
    pub fn permute(&self, perm: &[usize]) -> Result<Tensor> {
        let r = self.rank();
        let mut seen = vec![false; r];
        if perm.len() != r
            || perm
                .iter()
                .any(|&p| p >= r || std::mem::replace(&mut seen[p], true))
        {
            return Err(Error::Index {
                op: "permute",
                msg: format!(
                    "{perm:?} is not a permutation of the dims of {}",
                    self.shape()
                ),
            });
        }
        let l = self.layout();
        let shape: Vec<usize> = perm.iter().map(|&p| l.dims()[p]).collect();
        let strides: Vec<usize> = perm.iter().map(|&p| l.strides[p]).collect();
        let out = self.view_with(
            Layout {
                shape: Shape::new(shape),
                strides,
                offset: l.offset,
            },
            None,
        );
        let mut inv = vec![0; r];
        for (i, &p) in perm.iter().enumerate() {
            inv[p] = i;
        }
        Ok(record(out, "permute", &[self], move |_, g| {
            Ok(vec![Some(g.permute(&inv)?)])
        }))
    }

    /// Swap two dims.
    pub fn transpose(&self, d0: isize, d1: isize) -> Result<Tensor> {
        let a = self.shape().resolve("transpose", d0)?;
        let b = self.shape().resolve("transpose", d1)?;
        let mut perm: Vec<usize> = (0..self.rank()).collect();
        perm.swap(a, b);
        self.permute(&perm)
    }

    /// Transpose of a 2-D tensor.
    pub fn t(&self) -> Result<Tensor> {
        if self.rank() != 2 {
            return Err(Error::Shape {
                op: "t",
                msg: format!("expected a 2-D tensor, got {}", self.shape()),
            });
        }
        self.transpose(0, 1)
    }

    /// Elements `start..start+len` along `dim`.
    pub fn narrow(&self, dim: isize, start: usize, len: usize) -> Result<Tensor> {
        let d = self.shape().resolve("narrow", dim)?;
        let size = self.dims()[d];
        if start.checked_add(len).is_none_or(|e| e > size) {
            return Err(Error::Index {
                op: "narrow",
                msg: format!(
                    "range {start}..{} out of bounds for dim {dim} of {}",
                    start.saturating_add(len),
                    self.shape()
                ),
            });
        }
        let l = self.layout();
        let mut shape = l.dims().to_vec();
        shape[d] = len;
        let offset = l.offset + start * l.strides[d];
        let out = self.view_with(
            Layout {
                shape: Shape::new(shape),
                strides: l.strides.clone(),
                offset,
            },
            None,
        );
        let full = self.shape().clone();
        Ok(record(out, "narrow", &[self], move |_, g| {
            Ok(vec![Some(super::ops::concat::pad_along(
                g, &full, d, start,
            )?)])
        }))
    }

    /// Broadcast to `shape` (size-1 dims and missing leading dims repeat with stride 0).
    pub fn expand(&self, shape: impl Into<Shape>) -> Result<Tensor> {
        let shape = shape.into();
        let l = self.layout();
        let (r, n) = (shape.rank(), self.rank());
        let bad = || Error::Shape {
            op: "expand",
            msg: format!("cannot expand {} to {}", self.shape(), shape),
        };
        if r < n {
            return Err(bad());
        }
        let mut strides = vec![0usize; r];
        for i in 0..r {
            if i < r - n {
                continue;
            }
            let (sd, td) = (l.dims()[i - (r - n)], shape.dims()[i]);
            if sd == td {
                strides[i] = l.strides[i - (r - n)];
            } else if sd != 1 {
                return Err(bad());
            }
        }
        if &shape == self.shape() {
            return Ok(self.clone());
        }
        let out = self.view_with(
            Layout {
                shape: shape.clone(),
                strides,
                offset: l.offset,
            },
            None,
        );
        let in_shape = self.shape().clone();
        Ok(record(out, "expand", &[self], move |_, g| {
            Ok(vec![Some(g.sum_to_shape(&in_shape)?)])
        }))
    }

    /// Alias of `expand` (candle's name).
    pub fn broadcast_as(&self, shape: impl Into<Shape>) -> Result<Tensor> {
        self.expand(shape)
    }

    /// Insert a size-1 dim at `dim` (0..=rank; negative counts from the end, -1 appends).
    pub fn unsqueeze(&self, dim: isize) -> Result<Tensor> {
        let r = self.rank() as isize;
        let d = if dim < 0 { dim + r + 1 } else { dim };
        if d < 0 || d > r {
            return Err(Error::Index {
                op: "unsqueeze",
                msg: format!("dim {dim} out of range for {}", self.shape()),
            });
        }
        let mut v = self.dims().to_vec();
        v.insert(d as usize, 1);
        self.reshape(v)
    }

    /// Remove dim `dim`, which must have size 1.
    pub fn squeeze(&self, dim: isize) -> Result<Tensor> {
        let d = self.shape().resolve("squeeze", dim)?;
        if self.dims()[d] != 1 {
            return Err(Error::Shape {
                op: "squeeze",
                msg: format!("dim {dim} of {} is not 1", self.shape()),
            });
        }
        let mut v = self.dims().to_vec();
        v.remove(d);
        self.reshape(v)
    }
}
