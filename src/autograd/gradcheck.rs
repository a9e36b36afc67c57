//! Gradient checking for tests: analytic gradients from `backward` against central
//! differences, all in f64 so the comparison is tight.
use crate::{DType, Error, Result, Tensor};

pub struct GradcheckOpts {
    pub eps: f64,
    pub atol: f64,
    pub rtol: f64,
}

impl Default for GradcheckOpts {
    fn default() -> Self {
        GradcheckOpts {
            eps: 1e-6,
            atol: 1e-6,
            rtol: 1e-4,
        }
    }
}

/// Checks d(sum(f(inputs) * w))/d(inputs) for a fixed pseudo-random weighting `w`, so every
/// output element's gradient path matters. Inputs are converted to f64 leaves; `f` must be
/// differentiable at them. Returns a descriptive error on the first mismatch.
pub fn gradcheck(
    name: &str,
    inputs: &[Tensor],
    f: impl Fn(&[Tensor]) -> Result<Tensor>,
    opts: &GradcheckOpts,
) -> Result<()> {
    let leaves: Vec<Tensor> = inputs
        .iter()
        .map(|t| {
            let l = t.to_dtype(DType::F64)?.contiguous()?.detach();
            l.set_requires_grad(true)?;
            Ok(l)
        })
        .collect::<Result<_>>()?;
    let out = f(&leaves)?;
    if out.dtype() != DType::F64 {
        return Err(Error::msg(format!(
            "gradcheck {name}: output is {}, expected f64",
            out.dtype()
        )));
    }
    // Fixed weights in [0.5, 1.5) make the scalar objective touch every output.
    let n = out.elem_count();
    let w: Vec<f64> = (0..n)
        .map(|i| 0.5 + ((i as u64).wrapping_mul(2654435761) % 1000) as f64 / 1000.0)
        .collect();
    let w = Tensor::from_vec(w, out.shape().clone())?;
    // Outputs are differenced element by element before weighting, so one large output
    // cannot swamp the precision of the others.
    let wv = w.to_vec::<f64>()?;
    let eval = |xs: &[Tensor]| -> Result<Vec<f64>> {
        let _g = crate::no_grad();
        f(xs)?.to_vec_f64()
    };
    out.mul(&w)?.sum_all()?.backward()?;
    for (k, leaf) in leaves.iter().enumerate() {
        let analytic = match leaf.grad() {
            Some(g) => g.to_vec::<f64>()?,
            None => vec![0.0; leaf.elem_count()],
        };
        let base = leaf.to_vec::<f64>()?;
        for i in 0..base.len() {
            let probe = |delta: f64| -> Result<Vec<f64>> {
                let mut v = base.clone();
                v[i] += delta;
                let mut xs: Vec<Tensor> = leaves.iter().map(|l| l.detach()).collect();
                xs[k] = Tensor::from_vec(v, leaf.shape().clone())?;
                eval(&xs)
            };
            let (hi, lo) = (probe(opts.eps)?, probe(-opts.eps)?);
            let numeric: f64 = hi
                .iter()
                .zip(&lo)
                .zip(&wv)
                .map(|((h, l), w)| w * (h - l))
                .sum::<f64>()
                / (2.0 * opts.eps);
            let a = analytic[i];
            if (a - numeric).abs() > opts.atol + opts.rtol * numeric.abs() {
                return Err(Error::msg(format!(
                    "gradcheck {name}: input {k} element {i}: analytic {a:.9e} vs numeric {numeric:.9e}"
                )));
            }
        }
    }
    Ok(())
}
