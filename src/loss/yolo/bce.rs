//! Row sums of (weighted) BCE-with-logits against constant targets, as one recorded op:
//! the class and mask losses run it over B·A·nc and n·H·W elements every step, where a
//! chain of elementwise ops would allocate a dozen full-size temporaries.
use crate::autograd::record;
use crate::{DType, Error, Result, Tensor};
use rayon::prelude::*;
use std::sync::Arc;

/// Target and weight of element (row, column), constant for the graph.
pub type TargetFn = Arc<dyn Fn(usize, usize) -> (f32, f32) + Send + Sync>;

/// `out[r] = Σ_c w[r,c] · bce(x[r,c], y[r,c])` for `logits` `[R, C]` (f32), constant `targets`
/// and optional constant `weights` (row-major `R·C`; absent = 1). `bce(x, y) = (1 − y)·x −
/// log σ(x)`, the reference's overflow-free form; sums accumulate in f64. Backward:
/// `g[r] · w · (σ(x) − y)`.
pub fn bce_rows(
    logits: &Tensor,
    targets: Arc<Vec<f32>>,
    weights: Option<Arc<Vec<f32>>>,
) -> Result<Tensor> {
    if targets.len() != logits.elem_count()
        || weights.as_ref().is_some_and(|w| w.len() != targets.len())
    {
        return Err(Error::Shape {
            op: "bce_rows",
            msg: format!(
                "logits {} need {} targets and weights",
                logits.shape(),
                logits.elem_count()
            ),
        });
    }
    let cols = logits.dims().last().copied().unwrap_or(0);
    let tw: TargetFn = Arc::new(move |r, c| {
        let i = r * cols + c;
        (targets[i], weights.as_ref().map_or(1.0, |w| w[i]))
    });
    bce_rows_with(logits, tw)
}

/// `bce_rows` with targets and weights from a function (no `R·C` buffers: the mask loss
/// reads each row's gt mask and box crop on the fly).
pub fn bce_rows_with(logits: &Tensor, tw: TargetFn) -> Result<Tensor> {
    let d = logits.dims();
    if d.len() != 2 {
        return Err(Error::Shape {
            op: "bce_rows",
            msg: format!("logits {} must be [R, C]", logits.shape()),
        });
    }
    let (rows, cols) = (d[0], d[1]);
    let x = logits.to_dtype(DType::F32)?.detach();
    let xv = x.to_vec::<f32>()?;
    let out: Vec<f32> = (0..rows)
        .into_par_iter()
        .map(|r| {
            let mut s = 0f64;
            for (c, &x) in xv[r * cols..(r + 1) * cols].iter().enumerate() {
                let (y, wi) = tw(r, c);
                let wi = wi as f64;
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
                let (y, w) = tw(i / cols, i % cols);
                if w == 0.0 {
                    return 0.0;
                }
                let s = 1.0 / (1.0 + (-xv[i]).exp());
                gv[i / cols] * w * (s - y)
            })
            .collect();
        Ok(vec![Some(Tensor::from_vec(grad, [rows, cols])?)])
    }))
}
