//! Broadcasting binary ops (arithmetic, comparisons, where) and scalar forms.
use super::{restore, to_compute};
use crate::autograd::record;
use crate::backend::cpu::binary::broadcast_map;
use crate::tensor::{Float, StorageElement};
use crate::{DType, Error, Result, Shape, Tensor, dispatch_float};

/// A float binary op: forward rule only; backward rules are written per op below.
pub trait BinaryOp {
    const NAME: &'static str;
    fn f<T: Float>(a: T, b: T) -> T;
}

macro_rules! binop {
    ($name:ident, $s:expr, |$a:ident, $b:ident| $e:expr) => {
        pub struct $name;
        impl BinaryOp for $name {
            const NAME: &'static str = $s;
            fn f<T: Float>($a: T, $b: T) -> T {
                $e
            }
        }
    };
}
binop!(Add, "add", |a, b| a + b);
binop!(Sub, "sub", |a, b| a - b);
binop!(Mul, "mul", |a, b| a * b);
binop!(Div, "div", |a, b| a / b);
binop!(Pow, "pow", |a, b| a.powf(b));
binop!(Maximum, "maximum", |a, b| if a.is_nan() || a >= b {
    a
} else {
    b
});
binop!(Minimum, "minimum", |a, b| if a.is_nan() || a <= b {
    a
} else {
    b
});

fn same_dtype(op: &'static str, a: &Tensor, b: &Tensor) -> Result<()> {
    if a.dtype() != b.dtype() {
        return Err(Error::DType {
            op,
            msg: format!(
                "operands are {} {} and {} {}",
                a.dtype(),
                a.shape(),
                b.dtype(),
                b.shape()
            ),
        });
    }
    Ok(())
}

/// Forward of a float binary op, no autograd.
fn forward<O: BinaryOp>(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    same_dtype(O::NAME, a, b)?;
    let out_shape = Shape::broadcast(O::NAME, a.shape(), b.shape())?;
    let dtype = a.dtype();
    let (ac, bc) = (to_compute(a)?, to_compute(b)?);
    let out = dispatch_float!(ac.dtype(), O::NAME, T => {
        let v = ac.with_slice(|x: &[T]| bc.with_slice(|y: &[T]| broadcast_map(x, ac.dims(), y, bc.dims(), out_shape.dims(), O::f::<T>)))??;
        Tensor::from_vec(v, out_shape)?
    });
    restore(out, dtype)
}

impl Tensor {
    /// Reduce a broadcast gradient back to `shape` by summing over the broadcast dims.
    pub fn sum_to_shape(&self, shape: &Shape) -> Result<Tensor> {
        if self.shape() == shape {
            return Ok(self.clone());
        }
        let (r, n) = (self.rank(), shape.rank());
        if n > r {
            return Err(Error::Shape {
                op: "sum_to_shape",
                msg: format!("cannot reduce {} to {}", self.shape(), shape),
            });
        }
        let mut dims = Vec::new();
        for i in 0..r {
            let target = if i < r - n {
                1
            } else {
                shape.dims()[i - (r - n)]
            };
            if target == 1 && self.dims()[i] != 1 {
                dims.push(i as isize);
            } else if target != self.dims()[i] {
                return Err(Error::Shape {
                    op: "sum_to_shape",
                    msg: format!("cannot reduce {} to {}", self.shape(), shape),
                });
            }
        }
        let s = if dims.is_empty() {
            self.clone()
        } else {
            self.sum(&dims, true)?
        };
        s.reshape(shape.clone())
    }

    pub fn add(&self, rhs: &Tensor) -> Result<Tensor> {
        let out = forward::<Add>(self, rhs)?;
        let (a, b) = (self.clone(), rhs.clone());
        Ok(record(out, "add", &[self, rhs], move |_, g| {
            Ok(vec![
                if a.tracks_grad() {
                    Some(g.sum_to_shape(a.shape())?)
                } else {
                    None
                },
                if b.tracks_grad() {
                    Some(g.sum_to_shape(b.shape())?)
                } else {
                    None
                },
            ])
        }))
    }

    pub fn sub(&self, rhs: &Tensor) -> Result<Tensor> {
        let out = forward::<Sub>(self, rhs)?;
        let (a, b) = (self.clone(), rhs.clone());
        Ok(record(out, "sub", &[self, rhs], move |_, g| {
            Ok(vec![
                if a.tracks_grad() {
                    Some(g.sum_to_shape(a.shape())?)
                } else {
                    None
                },
                if b.tracks_grad() {
                    Some(g.neg()?.sum_to_shape(b.shape())?)
                } else {
                    None
                },
            ])
        }))
    }

    pub fn mul(&self, rhs: &Tensor) -> Result<Tensor> {
        let out = forward::<Mul>(self, rhs)?;
        let (a, b) = (self.clone(), rhs.clone());
        Ok(record(out, "mul", &[self, rhs], move |_, g| {
            Ok(vec![
                if a.tracks_grad() {
                    Some(g.mul(&b)?.sum_to_shape(a.shape())?)
                } else {
                    None
                },
                if b.tracks_grad() {
                    Some(g.mul(&a)?.sum_to_shape(b.shape())?)
                } else {
                    None
                },
            ])
        }))
    }

