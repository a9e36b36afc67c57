//! Training: the loop, checkpoints, resume, early stopping, metrics log.
//!
//! A model plugs in through `TrainTask`; `fit` runs ultralytics' schedule (warmup, lr
//! lambda, nominal-batch accumulation, clipping, EMA, per-epoch validation) and writes
//! resumable checkpoints.
pub mod checkpoint;
pub mod config;
pub mod early_stop;
pub mod embed_cache;
pub mod gd_cache;
pub mod gd_data;
pub mod gd_teacher;
pub mod metrics_log;
pub mod sam_data;
pub mod sam_teacher;
pub mod signal;
pub mod student;
pub mod trainer;
pub mod yolo;
pub mod yolo_val;

pub use checkpoint::{Checkpoint, CheckpointManager, TrainState};
pub use config::TrainConfig;
pub use early_stop::EarlyStopping;
pub use metrics_log::MetricsLog;
pub use signal::{
    clear_interrupt, install_signal_handlers, interrupt_requested, request_interrupt,
};
pub use trainer::{EpochCtx, FitStatus, FitSummary, StepCtx, StepLoss, TrainTask, fit, step_seed};
