//! Row sums of (weighted) BCE-with-logits against constant targets, as one recorded op:
//! the class and mask losses run it over B·A·nc and n·H·W elements every step, where a
//! chain of elementwise ops would allocate a dozen full-size temporaries.
use crate::autograd::record;
use crate::{DType, Error, Result, Tensor};
use rayon::prelude::*;
use std::sync::Arc;

/// `out[r] = Σ_c w[r,c] · bce(x[r,c], y[r,c])` for `logits` `[R, C]` (f32), constant `targets`
/// and optional constant `weights` (row-major `R·C`; absent = 1). `bce(x, y) = (1 − y)·x −
/// log σ(x)`, the reference's overflow-free form; sums accumulate in f64. Backward:
/// `g[r] · w · (σ(x) − y)`.
pub fn bce_rows(
    logits: &Tensor,
    targets: Arc<Vec<f32>>,
    weights: Option<Arc<Vec<f32>>>,
) -> Result<Tensor> {
    let d = logits.dims();
    if d.len() != 2 || targets.len() != logits.elem_count() {
        return Err(Error::Shape {
            op: "bce_rows",
            msg: format!(
                "logits {} must be [R, C] with {} targets",
                logits.shape(),
                targets.len()
            ),
        });
    }
    if weights.as_ref().is_some_and(|w| w.len() != targets.len()) {
        return Err(Error::msg("bce_rows: weights and targets differ in length"));
    }
    let (rows, cols) = (d[0], d[1]);
    let x = logits.to_dtype(DType::F32)?.detach();
    let xv = x.to_vec::<f32>()?;
    let out: Vec<f32> = (0..rows)
        .into_par_iter()
        .map(|r| {
            let span = r * cols..(r + 1) * cols;
            let w = weights.as_ref().map(|w| &w[span.clone()]);
            let mut s = 0f64;
            for (i, (&x, &y)) in xv[span.clone()].iter().zip(&targets[span]).enumerate() {
                let wi = w.map_or(1.0, |w| w[i] as f64);
                if wi != 0.0 {
                    let (x, y) = (x as f64, y as f64);
                    // −log σ(x) = max(−x, 0) + log(1 + e^{−|x|})
                    let l = (1.0 - y) * x + (-x).max(0.0) + (-x.abs()).exp().ln_1p();
                    s += wi * l;
                }
            }
            s as f32
        })
        .collect();
    let out = Tensor::from_vec(out, rows)?;
    Ok(record(out, "bce_rows", &[logits], move |_, g| {
        let gv = g.to_vec_f32()?;
        let grad: Vec<f32> = (0..rows * cols)
            .into_par_iter()
            .map(|i| {
                let w = weights.as_ref().map_or(1.0, |w| w[i]);
                let s = 1.0 / (1.0 + (-xv[i]).exp());
                gv[i / cols] * w * (s - targets[i])
            })
            .collect();
        Ok(vec![Some(Tensor::from_vec(grad, [rows, cols])?)])
    }))
}
