//! Model EMA as ultralytics' `ModelEMA`: a moving average of every floating-point state
//! entry (parameters and buffers such as BatchNorm running statistics) with the decay ramp
//! `d = decay * (1 - exp(-updates / tau))`. Integer entries (num_batches_tracked) are kept
//! as they were when the EMA was made, like ultralytics' deepcopy.
use crate::nn::Module;
use crate::nn::state_dict_of;
use crate::{DType, Error, Result, Tensor};

/// The averaged state, by the module's dotted state-dict names.
#[derive(Debug)]
pub struct ModelEma {
    pub decay: f64,
    pub tau: f64,
    /// Number of updates so far.
    pub updates: u64,
    state: Vec<(String, Tensor)>,
}

impl ModelEma {
    /// An EMA starting from a copy of `m`'s state (decay 0.9999, tau 2000).
    pub fn new(m: &dyn Module) -> Result<Self> {
        Self::with_decay(m, 0.9999, 2000.0)
    }

    /// As `new` with explicit decay and tau.
    pub fn with_decay(m: &dyn Module, decay: f64, tau: f64) -> Result<Self> {
        let state = state_dict_of(m)
            .into_iter()
            .map(|(n, t)| Ok((n, t.deep_clone()?)))
            .collect::<Result<Vec<_>>>()?;
        Ok(ModelEma {
            decay,
            tau,
            updates: 0,
            state,
        })
    }

    /// The decay the next update will use.
    pub fn next_decay(&self) -> f64 {
        self.decay * (1.0 - (-((self.updates + 1) as f64) / self.tau).exp())
    }

    /// `ema = lerp(ema, model, 1 - d)` on every floating-point entry, with torch's lerp
    /// formula in the entry's dtype.
    pub fn update(&mut self, m: &dyn Module) -> Result<()> {
        let d = self.next_decay();
        self.updates += 1;
        let model = state_dict_of(m);
        if model.len() != self.state.len() {
            return Err(Error::msg(format!(
                "ema: the model has {} state entries, the EMA {}",
                model.len(),
                self.state.len()
            )));
        }
        for ((en, e), (mn, mv)) in self.state.iter().zip(&model) {
            if en != mn || e.shape() != mv.shape() {
                return Err(Error::msg(format!(
                    "ema: entry {en} {} does not match model entry {mn} {}",
                    e.shape(),
                    mv.shape()
                )));
            }
            match e.dtype() {
                DType::F32 => {
                    let w = (1.0 - d) as f32;
                    let src = mv.to_dtype(DType::F32)?.to_vec::<f32>()?;
                    e.with_slice_mut(|s: &mut [f32]| {
                        s.iter_mut()
                            .zip(&src)
                            .for_each(|(a, &b)| *a = lerp32(*a, b, w))
                    })?;
                }
                dt if dt.is_float() => {
                    let src = mv.to_vec_f64()?;
                    let cur = e.to_vec_f64()?;
                    let w = 1.0 - d;
                    let v: Vec<f64> = cur
                        .iter()
                        .zip(&src)
                        .map(|(&a, &b)| lerp64(a, b, w))
                        .collect();
                    e.assign(&Tensor::from_vec(v, e.shape().clone())?)?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The averaged state entries (all of them, integer ones included).
    pub fn state(&self) -> &[(String, Tensor)] {
        &self.state
    }

    /// Overwrite the averaged values from `(name, tensor)` pairs (resume); every entry
    /// must be present with the same shape.
    pub fn load_state(&mut self, get: impl Fn(&str) -> Result<Tensor>) -> Result<()> {
        for (n, t) in &self.state {
            t.assign(&get(n)?)
                .map_err(|e| e.context(format!("ema entry {n}")))?;
        }
        Ok(())
    }

    /// Copy the averaged values into `m` (for validation or export), returning the values
    /// `m` had so that `restore` can put them back.
    pub fn swap_into(&self, m: &dyn Module) -> Result<Vec<(String, Tensor)>> {
        let backup = state_dict_of(m)
            .into_iter()
            .map(|(n, t)| Ok((n, t.deep_clone()?)))
            .collect::<Result<Vec<_>>>()?;
        copy_state(m, &self.state)?;
        Ok(backup)
    }

    /// Put back values returned by `swap_into`.
    pub fn restore(m: &dyn Module, backup: &[(String, Tensor)]) -> Result<()> {
        copy_state(m, backup)
    }
}

/// Assign `values` (in state-dict order) into `m`'s state entries.
fn copy_state(m: &dyn Module, values: &[(String, Tensor)]) -> Result<()> {
    let _g = crate::no_grad();
    let targets = state_dict_of(m);
    if targets.len() != values.len() {
        return Err(Error::msg(format!(
            "ema: {} values for a model with {} state entries",
            values.len(),
            targets.len()
        )));
    }
    for ((tn, t), (vn, v)) in targets.iter().zip(values) {
        if tn != vn {
            return Err(Error::msg(format!(
                "ema: entry {vn} where the model has {tn}"
            )));
        }
        t.assign(v)
            .map_err(|e| e.context(format!("ema entry {tn}")))?;
    }
    Ok(())
}

/// torch's CPU lerp: `w < 0.5 ? a + w*(b-a) : b - (b-a)*(1-w)`.
fn lerp32(a: f32, b: f32, w: f32) -> f32 {
    if w.abs() < 0.5 {
        a + w * (b - a)
    } else {
        b - (b - a) * (1.0 - w)
    }
}

fn lerp64(a: f64, b: f64, w: f64) -> f64 {
    if w.abs() < 0.5 {
        a + w * (b - a)
    } else {
        b - (b - a) * (1.0 - w)
    }
}
