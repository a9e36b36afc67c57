//! Parameter groups and a grouped optimizer, as ultralytics' `build_optimizer` makes them:
//! g0 = weights with decay, g1 = normalisation weights (no decay), g2 = biases (no decay).
//! Each group has its own lr, momentum (SGD momentum / AdamW beta1) and weight decay, which
//! the scheduler sets every step; the update arithmetic is torch.optim.SGD / AdamW's.
use super::adamw::{AdamState, adamw_update};
use super::sgd::sgd_update;
use super::{AdamWConfig, SgdConfig, check_params, grad_values};
use crate::nn::Module;
use crate::{Error, Result, Tensor};
use std::collections::BTreeMap;

/// Which of ultralytics' three groups a parameter belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum GroupKind {
    /// g0: weights with weight decay.
    Weight,
    /// g1: normalisation-layer weights, no decay.
    Norm,
    /// g2: biases, no decay (their warmup lr starts at `warmup_bias_lr`).
    Bias,
}

/// The default classifier: a name ending in "bias" is g2, another rank-1 parameter is a
/// normalisation weight (g1), everything else is g0.
pub fn classify_param(name: &str, t: &Tensor) -> GroupKind {
    if name.ends_with("bias") {
        GroupKind::Bias
    } else if t.rank() == 1 {
        GroupKind::Norm
    } else {
        GroupKind::Weight
    }
}

/// A custom `(name, parameter) -> group` rule for `Optimizer::from_module`.
pub type ParamClassifier<'a> = &'a dyn Fn(&str, &Tensor) -> GroupKind;

/// One parameter group with its hyper-parameters.
#[derive(Clone, Debug)]
pub struct ParamGroup {
    pub kind: GroupKind,
    /// Dotted parameter names, parallel to `params`.
    pub names: Vec<String>,
    pub params: Vec<Tensor>,
    /// Current learning rate (set by the scheduler).
    pub lr: f64,
    /// The base lr the schedule multiplies (torch's `initial_lr`).
    pub initial_lr: f64,
    /// SGD momentum, or AdamW beta1.
    pub momentum: f64,
    pub weight_decay: f64,
}

/// The update rule shared by all groups.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum OptimizerKind {
    /// torch.optim.SGD with the group's momentum, no dampening.
    Sgd { nesterov: bool },
    /// torch.optim.AdamW with betas (group momentum, beta2).
    AdamW { beta2: f64, eps: f64 },
}

impl OptimizerKind {
    /// ultralytics' SGD: nesterov momentum.
    pub fn sgd() -> Self {
        OptimizerKind::Sgd { nesterov: true }
    }
    /// ultralytics' AdamW: beta2 0.999, eps 1e-8.
    pub fn adamw() -> Self {
        OptimizerKind::AdamW {
            beta2: 0.999,
            eps: 1e-8,
        }
    }
}

/// Per-parameter optimizer state.
#[derive(Clone, Debug, PartialEq)]
pub enum ParamState {
    /// SGD momentum buffer.
    Momentum(Vec<f64>),
    /// AdamW step count, exp_avg, exp_avg_sq.
    Adam {
        step: u64,
        exp_avg: Vec<f64>,
        exp_avg_sq: Vec<f64>,
    },
}

/// A grouped optimizer over named parameters; state is kept per parameter name.
pub struct Optimizer {
    pub kind: OptimizerKind,
    pub groups: Vec<ParamGroup>,
    state: BTreeMap<String, ParamState>,
}

impl Optimizer {
    /// Groups from explicit `(kind, names, params)` lists, every group at `lr`/`momentum`;
    /// weight decay `decay` for `Weight` groups and 0 for the others (ultralytics).
    pub fn new(
        kind: OptimizerKind,
        groups: Vec<(GroupKind, Vec<(String, Tensor)>)>,
        lr: f64,
        momentum: f64,
        decay: f64,
    ) -> Result<Self> {
        let mut seen = BTreeMap::new();
        let mut out = Vec::new();
        for (gk, named) in groups {
            let (names, params): (Vec<String>, Vec<Tensor>) = named.into_iter().unzip();
            check_params(&params)?;
            for n in &names {
                if seen.insert(n.clone(), ()).is_some() {
                    return Err(Error::msg(format!(
                        "optimizer: parameter {n} appears in more than one group"
                    )));
                }
            }
            out.push(ParamGroup {
                kind: gk,
                names,
                params,
                lr,
                initial_lr: lr,
                momentum,
                weight_decay: if gk == GroupKind::Weight { decay } else { 0.0 },
            });
        }
        Ok(Optimizer {
            kind,
            groups: out,
            state: BTreeMap::new(),
        })
    }

