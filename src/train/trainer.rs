//! The training loop, model-agnostic, in ultralytics' order (engine/trainer.py `_do_train`):
//! per batch warmup (lr, momentum, accumulate) → forward/loss (the task) → scaled backward
//! → every `accumulate` batches: unscale, clip (max_norm), optimizer step, zero grads, EMA
//! update; per epoch validation on the EMA weights, metrics log, early stopping and
//! checkpoints. SIGINT/SIGTERM (or `signal::request_interrupt`) stop at the next batch
//! boundary with a checkpoint that resumes bit-exactly, mid-epoch included.
use super::checkpoint::{CheckpointManager, GroupHyper, TrainState, checkpoint_bytes};
use super::config::TrainConfig;
use super::early_stop::EarlyStopping;
use super::metrics_log::MetricsLog;
use super::signal;
use crate::data::progress::Progress;
use crate::nn::Module;
use crate::optim::schedule::{accumulation, warmup_accumulate};
use crate::optim::{
    GroupKind, LossScaler, ModelEma, Optimizer, ParamState, classify_param, clip_grad_norm,
};
use crate::tensor::Rng;
use crate::{Error, Result, Tensor};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What the task computed for one batch.
pub struct StepLoss {
    /// The scalar to differentiate (ultralytics: the loss summed over items × batch size).
    pub loss: Tensor,
    /// Named loss items for logging ("box", "seg", "cls", "dfl").
    pub items: Vec<(String, f64)>,
}

/// Per-epoch context given to `TrainTask::on_epoch_start`.
pub struct EpochCtx {
    pub epoch: usize,
    pub epochs: usize,
    /// True in the last `close_mosaic` epochs: turn mosaic off.
    pub close_mosaic: bool,
}

/// Per-batch context given to `TrainTask::train_step`.
pub struct StepCtx<'a> {
    pub epoch: usize,
    /// Batch index within the epoch.
    pub batch: usize,
    /// Global batch index `batch + batches_per_epoch * epoch`.
    pub ni: usize,
    /// The run's RNG (saved in checkpoints), for augmentation or dropout.
    pub rng: &'a mut Rng,
    /// `step_seed(seed, epoch, batch)`, for tasks that seed their own RNG per batch.
    pub seed: u64,
}

/// A model plus its data and loss, as the loop sees it.
pub trait TrainTask {
    /// The model being trained (its trainable parameters are optimised).
    fn module(&self) -> &dyn Module;
    /// Batches per epoch (constant over the run, as a data loader's length).
    fn batches_per_epoch(&self) -> usize;
    /// Called at the start of each epoch, also for the epoch a resume lands in; must set
    /// state from `ctx` alone (e.g. the epoch's shuffle from `(seed, epoch)`).
    fn on_epoch_start(&mut self, _ctx: &EpochCtx) -> Result<()> {
        Ok(())
    }
    /// Forward and loss of batch `ctx.batch` in train mode; the loop runs backward.
    fn train_step(&mut self, ctx: &mut StepCtx) -> Result<StepLoss>;
    /// Validation metrics. During this call `module()` holds the EMA weights, in eval mode.
    fn validate(&mut self, epoch: usize) -> Result<BTreeMap<String, f64>>;
    /// Parameter group of a parameter (default: `classify_param`).
    fn param_group(&self, name: &str, t: &Tensor) -> GroupKind {
        classify_param(name, t)
    }
}

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FitStatus {
    Completed,
    EarlyStopped,
    /// Stopped by a signal / `request_interrupt`; `last.safetensors` resumes it.
    Interrupted,
}

/// Result of `fit`.
#[derive(Clone, Debug)]
pub struct FitSummary {
    pub status: FitStatus,
    pub epochs_completed: usize,
    pub global_step: u64,
    pub best_fitness: Option<f64>,
    /// Metrics of the last validated epoch.
    pub last_metrics: Vec<(String, f64)>,
    pub last_checkpoint: PathBuf,
    pub best_checkpoint: Option<PathBuf>,
}

