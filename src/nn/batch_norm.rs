//! BatchNorm2d with torch's names and semantics: weight, bias, running_mean, running_var,
//! num_batches_tracked; batch statistics in training (updating the running ones), running
//! statistics in eval.
use super::{Module, parameter};
use crate::tensor::Act;
use crate::{DType, Error, Result, Tensor};
use std::sync::atomic::{AtomicBool, Ordering};

pub struct BatchNorm2d {
    pub weight: Tensor,
    pub bias: Tensor,
    pub running_mean: Tensor,
    pub running_var: Tensor,
    /// i64 scalar, as torch.
    pub num_batches_tracked: Tensor,
    pub eps: f64,
    /// `None` is torch's cumulative moving average (factor 1/num_batches_tracked).
    pub momentum: Option<f64>,
    training: AtomicBool,
}

impl BatchNorm2d {
    /// torch defaults: eps 1e-5, momentum 0.1, weight 1, bias 0, mean 0, var 1, training.
    pub fn new(channels: usize) -> Result<Self> {
        Ok(BatchNorm2d {
            weight: parameter(Tensor::ones(channels, DType::F32))?,
            bias: parameter(Tensor::zeros(channels, DType::F32))?,
            running_mean: Tensor::zeros(channels, DType::F32),
            running_var: Tensor::ones(channels, DType::F32),
            num_batches_tracked: Tensor::zeros((), DType::I64),
            eps: 1e-5,
            momentum: Some(0.1),
            training: AtomicBool::new(true),
        })
    }
    pub fn with_eps(mut self, eps: f64) -> Self {
        self.eps = eps;
        self
    }
    pub fn with_momentum(mut self, momentum: Option<f64>) -> Self {
        self.momentum = momentum;
        self
    }
    pub fn is_training(&self) -> bool {
        self.training.load(Ordering::Relaxed)
    }

    /// Normalise an [N, C, H, W] input.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_act(x, Act::Identity)
    }

    /// `act(self.forward(x))` as one fused op (`Tensor::batch_norm_act`).
    pub fn forward_act(&self, x: &Tensor, act: Act) -> Result<Tensor> {
        if x.rank() != 4 {
            return Err(Error::Shape {
                op: "BatchNorm2d",
                msg: format!("expected a 4-D [N, C, H, W] input, got {}", x.shape()),
            });
        }
        let training = self.is_training();
        let mut factor = self.momentum.unwrap_or(0.0);
        if training {
            let n = self.num_batches_tracked.with_slice_mut(|s: &mut [i64]| {
                s[0] += 1;
                s[0]
            })?;
            if self.momentum.is_none() {
                factor = 1.0 / n as f64;
            }
        }
        x.batch_norm_act(
            Some(&self.running_mean),
            Some(&self.running_var),
            Some(&self.weight),
            Some(&self.bias),
            training,
            factor,
            self.eps,
            act,
        )
    }
}

impl Module for BatchNorm2d {
    fn visit_own_params(&self, f: &mut dyn FnMut(&str, &Tensor)) {
        f("weight", &self.weight);
        f("bias", &self.bias);
    }
    fn visit_own_buffers(&self, f: &mut dyn FnMut(&str, &Tensor)) {
        f("running_mean", &self.running_mean);
        f("running_var", &self.running_var);
        f("num_batches_tracked", &self.num_batches_tracked);
    }
    fn set_own_training(&self, training: bool) {
        self.training.store(training, Ordering::Relaxed);
    }
}
