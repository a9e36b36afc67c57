//! Dynamic loss scaling for fp16 training (torch.amp.GradScaler's logic): scale the loss,
//! unscale the gradients before clipping, skip the step when any gradient is inf/NaN and
//! back off; grow the scale after `growth_interval` clean steps. The logic is plain f64
//! arithmetic, tested on CPU; mixed precision itself is CUDA-only.
use super::clip::scale_grads;
use crate::{Result, Tensor};

/// Scaler state; `enabled = false` makes every method a no-op (f32/bf16 training).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LossScaler {
    pub enabled: bool,
    pub scale: f64,
    pub growth_factor: f64,
    pub backoff_factor: f64,
    pub growth_interval: u64,
    /// Clean steps since the last change of scale.
    pub growth_tracker: u64,
}

impl LossScaler {
    /// init 65536, growth 2.0 every 2000 clean steps, backoff 0.5.
    pub fn new(enabled: bool) -> Self {
        LossScaler {
            enabled,
            scale: 65536.0,
            growth_factor: 2.0,
            backoff_factor: 0.5,
            growth_interval: 2000,
            growth_tracker: 0,
        }
    }

    /// `loss * scale` (the loss itself when disabled).
    pub fn scale_loss(&self, loss: &Tensor) -> Result<Tensor> {
        if self.enabled {
            loss.mul_scalar(self.scale)
        } else {
            Ok(loss.clone())
        }
    }

    /// Divide the gradients by the scale; returns true when any gradient is inf/NaN
    /// (then the optimizer step must be skipped). Disabled: does nothing and returns false
    /// (gradient clipping then reports a non-finite norm as an error).
    pub fn unscale(&self, params: &[Tensor]) -> Result<bool> {
        if !self.enabled {
            return Ok(false);
        }
        scale_grads(params, 1.0 / self.scale)?;
        for p in params {
            if let Some(g) = p.grad()
                && g.to_vec_f64()?.iter().any(|v| !v.is_finite())
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// After a step (taken or skipped): back off on inf/NaN, grow after enough clean steps.
    pub fn update(&mut self, found_inf: bool) {
        if !self.enabled {
            return;
        }
        if found_inf {
            self.scale *= self.backoff_factor;
            self.growth_tracker = 0;
        } else {
            self.growth_tracker += 1;
            if self.growth_tracker >= self.growth_interval {
                self.scale *= self.growth_factor;
                self.growth_tracker = 0;
            }
        }
    }
}