/// A seed for `(seed, epoch, step)` (splitmix64 mixing), so every batch's randomness is
/// reproducible on its own.
pub fn step_seed(seed: u64, epoch: usize, step: usize) -> u64 {
    let mix = |mut z: u64| {
        z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    mix(mix(mix(seed) ^ epoch as u64) ^ step as u64)
}

/// The loop's mutable state next to optimizer, EMA and scaler.
struct Run {
    st: TrainState,
    rng: Rng,
    tloss_n: usize,
}

/// Train `task` under `cfg`, writing `out_dir/weights/{last,best,epochNNNN}.safetensors`,
/// `out_dir/results.csv` and `out_dir/metrics.jsonl`. With `resume`, continue from
/// `weights/last.safetensors` (the config must match the checkpoint's).
pub fn fit(
    task: &mut dyn TrainTask,
    cfg: &TrainConfig,
    out_dir: &Path,
    resume: bool,
) -> Result<FitSummary> {
    signal::clear_interrupt();
    signal::install_signal_handlers();
    let mgr = CheckpointManager::new(&out_dir.join("weights"), cfg.save_period, cfg.keep_last)?;
    let sched = cfg.schedule();
    let nb = task.batches_per_epoch();
    if nb == 0 || cfg.epochs == 0 {
        return Err(Error::msg(format!(
            "fit: nothing to train ({nb} batches per epoch, {} epochs)",
            cfg.epochs
        )));
    }
    let (acc0, wd) = accumulation(cfg.nbs, cfg.batch, cfg.weight_decay, Some(nb * cfg.epochs));
    let classify = |n: &str, t: &Tensor| task.param_group(n, t);
    let mut opt = Optimizer::from_module(
        task.module(),
        cfg.optimizer,
        cfg.lr0,
        cfg.momentum,
        wd,
        Some(&classify),
    )?;
    let mut ema = ModelEma::with_decay(task.module(), cfg.ema_decay, cfg.ema_tau)?;
    let mut scaler = LossScaler::new(cfg.amp);
    let mut run = Run {
        st: TrainState {
            epoch: 0,
            next_batch: 0,
            epochs_completed: 0,
            global_step: 0,
            last_opt_step: -1,
            accumulate: acc0,
            ema_updates: 0,
            rng_state: [0; 4],
            rng_spare: None,
            best_fitness: None,
            stopper: EarlyStopping::new(cfg.patience, cfg.min_delta),
            scaler: scaler.clone(),
            groups: Vec::new(),
            adam_steps: BTreeMap::new(),
            tloss: Vec::new(),
            last_metrics: Vec::new(),
            config: cfg.clone(),
        },
        rng: Rng::new(cfg.seed),
        tloss_n: 0,
    };
    let mut log = if resume {
        let ck = mgr.load_last()?;
        let diff = cfg.differences(&ck.state.config);
        if !diff.is_empty() {
            return Err(Error::msg(format!(
                "cannot resume {}: the config differs from the checkpoint's: {}",
                mgr.last_path().display(),
                diff.join("; ")
            )));
        }
        ck.restore(task.module(), &mut ema, &mut opt)?;
        run.st = ck.state.clone();
        run.rng = Rng::from_state(run.st.rng_state, run.st.rng_spare);
        run.tloss_n = run.st.next_batch;
        scaler = run.st.scaler.clone();
        MetricsLog::resume(out_dir, run.st.epochs_completed)?
    } else {
        opt.zero_grad();
        MetricsLog::new(out_dir)
    };
    let nw = sched.warmup_iters(nb);
    let mut status = FitStatus::Completed;
    let mut epoch = run.st.epoch;
    'epochs: while epoch < cfg.epochs {
        let close = cfg.close_mosaic > 0 && epoch + cfg.close_mosaic >= cfg.epochs;
        task.on_epoch_start(&EpochCtx {
            epoch,
            epochs: cfg.epochs,
            close_mosaic: close,
        })?;
        task.module().train();
        let progress = Progress::new(&format!("epoch {}/{}", epoch + 1, cfg.epochs), nb as u64);
        let progress = if cfg.progress {
            progress
        } else {
            progress.hidden()
        };
        let start = if epoch == run.st.epoch {
            run.st.next_batch
        } else {
            0
        };
        progress.inc(start as u64);
        for i in start..nb {
            let ni = i + nb * epoch;
            if nw > 0 && ni <= nw {
                run.st.accumulate = warmup_accumulate(ni, nw, acc0);
            }
            sched.apply(&mut opt, epoch, ni, nw);
            let mut ctx = StepCtx {
                epoch,
                batch: i,
                ni,
                rng: &mut run.rng,
                seed: step_seed(cfg.seed, epoch, i),
            };
            let step = task
                .train_step(&mut ctx)
                .map_err(|e| e.context(format!("epoch {} batch {i}", epoch + 1)))?;
            scaler.scale_loss(&step.loss)?.backward()?;
            update_tloss(&mut run, &step.items);
            if ni as i64 - run.st.last_opt_step >= run.st.accumulate as i64 {
                optimizer_step(
                    task.module(),
                    &mut opt,
                    &mut ema,
                    &mut scaler,
                    cfg.max_grad_norm,
                )
                .map_err(|e| e.context(format!("epoch {} batch {i}: optimizer step", epoch + 1)))?;
                run.st.last_opt_step = ni as i64;
                run.st.global_step += 1;
            }
            progress.inc(1);
            if signal::interrupt_requested() {
                run.st.epoch = epoch;
                run.st.next_batch = i + 1;
                save(
                    &mgr,
                    task.module(),
                    &ema,
                    &opt,
                    &scaler,
                    &mut run,
                    None,
                    false,
                )?;
                progress.finish();
                status = FitStatus::Interrupted;
                break 'epochs;
            }
        }
        progress.finish();
        // Validation on the EMA weights.
        let backup = ema.swap_into(task.module())?;
        task.module().eval();
        let metrics = task.validate(epoch);
        ModelEma::restore(task.module(), &backup)?;
        task.module().train();
        let metrics =
            metrics.map_err(|e| e.context(format!("validation after epoch {}", epoch + 1)))?;
        let fitness = *metrics.get(&cfg.fitness_key).ok_or_else(|| {
            Error::msg(format!(
                "validation returned no {:?} (the fitness_key); it returned {:?}",
                cfg.fitness_key,
                metrics.keys().collect::<Vec<_>>()
            ))
        })?;
        let mut row: Vec<(String, f64)> = vec![("epoch".into(), (epoch + 1) as f64)];
        row.extend(run.st.tloss.iter().map(|(k, v)| (format!("train/{k}"), *v)));
        row.extend(metrics.iter().map(|(k, v)| (k.clone(), *v)));
        row.extend(
            opt.groups
                .iter()
                .enumerate()
                .map(|(i, g)| (format!("lr/pg{i}"), g.lr)),
        );
        log.append(&row)?;
        let is_best = run.st.best_fitness.is_none_or(|b| fitness > b);
        if is_best {
            run.st.best_fitness = Some(fitness);
        }
        let stop = run.st.stopper.update(epoch + 1, fitness);
        run.st.last_metrics = metrics.into_iter().collect();
        run.st.epochs_completed = epoch + 1;
        run.st.epoch = epoch + 1;
        run.st.next_batch = 0;
        run.st.tloss.clear();
        run.tloss_n = 0;
        save(
            &mgr,
            task.module(),
            &ema,
            &opt,
            &scaler,
            &mut run,
            Some(epoch + 1),
            is_best,
        )?;
        if cfg.progress {
            eprintln!("epoch {}/{}: {}", epoch + 1, cfg.epochs, fmt_row(&row[1..]));
        }
        if stop {
            status = FitStatus::EarlyStopped;
            break;
        }
        if signal::interrupt_requested() {
            status = FitStatus::Interrupted;
            break;
        }
        epoch += 1;
    }
    let best = mgr.best_path();
    Ok(FitSummary {
        status,
        epochs_completed: run.st.epochs_completed,
        global_step: run.st.global_step,
        best_fitness: run.st.best_fitness,
        last_metrics: run.st.last_metrics.clone(),
        last_checkpoint: mgr.last_path(),
        best_checkpoint: best.exists().then_some(best),
    })
}

