//! Shapes, dimension resolution and broadcasting rules (NumPy/PyTorch semantics).
use crate::{Error, Result};
use std::fmt;

#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Shape(Vec<usize>);

impl Shape {
    pub fn new(dims: Vec<usize>) -> Self {
        Shape(dims)
    }
    pub fn scalar() -> Self {
        Shape(vec![])
    }
    pub fn dims(&self) -> &[usize] {
        &self.0
    }
    pub fn rank(&self) -> usize {
        self.0.len()
    }
    pub fn elem_count(&self) -> usize {
        self.0.iter().product()
    }
    pub fn dim(&self, d: usize) -> usize {
        self.0[d]
    }
    /// Row-major strides of a contiguous tensor of this shape.
    pub fn contiguous_strides(&self) -> Vec<usize> {
        let mut s = vec![1usize; self.0.len()];
        for i in (0..self.0.len().saturating_sub(1)).rev() {
            s[i] = s[i + 1] * self.0[i + 1];
        }
        s
    }
    /// Resolve a possibly negative dim index for `op`.
    pub fn resolve(&self, op: &'static str, d: isize) -> Result<usize> {
        let r = self.0.len() as isize;
        let i = if d < 0 { d + r } else { d };
        if i < 0 || i >= r {
            return Err(Error::Index {
                op,
                msg: format!("dim {d} out of range for shape {self}"),
            });
        }
        Ok(i as usize)
    }
    /// Resolve a list of dims; duplicates are an error.
    pub fn resolve_many(&self, op: &'static str, ds: &[isize]) -> Result<Vec<usize>> {
        let mut out = Vec::with_capacity(ds.len());
        for &d in ds {
            let i = self.resolve(op, d)?;
            if out.contains(&i) {
                return Err(Error::Index {
                    op,
                    msg: format!("dim {d} repeated for shape {self}"),
                });
            }
            out.push(i);
        }
        Ok(out)
    }
    /// The shape both operands broadcast to, or an error naming both shapes.
    pub fn broadcast(op: &'static str, a: &Shape, b: &Shape) -> Result<Shape> {
        let r = a.rank().max(b.rank());
        let mut out = vec![0; r];
        for i in 0..r {
            let da = if i + a.rank() >= r {
                a.0[i + a.rank() - r]
            } else {
                1
            };
            let db = if i + b.rank() >= r {
                b.0[i + b.rank() - r]
            } else {
                1
            };
            out[i] = if da == db || db == 1 {
                da
            } else if da == 1 {
                db
            } else {
                return Err(Error::Shape {
                    op,
                    msg: format!("shapes {a} and {b} do not broadcast"),
                });
            };
        }
        Ok(Shape(out))
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}
impl fmt::Debug for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl From<Vec<usize>> for Shape {
    fn from(v: Vec<usize>) -> Self {
        Shape(v)
    }
}
impl From<&[usize]> for Shape {
    fn from(v: &[usize]) -> Self {
        Shape(v.to_vec())
    }
}
impl<const N: usize> From<[usize; N]> for Shape {
    fn from(v: [usize; N]) -> Self {
        Shape(v.to_vec())
    }
}
impl From<&Shape> for Shape {
    fn from(s: &Shape) -> Self {
        s.clone()
    }
}
impl From<()> for Shape {
    fn from(_: ()) -> Self {
        Shape(vec![])
    }
}
impl From<usize> for Shape {
    fn from(v: usize) -> Self {
        Shape(vec![v])
    }
}
