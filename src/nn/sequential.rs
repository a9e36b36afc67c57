//! Sequential composition: children named "0", "1", ... like torch.nn.Sequential, so a
//! reference state dict's names line up; plus parameter-free activation layers.
use super::{Forward, Module};
use crate::{Result, ResultExt, Tensor};

/// A layer that both computes and exposes named parameters.
pub trait Layer: Forward + Module + Send + Sync {}
impl<T: Forward + Module + Send + Sync> Layer for T {}

#[derive(Default)]
pub struct Sequential {
    layers: Vec<Box<dyn Layer>>,
}

impl Sequential {
    pub fn new() -> Self {
        Sequential { layers: Vec::new() }
    }
    pub fn push(mut self, l: impl Layer + 'static) -> Self {
        self.layers.push(Box::new(l));
        self
    }
    pub fn len(&self) -> usize {
        self.layers.len()
    }
    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }
}

impl Forward for Sequential {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = x.clone();
        for (i, l) in self.layers.iter().enumerate() {
            h = l.forward(&h).with_context(|| format!("layer {i}"))?;
        }
        Ok(h)
    }
}

impl Module for Sequential {
    fn visit_children(&self, f: &mut dyn FnMut(&str, &dyn Module)) {
        for (i, l) in self.layers.iter().enumerate() {
            f(&i.to_string(), l.as_ref());
        }
    }
}

/// Parameter-free activations as layers.
#[derive(Clone, Copy, Debug)]
pub enum Activation {
    Relu,
    Silu,
    Gelu,
    GeluTanh,
    Sigmoid,
    Tanh,
}

impl Forward for Activation {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Activation::Relu => x.relu(),
            Activation::Silu => x.silu(),
            Activation::Gelu => x.gelu(),
            Activation::GeluTanh => x.gelu_tanh(),
            Activation::Sigmoid => x.sigmoid(),
            Activation::Tanh => x.tanh(),
        }
    }
}
impl Module for Activation {}

/// Flatten all dims after the batch dim.
pub struct Flatten;
impl Forward for Flatten {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.flatten(1, -1)
    }
}
impl Module for Flatten {}
