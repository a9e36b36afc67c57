//! SGD with momentum, dampening, Nesterov and (coupled) weight decay — torch.optim.SGD.
use super::{check_params, grad_values, update_in_place};
use crate::{Result, Tensor};

#[derive(Clone, Debug)]
pub struct SgdConfig {
    pub lr: f64,
    pub momentum: f64,
    pub dampening: f64,
    pub weight_decay: f64,
    pub nesterov: bool,
}

impl Default for SgdConfig {
    fn default() -> Self {
        SgdConfig {
            lr: 0.01,
            momentum: 0.0,
            dampening: 0.0,
            weight_decay: 0.0,
            nesterov: false,
        }
    }
}

pub struct Sgd {
    params: Vec<Tensor>,
    pub cfg: SgdConfig,
    /// Momentum buffers (None until a parameter's first step, as in torch).
    bufs: Vec<Option<Vec<f64>>>,
}

impl Sgd {
    pub fn new(params: Vec<Tensor>, cfg: SgdConfig) -> Result<Self> {
        check_params(&params)?;
        let n = params.len();
        Ok(Sgd {
            params,
            cfg,
            bufs: vec![None; n],
        })
    }

    pub fn params(&self) -> &[Tensor] {
        &self.params
    }

    /// One update from the current `.grad`s; parameters without a gradient are skipped.
    pub fn step(&mut self) -> Result<()> {
        for (p, buf) in self.params.iter().zip(self.bufs.iter_mut()) {
            let Some(g) = grad_values(p)? else { continue };
            sgd_update(p, &g, buf, &self.cfg)?;
        }
        Ok(())
    }

    pub fn zero_grad(&self) {
        super::zero_grad(&self.params);
    }
}

/// One torch.optim.SGD update of `p` from gradient `g`; `buf` is its momentum buffer
/// (None before the first step). Shared by `Sgd` and the grouped `Optimizer`.
pub(crate) fn sgd_update(
    p: &Tensor,
    g: &[f64],
    buf: &mut Option<Vec<f64>>,
    c: &SgdConfig,
) -> Result<()> {
    let w = p.to_vec_f64()?;
    let mut d: Vec<f64> = g
        .iter()
        .zip(&w)
        .map(|(g, w)| g + c.weight_decay * w)
        .collect();
    if c.momentum != 0.0 {
        let b = match buf.take() {
            None => d.clone(),
            Some(mut b) => {
                b.iter_mut()
                    .zip(&d)
                    .for_each(|(b, d)| *b = c.momentum * *b + (1.0 - c.dampening) * d);
                b
            }
        };
        if c.nesterov {
            d.iter_mut().zip(&b).for_each(|(d, b)| *d += c.momentum * b);
        } else {
            d.copy_from_slice(&b);
        }
        *buf = Some(b);
    }
    update_in_place(p, |i, v| v - c.lr * d[i])
}
