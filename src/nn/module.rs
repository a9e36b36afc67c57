//! The module tree. A layer lists its own parameters and buffers and its child modules by
//! local name; everything else (dotted names, train/eval, freezing, state dicts) is derived
//! here, so a composite model only implements `visit_children`.
use crate::{Result, Tensor};

pub trait Module {
    /// This module's own parameters (not its children's) by local name ("weight").
    fn visit_own_params(&self, _f: &mut dyn FnMut(&str, &Tensor)) {}
    /// This module's own buffers (running statistics, counters) by local name.
    fn visit_own_buffers(&self, _f: &mut dyn FnMut(&str, &Tensor)) {}
    /// Direct children by local name ("0", "conv", "cv1").
    fn visit_children(&self, _f: &mut dyn FnMut(&str, &dyn Module)) {}
    /// Switch this module's own train/eval behaviour (children are handled by `set_training`).
    fn set_own_training(&self, _training: bool) {}

    /// Every parameter under `prefix` with PyTorch-style dotted names, in torch's order
    /// (own first, then each child in turn).
    fn visit_params(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor)) {
        self.visit_own_params(&mut |n, t| f(&join(prefix, n), t));
        self.visit_children(&mut |n, c| c.visit_params(&join(prefix, n), f));
    }
    /// Every buffer under `prefix`, dotted names.
    fn visit_buffers(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor)) {
        self.visit_own_buffers(&mut |n, t| f(&join(prefix, n), t));
        self.visit_children(&mut |n, c| c.visit_buffers(&join(prefix, n), f));
    }
    /// Parameters and buffers in torch's `state_dict()` order: per module, its parameters,
    /// then its buffers, then its children.
    fn visit_state(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor)) {
        self.visit_own_params(&mut |n, t| f(&join(prefix, n), t));
        self.visit_own_buffers(&mut |n, t| f(&join(prefix, n), t));
        self.visit_children(&mut |n, c| c.visit_state(&join(prefix, n), f));
    }
    fn named_parameters(&self) -> Vec<(String, Tensor)> {
        let mut v = Vec::new();
        self.visit_params("", &mut |n, t| v.push((n.to_string(), t.clone())));
        v
    }
    fn named_buffers(&self) -> Vec<(String, Tensor)> {
        let mut v = Vec::new();
        self.visit_buffers("", &mut |n, t| v.push((n.to_string(), t.clone())));
        v
    }
    /// Train (true) or eval (false) mode for this module and all below it.
    fn set_training(&self, training: bool) {
        self.set_own_training(training);
        self.visit_children(&mut |_, c| c.set_training(training));
    }
    fn train(&self) {
        self.set_training(true);
    }
    fn eval(&self) {
        self.set_training(false);
    }
}

/// `prefix.name`, or `name` at the root.
pub fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

/// Parameters and buffers by dotted name, detached, for saving.
pub fn state_dict_of(m: &dyn Module) -> Vec<(String, Tensor)> {
    let mut v = Vec::new();
    m.visit_state("", &mut |n, t| v.push((n.to_string(), t.detach())));
    v
}

/// Stop every parameter from wanting a gradient (frozen parameters record no graph).
pub fn freeze(m: &dyn Module) -> Result<()> {
    set_requires_grad(m, false)
}

/// Make every float parameter trainable again.
pub fn unfreeze(m: &dyn Module) -> Result<()> {
    set_requires_grad(m, true)
}

fn set_requires_grad(m: &dyn Module, on: bool) -> Result<()> {
    let mut res = Ok(());
    m.visit_params("", &mut |n, t| {
        if res.is_ok() && (t.dtype().is_float() || !on) {
            res = t
                .set_requires_grad(on)
                .map_err(|e| e.context(n.to_string()));
        }
    });
    res
}

/// A fresh trainable leaf holding `t`'s values.
pub fn parameter(t: Tensor) -> Result<Tensor> {
    let p = t.detach();
    p.set_requires_grad(true)?;
    Ok(p)
}
