//! Reverse-mode autograd. Each op whose inputs track gradients records a `Node` on its
//! output: the inputs and a backward rule. The graph is the tape: `backward` orders the
//! recorded nodes topologically and replays them in reverse. Frozen tensors (and anything
//! computed under `no_grad`) record nothing, so they hold no graph memory and get no grad.
mod backward;
pub mod gradcheck;
pub mod profile;

use crate::{Result, Tensor};
use std::cell::Cell;

/// A backward rule: given the op's output and d(loss)/d(output), return d(loss)/d(input)
/// for each input (None where an input needs none). Runs under `no_grad`.
pub type BackwardFn = Box<dyn Fn(&Tensor, &Tensor) -> Result<Vec<Option<Tensor>>> + Send + Sync>;

pub struct Node {
    pub op: &'static str,
    pub inputs: Vec<Tensor>,
    pub backward: BackwardFn,
}

impl Drop for Node {
    /// Tear a long chain of nodes down iteratively: the default recursive drop overflows the
    /// stack on deep graphs (a 20 000-op chain, say). The rule's captured tensors go first,
    /// while `inputs` still holds them, so that drop never reaches a last reference.
    fn drop(&mut self) {
        drop(std::mem::replace(
            &mut self.backward,
            Box::new(|_, _| Ok(Vec::new())),
        ));
        let mut stack = std::mem::take(&mut self.inputs);
        while let Some(t) = stack.pop() {
            if let Some(mut node) = t.take_node_if_last() {
                drop(std::mem::replace(
                    &mut node.backward,
                    Box::new(|_, _| Ok(Vec::new())),
                ));
                stack.append(&mut node.inputs);
            }
        }
    }
}

thread_local! {
    static GRAD_ENABLED: Cell<bool> = const { Cell::new(true) };
}

/// Whether ops record their graph on this thread right now.
pub fn grad_enabled() -> bool {
    GRAD_ENABLED.with(|g| g.get())
}

/// Restores the previous recording state when dropped.
pub struct NoGradGuard {
    prev: bool,
}

impl Drop for NoGradGuard {
    fn drop(&mut self) {
        GRAD_ENABLED.with(|g| g.set(self.prev));
    }
}

/// Stop recording until the guard drops: `let _g = no_grad();`. Costs one thread-local write.
pub fn no_grad() -> NoGradGuard {
    let prev = GRAD_ENABLED.with(|g| g.replace(false));
    NoGradGuard { prev }
}

/// Attach a backward rule to a freshly computed `out` when recording is on and any input
/// tracks gradients; otherwise return `out` untouched (no cost beyond the check).
pub fn record<F>(out: Tensor, op: &'static str, inputs: &[&Tensor], backward: F) -> Tensor
where
    F: Fn(&Tensor, &Tensor) -> Result<Vec<Option<Tensor>>> + Send + Sync + 'static,
{
    if !grad_enabled() || !inputs.iter().any(|t| t.tracks_grad()) {
        return out;
    }
    let node = Node {
        op,
        inputs: inputs.iter().map(|t| (*t).clone()).collect(),
        backward: Box::new(backward),
    };
    out.view_with(out.layout().clone(), Some(node))
}
