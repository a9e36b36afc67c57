//! The backward pass: topological order, gradient accumulation, leaf `.grad`.
use crate::tensor::TensorId;
use crate::{Error, Result, Tensor};
use std::collections::{HashMap, HashSet};

impl Tensor {
    /// d(self)/d(leaves) for a one-element tensor (the loss), accumulated into each
    /// trainable leaf's `.grad`.
    pub fn backward(&self) -> Result<()> {
        if self.elem_count() != 1 {
            return Err(Error::Autograd(format!(
                "backward() needs a one-element loss, got shape {}; use backward_with(seed)",
                self.shape()
            )));
        }
        self.backward_with(&self.ones_like())
    }

    /// Backward with an explicit seed gradient of this tensor's shape.
    pub fn backward_with(&self, seed: &Tensor) -> Result<()> {
        if seed.shape() != self.shape() {
            return Err(Error::Autograd(format!(
                "seed shape {} differs from tensor shape {}",
                seed.shape(),
                self.shape()
            )));
        }
        if !self.tracks_grad() {
            return Err(Error::Autograd(
                "tensor does not track gradients (no trainable input, or made under no_grad)"
                    .into(),
            ));
        }
        let _g = super::no_grad();
        let order = topo_order(self);
        let mut grads: HashMap<TensorId, Tensor> = HashMap::new();
        grads.insert(self.id(), seed.to_dtype(self.dtype())?);
        for t in order.iter().rev() {
            let Some(g) = grads.remove(&t.id()) else {
                continue;
            };
            let Some(node) = t.node() else {
                // A leaf: accumulate into .grad.
                if t.requires_grad() {
                    let acc = match t.grad() {
                        Some(prev) => prev.add(&g)?,
                        None => g.contiguous()?.detach(),
                    };
                    t.set_grad(Some(acc));
                }
                continue;
            };
            let t0 = super::profile::start();
            let gin = (node.backward)(t, &g)
                .map_err(|e| e.context(format!("backward of {}", node.op)))?;
            super::profile::stop(node.op, t0);
            if gin.len() != node.inputs.len() {
                return Err(Error::Autograd(format!(
                    "backward of {} returned {} grads for {} inputs",
                    node.op,
                    gin.len(),
                    node.inputs.len()
                )));
            }
            for (inp, gi) in node.inputs.iter().zip(gin) {
                let Some(gi) = gi else { continue };
                if !inp.tracks_grad() {
                    continue;
                }
                if gi.shape() != inp.shape() {
                    return Err(Error::Autograd(format!(
                        "backward of {} gave grad {} for input {}",
                        node.op,
                        gi.shape(),
                        inp.shape()
                    )));
                }
                let gi = if gi.dtype() != inp.dtype() {
                    gi.to_dtype(inp.dtype())?
                } else {
                    gi
                };
                let acc = match grads.remove(&inp.id()) {
                    Some(prev) => {
                        let t0 = super::profile::start();
                        let sum = accumulate(prev, &gi)?;
                        super::profile::stop("(grad accumulation)", t0);
                        sum
                    }
                    None => gi,
                };
                grads.insert(inp.id(), acc);
            }
        }
        Ok(())
    }
}

/// prev + g. In place when `prev` is a contiguous f32/f64 buffer nobody else holds (a
/// gradient this pass made), which saves an allocation and a pass over memory per
/// tensor used twice (residuals, C2f's split); otherwise a new tensor.
fn accumulate(prev: Tensor, g: &Tensor) -> Result<Tensor> {
    use rayon::prelude::*;
    fn add_into<T: crate::tensor::StorageElement + std::ops::AddAssign>(
        prev: &Tensor,
        g: &Tensor,
    ) -> Result<()> {
        g.with_slice(|gs: &[T]| {
            prev.with_slice_mut(|ps: &mut [T]| {
                ps.par_chunks_mut(1 << 15)
                    .zip(gs.par_chunks(1 << 15))
                    .for_each(|(p, g)| p.iter_mut().zip(g).for_each(|(a, &b)| *a += b))
            })
        })?
    }
    let in_place = prev.is_sole_owner()
        && prev.is_contiguous()
        && prev.node().is_none()
        && prev.dtype() == g.dtype()
        && prev.shape() == g.shape();
    match prev.dtype() {
        crate::DType::F32 if in_place => add_into::<f32>(&prev, g).map(|_| prev),
        crate::DType::F64 if in_place => add_into::<f64>(&prev, g).map(|_| prev),
        _ => prev.add(g),
    }
}

/// Every tensor reachable from `root` through recorded nodes, inputs before outputs.
/// Iterative DFS: deep networks must not overflow the stack.
fn topo_order(root: &Tensor) -> Vec<Tensor> {
    let mut order = Vec::new();
    let mut seen: HashSet<TensorId> = HashSet::new();
    let mut stack: Vec<(Tensor, bool)> = vec![(root.clone(), false)];
    while let Some((t, expanded)) = stack.pop() {
        if expanded {
            order.push(t);
            continue;
        }
        if !seen.insert(t.id()) {
            continue;
        }
        stack.push((t.clone(), true));
        if let Some(node) = t.node() {
            for i in &node.inputs {
                if i.tracks_grad() && !seen.contains(&i.id()) {
                    stack.push((i.clone(), false));
                }
            }
        }
    }
    order
}
