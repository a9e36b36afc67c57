//! AdamW (decoupled weight decay) — torch.optim.AdamW, same arithmetic order.
use super::{check_params, grad_values, update_in_place};
use crate::{Result, Tensor};

#[derive(Clone, Debug)]
pub struct AdamWConfig {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        AdamWConfig {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 1e-2,
        }
    }
}

pub struct AdamW {
    params: Vec<Tensor>,
    pub cfg: AdamWConfig,
    state: Vec<Option<AdamState>>,
}

impl AdamW {
    pub fn new(params: Vec<Tensor>, cfg: AdamWConfig) -> Result<Self> {
        check_params(&params)?;
        let n = params.len();
        Ok(AdamW {
            params,
            cfg,
            state: vec![None; n],
        })
    }

    pub fn params(&self) -> &[Tensor] {
        &self.params
    }

    pub fn step(&mut self) -> Result<()> {
        for (p, st) in self.params.iter().zip(self.state.iter_mut()) {
            let Some(g) = grad_values(p)? else { continue };
            adamw_update(p, &g, st, &self.cfg)?;
        }
        Ok(())
    }

    pub fn zero_grad(&self) {
        super::zero_grad(&self.params);
    }
}

/// Per-parameter AdamW state: (step count, exp_avg, exp_avg_sq).
pub(crate) type AdamState = (u64, Vec<f64>, Vec<f64>);

/// One torch.optim.AdamW update of `p` from gradient `g`. Shared by `AdamW` and the
/// grouped `Optimizer`.
pub(crate) fn adamw_update(
    p: &Tensor,
    g: &[f64],
    st: &mut Option<AdamState>,
    c: &AdamWConfig,
) -> Result<()> {
    let (t, m, v) = st.get_or_insert_with(|| (0, vec![0.0; g.len()], vec![0.0; g.len()]));
    *t += 1;
    for i in 0..g.len() {
        m[i] = c.beta1 * m[i] + (1.0 - c.beta1) * g[i];
        v[i] = c.beta2 * v[i] + (1.0 - c.beta2) * g[i] * g[i];
    }
    let bc1 = 1.0 - c.beta1.powi(*t as i32);
    let bc2 = 1.0 - c.beta2.powi(*t as i32);
    let step = c.lr / bc1;
    let (m, v) = (&*m, &*v);
    update_in_place(p, |i, w| {
        let w = w * (1.0 - c.lr * c.weight_decay);
        let denom = v[i].sqrt() / bc2.sqrt() + c.eps;
        w - step * m[i] / denom
    })
}
