//! Normalisation ops: layer norm, group norm, batch norm. Fused kernels with analytic
//! backward (one pass each way) instead of a chain of primitive ops.
use super::{restore, to_compute};
use crate::autograd::record;
pub use crate::backend::cpu::bn_act::Act;
use crate::backend::cpu::bn_act::{bn_act_bwd, bn_act_fwd};
use crate::backend::cpu::norm::{Groups, group_norm_bwd, group_norm_fwd};
use crate::tensor::{Element, StorageElement};
use crate::{DType, Error, Result, Shape, Tensor, dispatch_float};

/// Checks an optional affine/statistics tensor: shape `expect`, and (for weight/bias) the
/// input's dtype.
fn check_param(
    op: &'static str,
    x: &Tensor,
    what: &str,
    t: Option<&Tensor>,
    expect: &Shape,
    same_dtype: bool,
) -> Result<()> {
    let Some(t) = t else { return Ok(()) };
    if t.shape() != expect {
        return Err(Error::Shape {
            op,
            msg: format!(
                "{what} has shape {}, expected {expect} for input {}",
                t.shape(),
                x.shape()
            ),
        });
    }
    if (same_dtype && t.dtype() != x.dtype()) || !t.dtype().is_float() {
        return Err(Error::DType {
            op,
            msg: format!("{what} is {}, input is {}", t.dtype(), x.dtype()),
        });
    }
    Ok(())
}

/// Compute-dtype, detached copy of an optional tensor as a Vec.
fn vec_of<T: StorageElement>(t: &Option<Tensor>) -> Result<Option<Vec<T>>> {
    t.as_ref().map(|t| t.to_vec::<T>()).transpose()
}

/// The list of inputs autograd sees: x, then weight and bias when given.
fn inputs<'a>(x: &'a Tensor, w: Option<&'a Tensor>, b: Option<&'a Tensor>) -> Vec<&'a Tensor> {
    let mut v = vec![x];
    v.extend(w);
    v.extend(b);
    v
}

/// Gradients for (x, weight, bias) in the order of `inputs`, each in its tensor's shape
/// and dtype; only those that track gradients are returned.
fn pack_grads<T: StorageElement>(
    x: &Tensor,
    w: &Option<Tensor>,
    b: &Option<Tensor>,
    (dx, dw, db): (Option<Vec<T>>, Vec<T>, Vec<T>),
) -> Result<Vec<Option<Tensor>>> {
    let mut out = vec![match dx {
        Some(v) => Some(restore(Tensor::from_vec(v, x.shape().clone())?, x.dtype())?),
        None => None,
    }];
    for (t, v) in [(w, dw), (b, db)] {
        if let Some(t) = t {
            out.push(if t.tracks_grad() {
                Some(restore(Tensor::from_vec(v, t.shape().clone())?, t.dtype())?)
            } else {
                None
            });
        }
    }
    Ok(out)
}

/// Group-statistics normalisation shared by layer norm and group norm.
fn normalize_groups(
    op: &'static str,
    x: &Tensor,
    d: Groups,
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    eps: f64,
) -> Result<Tensor> {
    let dtype = x.dtype();
    let xc = to_compute(&x.detach())?;
    let cdt = xc.dtype();
    let wc = weight.map(|t| t.detach().to_dtype(cdt)).transpose()?;
    let bc = bias.map(|t| t.detach().to_dtype(cdt)).transpose()?;
    let (out, mean, rstd) = dispatch_float!(cdt, op, T => {
        let (w, b) = (vec_of::<T>(&wc)?, vec_of::<T>(&bc)?);
        let (y, m, r) = xc.with_slice(|xs: &[T]| group_norm_fwd(xs, d, w.as_deref(), b.as_deref(), eps))?;
        (Tensor::from_vec(y, x.shape().clone())?, m, r)
    });
    let out = restore(out, dtype)?;
    let (xt, wt, bt) = (x.clone(), weight.cloned(), bias.cloned());
    Ok(record(out, op, &inputs(x, weight, bias), move |_, g| {
        let g = g.to_dtype(cdt)?;
        dispatch_float!(cdt, op, T => {
            let (xs, gs) = (xc.to_vec::<T>()?, g.to_vec::<T>()?);
            let w = vec_of::<T>(&wc)?;
            let r = group_norm_bwd(&xs, &gs, d, w.as_deref(), &mean, &rstd, xt.tracks_grad());
            pack_grads(&xt, &wt, &bt, r)
        })
    }))
}

