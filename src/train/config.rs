//! Run configuration for `fit`, with ultralytics' defaults (cfg/default.yaml). Saved in
//! every checkpoint; a resume must use the same values.
use crate::optim::{OptimizerKind, ScheduleConfig};
use serde::{Deserialize, Serialize};

/// Everything that decides a training run's numbers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    pub epochs: usize,
    /// Images per batch (used for accumulation and weight-decay scaling).
    pub batch: usize,
    /// Nominal batch size: gradients accumulate over `round(nbs / batch)` batches.
    pub nbs: usize,
    pub optimizer: OptimizerKind,
    pub lr0: f64,
    pub lrf: f64,
    pub momentum: f64,
    pub weight_decay: f64,
    pub warmup_epochs: f64,
    pub warmup_momentum: f64,
    pub warmup_bias_lr: f64,
    /// See `ScheduleConfig::min_warmup_iters` (0 in ultralytics 8.4, 100 in 8.0–8.3).
    pub min_warmup_iters: usize,
    pub cos_lr: bool,
    /// The last `close_mosaic` epochs run with `EpochCtx::close_mosaic` set (0: never).
    pub close_mosaic: usize,
    /// Gradient clipping norm (ultralytics: 10).
    pub max_grad_norm: f64,
    /// Early-stopping patience in epochs (0: off).
    pub patience: usize,
    pub min_delta: f64,
    /// Also keep `epochNNNN.safetensors` every `save_period` epochs (0: off) ...
    pub save_period: usize,
    /// ... of which only the newest `keep_last` stay (0: keep all).
    pub keep_last: usize,
    pub seed: u64,
    /// fp16 dynamic loss scaling (CUDA mixed precision).
    pub amp: bool,
    pub ema_decay: f64,
    pub ema_tau: f64,
    /// The validation metric that is "fitness" (larger is better): best checkpoint and
    /// early stopping follow it.
    pub fitness_key: String,
    /// Progress line on stderr.
    pub progress: bool,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 100,
            batch: 16,
            nbs: 64,
            optimizer: OptimizerKind::sgd(),
            lr0: 0.01,
            lrf: 0.01,
            momentum: 0.937,
            weight_decay: 5e-4,
            warmup_epochs: 3.0,
            warmup_momentum: 0.8,
            warmup_bias_lr: 0.1,
            min_warmup_iters: 0,
            cos_lr: false,
            close_mosaic: 10,
            max_grad_norm: 10.0,
            patience: 100,
            min_delta: 0.0,
            save_period: 0,
            keep_last: 3,
            seed: 0,
            amp: false,
            ema_decay: 0.9999,
            ema_tau: 2000.0,
            fitness_key: "fitness".into(),
            progress: true,
        }
    }
}

impl TrainConfig {
    /// The schedule part.
    pub fn schedule(&self) -> ScheduleConfig {
        ScheduleConfig {
            epochs: self.epochs,
            lr0: self.lr0,
            lrf: self.lrf,
            cos_lr: self.cos_lr,
            momentum: self.momentum,
            warmup_epochs: self.warmup_epochs,
            warmup_momentum: self.warmup_momentum,
            warmup_bias_lr: self.warmup_bias_lr,
            min_warmup_iters: self.min_warmup_iters,
        }
    }

    /// Names of the fields that differ from `other`, ignoring `progress` (display only).
    pub fn differences(&self, other: &TrainConfig) -> Vec<String> {
        let a = serde_json::to_value(self).unwrap_or_default();
        let b = serde_json::to_value(other).unwrap_or_default();
        let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
            return vec!["<config>".into()];
        };
        a.iter()
            .filter(|(k, v)| k.as_str() != "progress" && b.get(k.as_str()) != Some(v))
            .map(|(k, v)| {
                format!(
                    "{k} (checkpoint {}, now {v})",
                    b.get(k.as_str()).cloned().unwrap_or_default()
                )
            })
            .collect()
    }
}