    /// ultralytics' `build_optimizer`: the trainable parameters of `module` split into
    /// [g0 Weight, g1 Norm, g2 Bias] by `classify` (default `classify_param`). Frozen
    /// parameters (requires_grad false) are left out.
    pub fn from_module(
        module: &dyn Module,
        kind: OptimizerKind,
        lr: f64,
        momentum: f64,
        decay: f64,
        classify: Option<ParamClassifier>,
    ) -> Result<Self> {
        let order = [GroupKind::Weight, GroupKind::Norm, GroupKind::Bias];
        let mut g: Vec<(GroupKind, Vec<(String, Tensor)>)> =
            order.iter().map(|k| (*k, Vec::new())).collect();
        for (name, t) in module.named_parameters() {
            if !t.requires_grad() {
                continue;
            }
            let k = classify.map_or_else(|| classify_param(&name, &t), |f| f(&name, &t));
            let i = order.iter().position(|o| *o == k).unwrap_or(0);
            g[i].1.push((name, t));
        }
        Optimizer::new(kind, g, lr, momentum, decay)
    }

    /// Whether groups carry a "momentum" that warmup ramps (SGD only, as in ultralytics:
    /// Adam groups have betas, not momentum).
    pub fn has_momentum(&self) -> bool {
        matches!(self.kind, OptimizerKind::Sgd { .. })
    }

    /// Every parameter, group by group.
    pub fn params(&self) -> impl Iterator<Item = (&str, &Tensor)> {
        self.groups
            .iter()
            .flat_map(|g| g.names.iter().map(String::as_str).zip(g.params.iter()))
    }

    /// One update from the current gradients; parameters without a gradient are skipped.
    pub fn step(&mut self) -> Result<()> {
        let kind = self.kind;
        for g in &self.groups {
            for (name, p) in g.names.iter().zip(&g.params) {
                let Some(grad) = grad_values(p)? else {
                    continue;
                };
                match kind {
                    OptimizerKind::Sgd { nesterov } => {
                        let c = SgdConfig {
                            lr: g.lr,
                            momentum: g.momentum,
                            dampening: 0.0,
                            weight_decay: g.weight_decay,
                            nesterov,
                        };
                        let mut buf = match self.state.remove(name) {
                            Some(ParamState::Momentum(b)) => Some(b),
                            _ => None,
                        };
                        sgd_update(p, &grad, &mut buf, &c)?;
                        if let Some(b) = buf {
                            self.state.insert(name.clone(), ParamState::Momentum(b));
                        }
                    }
                    OptimizerKind::AdamW { beta2, eps } => {
                        let c = AdamWConfig {
                            lr: g.lr,
                            beta1: g.momentum,
                            beta2,
                            eps,
                            weight_decay: g.weight_decay,
                        };
                        let mut st: Option<AdamState> = match self.state.remove(name) {
                            Some(ParamState::Adam {
                                step,
                                exp_avg,
                                exp_avg_sq,
                            }) => Some((step, exp_avg, exp_avg_sq)),
                            _ => None,
                        };
                        adamw_update(p, &grad, &mut st, &c)?;
                        if let Some((step, exp_avg, exp_avg_sq)) = st {
                            let s = ParamState::Adam {
                                step,
                                exp_avg,
                                exp_avg_sq,
                            };
                            self.state.insert(name.clone(), s);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Clear every parameter's gradient.
    pub fn zero_grad(&self) {
        self.groups.iter().for_each(|g| super::zero_grad(&g.params));
    }

    /// The state of one parameter (None before its first step).
    pub fn state(&self, name: &str) -> Option<&ParamState> {
        self.state.get(name)
    }

    /// All per-parameter state by name.
    pub fn state_map(&self) -> &BTreeMap<String, ParamState> {
        &self.state
    }

    /// Replace the per-parameter state (resume). Every name must be a parameter of this
    /// optimizer with a state of the right kind and length.
    pub fn set_state(&mut self, state: BTreeMap<String, ParamState>) -> Result<()> {
        let sizes: BTreeMap<&str, usize> =
            self.params().map(|(n, t)| (n, t.elem_count())).collect();
        for (name, st) in &state {
            let Some(&n) = sizes.get(name.as_str()) else {
                return Err(Error::msg(format!(
                    "optimizer state names {name}, which is not a parameter of this optimizer"
                )));
            };
            let ok = match (st, self.kind) {
                (ParamState::Momentum(b), OptimizerKind::Sgd { .. }) => b.len() == n,
                (
                    ParamState::Adam {
                        exp_avg,
                        exp_avg_sq,
                        ..
                    },
                    OptimizerKind::AdamW { .. },
                ) => exp_avg.len() == n && exp_avg_sq.len() == n,
                _ => false,
            };
            if !ok {
                return Err(Error::msg(format!(
                    "optimizer state for {name} does not fit the parameter ({n} values, {:?})",
                    self.kind
                )));
            }
        }
        self.state = state;
        Ok(())
    }
}