    pub fn div(&self, rhs: &Tensor) -> Result<Tensor> {
        let out = forward::<Div>(self, rhs)?;
        let (a, b) = (self.clone(), rhs.clone());
        Ok(record(out, "div", &[self, rhs], move |out, g| {
            Ok(vec![
                if a.tracks_grad() {
                    Some(g.div(&b)?.sum_to_shape(a.shape())?)
                } else {
                    None
                },
                // d(a/b)/db = -(a/b)/b
                if b.tracks_grad() {
                    Some(g.mul(out)?.div(&b)?.neg()?.sum_to_shape(b.shape())?)
                } else {
                    None
                },
            ])
        }))
    }

    /// Elementwise power with a tensor exponent.
    pub fn pow(&self, rhs: &Tensor) -> Result<Tensor> {
        let out = forward::<Pow>(self, rhs)?;
        let (a, b) = (self.clone(), rhs.clone());
        Ok(record(out, "pow", &[self, rhs], move |out, g| {
            Ok(vec![
                if a.tracks_grad() {
                    // b * a^(b-1)
                    Some(
                        g.mul(&b)?
                            .mul(&forward::<Pow>(&a, &b.add_scalar(-1.0)?)?)?
                            .sum_to_shape(a.shape())?,
                    )
                } else {
                    None
                },
                if b.tracks_grad() {
                    Some(g.mul(out)?.mul(&a.log()?)?.sum_to_shape(b.shape())?)
                } else {
                    None
                },
            ])
        }))
    }

    /// Elementwise max; on ties the gradient is shared equally (as in PyTorch).
    pub fn maximum(&self, rhs: &Tensor) -> Result<Tensor> {
        self.extremum::<Maximum>(rhs, true)
    }
    /// Elementwise min; on ties the gradient is shared equally.
    pub fn minimum(&self, rhs: &Tensor) -> Result<Tensor> {
        self.extremum::<Minimum>(rhs, false)
    }

    fn extremum<O: BinaryOp>(&self, rhs: &Tensor, max: bool) -> Result<Tensor> {
        let out = forward::<O>(self, rhs)?;
        let (a, b) = (self.clone(), rhs.clone());
        Ok(record(out, O::NAME, &[self, rhs], move |_, g| {
            // weight for a: 1 where a wins, 0.5 on ties, 0 where b wins.
            let (win, tie) = if max {
                (a.gt(&b)?, a.eq(&b)?)
            } else {
                (a.lt(&b)?, a.eq(&b)?)
            };
            let wa = win
                .to_dtype(g.dtype())?
                .add(&tie.to_dtype(g.dtype())?.mul_scalar(0.5)?)?;
            let wb = wa.neg()?.add_scalar(1.0)?;
            Ok(vec![
                if a.tracks_grad() {
                    Some(g.mul(&wa)?.sum_to_shape(a.shape())?)
                } else {
                    None
                },
                if b.tracks_grad() {
                    Some(g.mul(&wb)?.sum_to_shape(b.shape())?)
                } else {
                    None
                },
            ])
        }))
    }

    fn scalar_like(&self, v: f64) -> Tensor {
        Tensor::full(v, Shape::scalar(), self.dtype())
    }

    pub fn add_scalar(&self, v: f64) -> Result<Tensor> {
        self.add(&self.scalar_like(v))
    }
    pub fn sub_scalar(&self, v: f64) -> Result<Tensor> {
        self.sub(&self.scalar_like(v))
    }
    pub fn mul_scalar(&self, v: f64) -> Result<Tensor> {
        self.mul(&self.scalar_like(v))
    }
    pub fn div_scalar(&self, v: f64) -> Result<Tensor> {
        self.div(&self.scalar_like(v))
    }
    /// `self * mul + add`.
    pub fn affine(&self, mul: f64, add: f64) -> Result<Tensor> {
        self.mul_scalar(mul)?.add_scalar(add)
    }
    /// Elementwise power with a scalar exponent.
    pub fn powf(&self, e: f64) -> Result<Tensor> {
        let out = forward::<Pow>(self, &self.scalar_like(e))?;
        let a = self.clone();
        Ok(record(out, "powf", &[self], move |_, g| {
            Ok(vec![Some(g.mul(&a.powf(e - 1.0)?.mul_scalar(e)?)?)])
        }))
    }
    /// Elementwise max with a scalar (no gradient where clipped).
    pub fn maximum_scalar(&self, v: f64) -> Result<Tensor> {
        self.clamp(v, f64::INFINITY)
    }
    pub fn minimum_scalar(&self, v: f64) -> Result<Tensor> {
        self.clamp(f64::NEG_INFINITY, v)
    }