/// ultralytics `optimizer_step`: unscale, clip, step (skipped on inf/NaN under a loss
/// scaler), scaler update, zero grads, EMA update.
fn optimizer_step(
    module: &dyn Module,
    opt: &mut Optimizer,
    ema: &mut ModelEma,
    scaler: &mut LossScaler,
    max_norm: f64,
) -> Result<()> {
    let params: Vec<Tensor> = opt.params().map(|(_, p)| p.clone()).collect();
    let found_inf = scaler.unscale(&params)?;
    if !found_inf {
        clip_grad_norm(&params, max_norm)?;
        opt.step()?;
    }
    scaler.update(found_inf);
    opt.zero_grad();
    ema.update(module)
}

/// Running mean of the loss items over the epoch (ultralytics `tloss`).
fn update_tloss(run: &mut Run, items: &[(String, f64)]) {
    let n = run.tloss_n as f64;
    if run.st.tloss.is_empty() {
        run.st.tloss = items.to_vec();
    } else {
        for (k, v) in items {
            if let Some(t) = run.st.tloss.iter_mut().find(|(tk, _)| tk == k) {
                t.1 = (t.1 * n + v) / (n + 1.0);
            }
        }
    }
    run.tloss_n += 1;
}

/// Snapshot everything into `run.st` and write the checkpoint(s).
#[allow(clippy::too_many_arguments)]
fn save(
    mgr: &CheckpointManager,
    module: &dyn Module,
    ema: &ModelEma,
    opt: &Optimizer,
    scaler: &LossScaler,
    run: &mut Run,
    epoch_done: Option<usize>,
    is_best: bool,
) -> Result<()> {
    (run.st.rng_state, run.st.rng_spare) = run.rng.state();
    run.st.ema_updates = ema.updates;
    run.st.scaler = scaler.clone();
    run.st.groups = opt
        .groups
        .iter()
        .map(|g| GroupHyper {
            kind: g.kind,
            lr: g.lr,
            initial_lr: g.initial_lr,
            momentum: g.momentum,
            weight_decay: g.weight_decay,
        })
        .collect();
    run.st.adam_steps = opt
        .state_map()
        .iter()
        .filter_map(|(n, s)| match s {
            ParamState::Adam { step, .. } => Some((n.clone(), *step)),
            ParamState::Momentum(_) => None,
        })
        .collect();
    let bytes = checkpoint_bytes(module, ema, opt, &run.st)?;
    mgr.save(&bytes, epoch_done, is_best)
}

fn fmt_row(row: &[(String, f64)]) -> String {
    row.iter()
        .map(|(k, v)| format!("{k} {v:.4}"))
        .collect::<Vec<_>>()
        .join("  ")
}