/// Blend `stat` into a running-statistics buffer in place:
/// running = (1 - momentum) * running + momentum * stat.
fn update_running(op: &'static str, t: &Tensor, stat: &[f64], momentum: f64) -> Result<()> {
    fn blend<T: StorageElement>(t: &Tensor, stat: &[f64], m: f64) -> Result<()> {
        t.with_slice_mut(|s: &mut [T]| {
            for (r, &v) in s.iter_mut().zip(stat) {
                *r = T::from_f64((1.0 - m) * r.to_f64() + m * v);
            }
        })
    }
    match t.dtype() {
        DType::F32 => blend::<f32>(t, stat, momentum),
        DType::F64 => blend::<f64>(t, stat, momentum),
        DType::F16 => blend::<half::f16>(t, stat, momentum),
        DType::BF16 => blend::<half::bf16>(t, stat, momentum),
        other => Err(Error::DType {
            op,
            msg: format!("running statistics must be float, got {other}"),
        }),
    }
}

impl Tensor {
    /// Layer norm over the last `normalized_ndim` dims (biased variance, as torch).
    /// `weight` and `bias` have the normalised shape.
    pub fn layer_norm(
        &self,
        normalized_ndim: usize,
        weight: Option<&Tensor>,
        bias: Option<&Tensor>,
        eps: f64,
    ) -> Result<Tensor> {
        let op = "layer_norm";
        let r = self.rank();
        if normalized_ndim == 0 || normalized_ndim > r {
            return Err(Error::Shape {
                op,
                msg: format!(
                    "cannot normalise the last {normalized_ndim} dims of input {}",
                    self.shape()
                ),
            });
        }
        let norm_shape = Shape::from(&self.dims()[r - normalized_ndim..]);
        check_param(op, self, "weight", weight, &norm_shape, true)?;
        check_param(op, self, "bias", bias, &norm_shape, true)?;
        let d = Groups {
            n: self.dims()[..r - normalized_ndim].iter().product(),
            groups: 1,
            cpg: norm_shape.elem_count(),
            s: 1,
        };
        normalize_groups(op, self, d, weight, bias, eps)
    }

    /// Group norm of an [N, C, ...] input: statistics per sample over each group of
    /// `C / num_groups` channels (and all spatial positions), affine per channel.
    pub fn group_norm(
        &self,
        num_groups: usize,
        weight: Option<&Tensor>,
        bias: Option<&Tensor>,
        eps: f64,
    ) -> Result<Tensor> {
        let op = "group_norm";
        if self.rank() < 2 {
            return Err(Error::Shape {
                op,
                msg: format!("expected an [N, C, ...] input, got {}", self.shape()),
            });
        }
        let c = self.dims()[1];
        if num_groups == 0 || !c.is_multiple_of(num_groups) {
            return Err(Error::Shape {
                op,
                msg: format!(
                    "{c} channels of input {} do not split into {num_groups} groups",
                    self.shape()
                ),
            });
        }
        let cs = Shape::from(c);
        check_param(op, self, "weight", weight, &cs, true)?;
        check_param(op, self, "bias", bias, &cs, true)?;
        let d = Groups {
            n: self.dims()[0],
            groups: num_groups,
            cpg: c / num_groups,
            s: self.dims()[2..].iter().product(),
        };
        normalize_groups(op, self, d, weight, bias, eps)
    }

