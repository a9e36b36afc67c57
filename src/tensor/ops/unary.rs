//! Elementwise unary ops and activations. Each op is a forward rule `f(x)` and a
//! derivative `df(x, y)` with `y = f(x)`, so backward is one fused pass `g * df(x, y)`.
use super::{restore, to_compute};
use crate::autograd::record;
use crate::backend::cpu::{binary::map_par, unary::zip3};
use crate::tensor::{Element, Float};
use crate::{Result, Tensor, dispatch_float};

pub trait UnaryOp: 'static {
    const NAME: &'static str;
    fn f<T: Float>(x: T) -> T;
    /// d f / d x at `x`, given `y = f(x)`.
    fn df<T: Float>(x: T, y: T) -> T;
}

macro_rules! unop {
    ($name:ident, $s:expr, |$x:ident| $f:expr, |$dx:ident, $y:ident| $df:expr) => {
        pub struct $name;
        impl UnaryOp for $name {
            const NAME: &'static str = $s;
            #[inline]
            fn f<T: Float>($x: T) -> T {
                $f
            }
            #[inline]
            #[allow(unused_variables)]
            fn df<T: Float>($dx: T, $y: T) -> T {
                $df
            }
        }
    };
}

fn c<T: Float>(v: f64) -> T {
    T::from_f64(v)
}
fn sigmoid<T: Float>(x: T) -> T {
    // Split by sign so exp never overflows.
    if x >= T::ZERO {
        T::ONE / (T::ONE + (-x).exp())
    } else {
        let e = x.exp();
        e / (T::ONE + e)
    }
}
const SQRT_2_OVER_PI: f64 = 0.7978845608028654;
const INV_SQRT_2: f64 = std::f64::consts::FRAC_1_SQRT_2;
const INV_SQRT_2PI: f64 = 0.3989422804014327;

unop!(Neg, "neg", |x| -x, |x, y| -T::ONE);
unop!(Exp, "exp", |x| x.exp(), |x, y| y);
unop!(Log, "log", |x| x.ln(), |x, y| T::ONE / x);
unop!(Sqrt, "sqrt", |x| x.sqrt(), |x, y| c::<T>(0.5) / y);
unop!(Rsqrt, "rsqrt", |x| T::ONE / x.sqrt(), |x, y| c::<T>(-0.5)
    * y
    * y
    * y);