    // ------------------------------------------------------------ comparisons → u8 masks
    fn compare(&self, rhs: &Tensor, op: &'static str, f: fn(f64, f64) -> bool) -> Result<Tensor> {
        same_dtype(op, self, rhs)?;
        let out_shape = Shape::broadcast(op, self.shape(), rhs.shape())?;
        fn run<T: StorageElement>(
            a: &Tensor,
            b: &Tensor,
            s: &Shape,
            f: fn(f64, f64) -> bool,
        ) -> Result<Vec<u8>> {
            a.with_slice(|x: &[T]| {
                b.with_slice(|y: &[T]| {
                    broadcast_map(x, a.dims(), y, b.dims(), s.dims(), |p: T, q: T| {
                        f(p.to_f64(), q.to_f64()) as u8
                    })
                })
            })?
        }
        let v = match self.dtype() {
            DType::F32 => run::<f32>(self, rhs, &out_shape, f)?,
            DType::F64 => run::<f64>(self, rhs, &out_shape, f)?,
            DType::F16 => run::<half::f16>(self, rhs, &out_shape, f)?,
            DType::BF16 => run::<half::bf16>(self, rhs, &out_shape, f)?,
            DType::I8 => run::<i8>(self, rhs, &out_shape, f)?,
            DType::U8 => run::<u8>(self, rhs, &out_shape, f)?,
            DType::I32 => run::<i32>(self, rhs, &out_shape, f)?,
            DType::I64 => run::<i64>(self, rhs, &out_shape, f)?,
        };
        Tensor::from_vec(v, out_shape)
    }
    pub fn eq(&self, rhs: &Tensor) -> Result<Tensor> {
        self.compare(rhs, "eq", |a, b| a == b)
    }
    pub fn ne(&self, rhs: &Tensor) -> Result<Tensor> {
        self.compare(rhs, "ne", |a, b| a != b)
    }
    pub fn lt(&self, rhs: &Tensor) -> Result<Tensor> {
        self.compare(rhs, "lt", |a, b| a < b)
    }
    pub fn le(&self, rhs: &Tensor) -> Result<Tensor> {
        self.compare(rhs, "le", |a, b| a <= b)
    }
    pub fn gt(&self, rhs: &Tensor) -> Result<Tensor> {
        self.compare(rhs, "gt", |a, b| a > b)
    }
    pub fn ge(&self, rhs: &Tensor) -> Result<Tensor> {
        self.compare(rhs, "ge", |a, b| a >= b)
    }
    pub fn eq_scalar(&self, v: f64) -> Result<Tensor> {
        self.eq(&self.scalar_like(v))
    }
    pub fn gt_scalar(&self, v: f64) -> Result<Tensor> {
        self.gt(&self.scalar_like(v))
    }
    pub fn ge_scalar(&self, v: f64) -> Result<Tensor> {
        self.ge(&self.scalar_like(v))
    }
    pub fn lt_scalar(&self, v: f64) -> Result<Tensor> {
        self.lt(&self.scalar_like(v))
    }
    pub fn le_scalar(&self, v: f64) -> Result<Tensor> {
        self.le(&self.scalar_like(v))
    }

    /// `cond ? on_true : on_false` with broadcasting; `cond` is a u8 mask (non-zero = true).
    pub fn where_cond(cond: &Tensor, on_true: &Tensor, on_false: &Tensor) -> Result<Tensor> {
        if cond.dtype() != DType::U8 {
            return Err(Error::DType {
                op: "where",
                msg: format!("condition must be u8, got {}", cond.dtype()),
            });
        }
        same_dtype("where", on_true, on_false)?;
        let s1 = Shape::broadcast("where", cond.shape(), on_true.shape())?;
        let shape = Shape::broadcast("where", &s1, on_false.shape())?;
        let dtype = on_true.dtype();
        let (c, a, b) = (
            cond.expand(shape.clone())?.contiguous()?,
            to_compute(on_true)?,
            to_compute(on_false)?,
        );
        let cv = c.to_vec::<u8>()?;
        let out = dispatch_float!(a.dtype(), "where", T => {
            let a_full = a.with_slice(|x: &[T]| broadcast_map(x, a.dims(), &cv, shape.dims(), shape.dims(), |p: T, _| p))?;
            let v = b.with_slice(|y: &[T]| broadcast_map(y, b.dims(), &cv, shape.dims(), shape.dims(), |q: T, _| q))?;
            let v: Vec<T> = v.into_iter().zip(a_full).zip(&cv).map(|((q, p), &m)| if m != 0 { p } else { q }).collect();
            Tensor::from_vec(v, shape.clone())?
        });
        let out = restore(out, dtype)?;
        let (ta, fb) = (on_true.clone(), on_false.clone());
        let m = c.detach();
        Ok(record(out, "where", &[on_true, on_false], move |_, g| {
            let z = g.zeros_like();
            Ok(vec![
                if ta.tracks_grad() {
                    Some(Tensor::where_cond(&m, g, &z)?.sum_to_shape(ta.shape())?)
                } else {
                    None
                },
                if fb.tracks_grad() {
                    Some(Tensor::where_cond(&m, &z, g)?.sum_to_shape(fb.shape())?)
                } else {
                    None
                },
            ])
        }))
    }
}