    /// Batch norm of an [N, C, ...] input, per channel. Training normalises with the batch
    /// statistics (biased variance) and, when running statistics are given, updates them in
    /// place as torch does (running_var takes the unbiased batch variance). Eval normalises
    /// with the running statistics, which are then required.
    #[allow(clippy::too_many_arguments)]
    pub fn batch_norm(
        &self,
        running_mean: Option<&Tensor>,
        running_var: Option<&Tensor>,
        weight: Option<&Tensor>,
        bias: Option<&Tensor>,
        training: bool,
        momentum: f64,
        eps: f64,
    ) -> Result<Tensor> {
        self.batch_norm_act(
            running_mean,
            running_var,
            weight,
            bias,
            training,
            momentum,
            eps,
            Act::Identity,
        )
    }

    /// `act(batch_norm(x))` as one op (ultralytics' Conv is conv → BN → SiLU): the same
    /// values and gradients as the two ops in sequence, in one pass over memory each way
    /// and without keeping the normalised tensor for the activation's backward.
    #[allow(clippy::too_many_arguments)]
    pub fn batch_norm_act(
        &self,
        running_mean: Option<&Tensor>,
        running_var: Option<&Tensor>,
        weight: Option<&Tensor>,
        bias: Option<&Tensor>,
        training: bool,
        momentum: f64,
        eps: f64,
        act: Act,
    ) -> Result<Tensor> {
        let op = "batch_norm";
        if self.rank() < 2 {
            return Err(Error::Shape {
                op,
                msg: format!("expected an [N, C, ...] input, got {}", self.shape()),
            });
        }
        let (n, c) = (self.dims()[0], self.dims()[1]);
        let s: usize = self.dims()[2..].iter().product();
        let cs = Shape::from(c);
        check_param(op, self, "weight", weight, &cs, true)?;
        check_param(op, self, "bias", bias, &cs, true)?;
        check_param(op, self, "running_mean", running_mean, &cs, false)?;
        check_param(op, self, "running_var", running_var, &cs, false)?;
        if training && n * s <= 1 {
            return Err(Error::Shape {
                op,
                msg: format!(
                    "expected more than 1 value per channel when training, got input {}",
                    self.shape()
                ),
            });
        }
        let running = if training {
            None
        } else {
            let (Some(rm), Some(rv)) = (running_mean, running_var) else {
                return Err(Error::msg(format!(
                    "{op}: running_mean and running_var are required in eval mode (input {})",
                    self.shape()
                )));
            };
            Some((rm.to_vec_f64()?, rv.to_vec_f64()?))
        };
        let dtype = self.dtype();
        let xc = to_compute(&self.detach())?;
        let cdt = xc.dtype();
        let wv = weight.map(|t| t.to_vec_f64()).transpose()?;
        let bv = bias.map(|t| t.to_vec_f64()).transpose()?;
        let stats = running.as_ref().map(|(m, v)| (m.as_slice(), v.as_slice()));
        let (out, mean, var, aff) = dispatch_float!(cdt, op, T => {
            let (y, m, v, a) = xc.with_slice(|xs: &[T]| {
                bn_act_fwd(xs, (n, c, s), stats, wv.as_deref(), bv.as_deref(), eps, act)
            })?;
            (Tensor::from_vec(y, self.shape().clone())?, m, v, a)
        });
        if training {
            let m = (n * s) as f64;
            if let Some(rm) = running_mean {
                update_running(op, rm, &mean, momentum)?;
            }
            if let Some(rv) = running_var {
                let unbiased: Vec<f64> = var.iter().map(|v| v * m / (m - 1.0)).collect();
                update_running(op, rv, &unbiased, momentum)?;
            }
        }
        let out = restore(out, dtype)?;
        let (xt, wt, bt) = (self.clone(), weight.cloned(), bias.cloned());
        Ok(record(out, op, &inputs(self, weight, bias), move |_, g| {
            let g = g.to_dtype(cdt)?;
            dispatch_float!(cdt, op, T => {
                let (dx, dw, db) = xc.with_slice(|xs: &[T]| g.with_slice(|gs: &[T]| {
                    bn_act_bwd(xs, gs, (n, c, s), wv.as_deref(), &aff, act, training, xt.tracks_grad())
                }))??;
                let cast = |v: Vec<f64>| v.into_iter().map(T::from_f64).collect::<Vec<T>>();
                pack_grads(&xt, &wt, &bt, (dx, cast(dw), cast(db)))
            })
        }))
    }
}