unop!(Abs, "abs", |x| x.abs(), |x, y| if x > T::ZERO {
    T::ONE
} else if x < T::ZERO {
    -T::ONE
} else {
    T::ZERO
});
unop!(Sqr, "sqr", |x| x * x, |x, y| c::<T>(2.0) * x);
unop!(Recip, "recip", |x| T::ONE / x, |x, y| -y * y);
unop!(
    Relu,
    "relu",
    |x| if x > T::ZERO { x } else { T::ZERO },
    |x, y| if x > T::ZERO { T::ONE } else { T::ZERO }
);
unop!(Sigmoid, "sigmoid", |x| sigmoid(x), |x, y| y * (T::ONE - y));
unop!(Tanh, "tanh", |x| x.tanh(), |x, y| T::ONE - y * y);
// atan through f64 (the Float trait has no atan); d/dx = 1 / (1 + x²).
// sin/cos through f64 as atan (SAM's random-Fourier positional encoding); f32 results are
// the correctly rounded f64 values, as torch's on CPU to within an ulp.
unop!(Sin, "sin", |x| T::from_f64(x.to_f64().sin()), |x, y| {
    T::from_f64(x.to_f64().cos())
});
unop!(Cos, "cos", |x| T::from_f64(x.to_f64().cos()), |x, y| {
    T::from_f64(-x.to_f64().sin())
});
unop!(
    Atan,
    "atan",
    |x| T::from_f64(x.to_f64().atan()),
    |x, y| T::ONE / (T::ONE + x * x)
);
unop!(Silu, "silu", |x| x * sigmoid(x), |x, y| {
    let s = sigmoid(x);
    s * (T::ONE + x * (T::ONE - s))
});
// Exact GELU: x * Φ(x) with Φ from erf (PyTorch approximate='none').
unop!(
    Gelu,
    "gelu",
    |x| c::<T>(0.5) * x * (T::ONE + (x * c::<T>(INV_SQRT_2)).erf()),
    |x, y| {
        let cdf = c::<T>(0.5) * (T::ONE + (x * c::<T>(INV_SQRT_2)).erf());
        cdf + x * c::<T>(INV_SQRT_2PI) * (c::<T>(-0.5) * x * x).exp()
    }
);
// Tanh GELU (PyTorch approximate='tanh').
unop!(
    GeluTanh,
    "gelu_tanh",
    |x| {
        let u = c::<T>(SQRT_2_OVER_PI) * (x + c::<T>(0.044715) * x * x * x);
        c::<T>(0.5) * x * (T::ONE + u.tanh())
    },
    |x, y| {
        let u = c::<T>(SQRT_2_OVER_PI) * (x + c::<T>(0.044715) * x * x * x);
        let t = u.tanh();
        let du = c::<T>(SQRT_2_OVER_PI) * (T::ONE + c::<T>(3.0 * 0.044715) * x * x);
        c::<T>(0.5) * (T::ONE + t) + c::<T>(0.5) * x * (T::ONE - t * t) * du
    }
);
// Softplus with PyTorch's threshold 20 (linear above it, for stability).
unop!(
    Softplus,
    "softplus",
    |x| if x > c::<T>(20.0) { x } else { x.exp().ln_1p() },
    |x, y| if x > c::<T>(20.0) { T::ONE } else { sigmoid(x) }
);

impl Tensor {
    /// Apply a unary op, recording `g * df(x, y)` as its backward.
    pub fn unary<O: UnaryOp>(&self) -> Result<Tensor> {
        let dtype = self.dtype();
        let x = to_compute(self)?;
        let out = dispatch_float!(x.dtype(), O::NAME, T => {
            let v = x.with_slice(|s: &[T]| map_par(s, O::f::<T>))?;
            Tensor::from_vec(v, x.shape().clone())?
        });
        let out = restore(out, dtype)?;
        let xin = self.detach();
        Ok(record(out, O::NAME, &[self], move |y, g| {
            let (x, y, g) = (to_compute(&xin)?, to_compute(&y.detach())?, to_compute(g)?);
            let gi = dispatch_float!(x.dtype(), O::NAME, T => {
                let v = x.with_slice(|xs: &[T]| y.with_slice(|ys: &[T]| g.with_slice(|gs: &[T]| zip3(xs, ys, gs, |a, b, c| c * O::df::<T>(a, b)))))???;
                Tensor::from_vec(v, x.shape().clone())?
            });
            Ok(vec![Some(restore(gi, xin.dtype())?)])
        }))
    }

    pub fn neg(&self) -> Result<Tensor> {
        self.unary::<Neg>()
    }
    pub fn exp(&self) -> Result<Tensor> {
        self.unary::<Exp>()
    }
    pub fn log(&self) -> Result<Tensor> {
        self.unary::<Log>()
    }
    pub fn sqrt(&self) -> Result<Tensor> {
        self.unary::<Sqrt>()
    }
    pub fn rsqrt(&self) -> Result<Tensor> {
        self.unary::<Rsqrt>()
    }
    pub fn abs(&self) -> Result<Tensor> {
        self.unary::<Abs>()
    }
    pub fn sqr(&self) -> Result<Tensor> {
        self.unary::<Sqr>()
    }
    pub fn recip(&self) -> Result<Tensor> {
        self.unary::<Recip>()
    }
    pub fn relu(&self) -> Result<Tensor> {
        self.unary::<Relu>()
    }
    pub fn sigmoid(&self) -> Result<Tensor> {
        self.unary::<Sigmoid>()
    }
    pub fn tanh(&self) -> Result<Tensor> {
        self.unary::<Tanh>()
    }
    /// Elementwise arctangent (CIoU's aspect-ratio term).
    pub fn atan(&self) -> Result<Tensor> {
        self.unary::<Atan>()
    }
    pub fn sin(&self) -> Result<Tensor> {
        self.unary::<Sin>()
    }
    pub fn cos(&self) -> Result<Tensor> {
        self.unary::<Cos>()
    }
    pub fn silu(&self) -> Result<Tensor> {
        self.unary::<Silu>()
    }
    /// Exact (erf) GELU.
    pub fn gelu(&self) -> Result<Tensor> {
        self.unary::<Gelu>()
    }
    /// Tanh-approximated GELU.
    pub fn gelu_tanh(&self) -> Result<Tensor> {
        self.unary::<GeluTanh>()
    }
    pub fn softplus(&self) -> Result<Tensor> {
        self.unary::<Softplus>()
    }

    /// Clamp into [lo, hi] (either may be infinite). Gradient passes where lo ≤ x ≤ hi.
    pub fn clamp(&self, lo: f64, hi: f64) -> Result<Tensor> {
        let dtype = self.dtype();
        let x = to_compute(self)?;
        let out = dispatch_float!(x.dtype(), "clamp", T => {
            let (l, h) = (T::from_f64(lo), T::from_f64(hi));
            let v = x.with_slice(|s: &[T]| map_par(s, |v| if v < l { l } else if v > h { h } else { v }))?;
            Tensor::from_vec(v, x.shape().clone())?
        });
        let out = restore(out, dtype)?;
        let xin = self.detach();
        Ok(record(out, "clamp", &[self], move |_, g| {
            let inside = xin
                .ge_scalar(lo)?
                .to_dtype(g.dtype())?
                .mul(&xin.le_scalar(hi)?.to_dtype(g.dtype())?)?;
            Ok(vec![Some(g.mul(&inside)?)])
        }))
    }
}

#[cfg(test)]
mod atan_tests {
    use crate::Tensor;
    use crate::autograd::gradcheck::{GradcheckOpts, gradcheck};

    #[test]
    fn atan_value_and_gradient() {
        let x = Tensor::from_vec(vec![-3.0f64, -0.5, 0.0, 0.25, 1.0, 40.0], [2, 3]).unwrap();
        let y = x.atan().unwrap().to_vec::<f64>().unwrap();
        for (a, b) in y.iter().zip([-3.0f64, -0.5, 0.0, 0.25, 1.0, 40.0]) {
            assert!((a - b.atan()).abs() < 1e-15);
        }
        gradcheck("atan", &[x], |t| t[0].atan(), &GradcheckOpts::default()).unwrap();
    }
}

#[cfg(test)]
mod trig_tests {
    use crate::Tensor;
    use crate::autograd::gradcheck::{GradcheckOpts, gradcheck};

    #[test]
    fn sin_cos_values_and_gradients() {
        let xs = [-7.0f64, -1.5, 0.0, 0.3, 2.0, 31.4];
        let x = Tensor::from_vec(xs.to_vec(), [2, 3]).unwrap();
        let s = x.sin().unwrap().to_vec::<f64>().unwrap();
        let c = x.cos().unwrap().to_vec::<f64>().unwrap();
        for i in 0..6 {
            assert!((s[i] - xs[i].sin()).abs() < 1e-15);
            assert!((c[i] - xs[i].cos()).abs() < 1e-15);
        }
        gradcheck(
            "sin",
            std::slice::from_ref(&x),
            |t| t[0].sin(),
            &GradcheckOpts::default(),
        )
        .unwrap();
        gradcheck("cos", &[x], |t| t[0].cos(), &GradcheckOpts::default()).unwrap();
    }
}
