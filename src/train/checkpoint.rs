//! Training checkpoints: one safetensors file with the model (`model.<name>`), the EMA
//! (`ema.<name>`), optimizer state (`optim.<param>.momentum_buffer|exp_avg|exp_avg_sq`, f64),
//! gradients still being accumulated (`grad.<param>`), and in the metadata the loop state
//! (`train_state` JSON: epoch, step, schedule, RNG, early stopping, scaler, config) and an
//! FNV-1a checksum of the tensor data. Files are written atomically (temp + rename), so a
//! crash leaves the previous checkpoint intact; a truncated or corrupt file is an error
//! that names the file.
use super::config::TrainConfig;
use super::early_stop::EarlyStopping;
use crate::io::StateDict;
use crate::io::atomic::write_atomic;
use crate::io::checksum::fnv1a64 as fnv1a;
use crate::io::safetensors::{Safetensors, to_safetensors_bytes};
use crate::nn::{Module, load_state_dict, state_dict_of};
use crate::optim::{GroupKind, LossScaler, ModelEma, Optimizer, ParamState};
use crate::{Error, Result, Tensor};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

const FORMAT: &str = "edgedistill-train-checkpoint-v1";

/// One parameter group's hyper-parameters at save time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroupHyper {
    pub kind: GroupKind,
    pub lr: f64,
    pub initial_lr: f64,
    pub momentum: f64,
    pub weight_decay: f64,
}

/// Everything about the loop that is not a tensor.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// The epoch in progress (0-based); equals `epochs_completed` at an epoch boundary.
    pub epoch: usize,
    /// The next batch index to run within `epoch`.
    pub next_batch: usize,
    pub epochs_completed: usize,
    /// Optimizer steps taken.
    pub global_step: u64,
    /// Global batch index of the last optimizer step (-1 before the first).
    pub last_opt_step: i64,
    pub accumulate: usize,
    pub ema_updates: u64,
    pub rng_state: [u64; 4],
    pub rng_spare: Option<f64>,
    pub best_fitness: Option<f64>,
    pub stopper: EarlyStopping,
    pub scaler: LossScaler,
    pub groups: Vec<GroupHyper>,
    /// AdamW step count per parameter.
    pub adam_steps: BTreeMap<String, u64>,
    /// Running mean of the loss items over the batches of `epoch` run so far.
    pub tloss: Vec<(String, f64)>,
    pub last_metrics: Vec<(String, f64)>,
    pub config: TrainConfig,
}

/// The data section of a safetensors byte buffer (after the header).
fn data_section(bytes: &[u8]) -> Option<&[u8]> {
    let n = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?) as usize;
    bytes.get(8usize.checked_add(n)?..)
}

/// Serialise a checkpoint to bytes.
pub fn checkpoint_bytes(
    module: &dyn Module,
    ema: &ModelEma,
    opt: &Optimizer,
    state: &TrainState,
) -> Result<Vec<u8>> {
    let mut tensors: Vec<(String, Tensor)> = Vec::new();
    for (n, t) in state_dict_of(module) {
        tensors.push((format!("model.{n}"), t));
    }
    for (n, t) in ema.state() {
        tensors.push((format!("ema.{n}"), t.clone()));
    }
    let f64t = |v: &Vec<f64>| Tensor::from_vec(v.clone(), [v.len()]);
    for (n, st) in opt.state_map() {
        match st {
            ParamState::Momentum(b) => {
                tensors.push((format!("optim.{n}.momentum_buffer"), f64t(b)?))
            }
            ParamState::Adam {
                exp_avg,
                exp_avg_sq,
                ..
            } => {
                tensors.push((format!("optim.{n}.exp_avg"), f64t(exp_avg)?));
                tensors.push((format!("optim.{n}.exp_avg_sq"), f64t(exp_avg_sq)?));
            }
        }
    }
    for (n, p) in opt.params() {
        if let Some(g) = p.grad() {
            tensors.push((format!("grad.{n}"), g));
        }
    }
    let plain = to_safetensors_bytes(&tensors, None)?;
    let sum = fnv1a(data_section(&plain).unwrap_or(&[]));
    let json = serde_json::to_string(state)
        .map_err(|e| Error::msg(format!("checkpoint: cannot serialise the train state: {e}")))?;
    let meta = BTreeMap::from([
        ("format".to_string(), FORMAT.to_string()),
        ("checksum".to_string(), format!("{sum:016x}")),
        ("train_state".to_string(), json),
    ]);
    to_safetensors_bytes(&tensors, Some(&meta))
}

/// Write checkpoint bytes to `path` atomically.
pub fn write_checkpoint(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic(path, |w| {
        w.write_all(bytes)
            .map_err(|e| Error::msg(format!("write failed: {e}")))
    })
}

/// A checkpoint read back and verified.
pub struct Checkpoint {
    pub state: TrainState,
    file: Arc<Safetensors>,
}

impl Checkpoint {
    /// Read and verify `path`: safetensors structure, format tag, checksum, train state.
    pub fn open(path: &Path) -> Result<Checkpoint> {
        let name = path.display().to_string();
        let bad = |record: &str, msg: String| Error::Format {
            path: name.clone(),
            record: record.into(),
            msg,
        };
        let bytes = std::fs::read(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let data_sum = data_section(&bytes).map(fnv1a);
        let file = Safetensors::from_bytes(bytes).map_err(|e| {
            bad(
                "file",
                format!("not a readable checkpoint (truncated or corrupt?): {e}"),
            )
        })?;
        let meta = file.metadata();
        if meta.get("format").map(String::as_str) != Some(FORMAT) {
            return Err(bad(
                "metadata",
                format!(
                    "not a training checkpoint (format tag {:?})",
                    meta.get("format")
                ),
            ));
        }
        let want = meta.get("checksum").cloned().unwrap_or_default();
        let got = format!("{:016x}", data_sum.unwrap_or(0));
        if want != got {
            return Err(bad(
                "tensor data",
                format!("checksum mismatch (stored {want}, computed {got}): the file is corrupt"),
            ));
        }
        let json = meta
            .get("train_state")
            .ok_or_else(|| bad("metadata", "no train_state".into()))?;
        let state: TrainState =
            serde_json::from_str(json).map_err(|e| bad("metadata train_state", format!("{e}")))?;
        Ok(Checkpoint {
            state,
            file: Arc::new(file),
        })
    }

    /// A stored tensor by its full name ("model.0.weight", "ema.1.running_mean", ...).
    pub fn tensor(&self, name: &str) -> Result<Tensor> {
        self.file.tensor(name)
    }

    /// The model weights as a state dict with the module's own names.
    pub fn model_state(&self) -> StateDict {
        StateDict::from_safetensors(self.file.clone()).strip_prefix("model.")
    }

    /// The EMA weights as a state dict with the module's own names.
    pub fn ema_state(&self) -> StateDict {
        StateDict::from_safetensors(self.file.clone()).strip_prefix("ema.")
    }

    /// Put model, EMA, optimizer state, group hyper-parameters and pending gradients back.
    pub fn restore(
        &self,
        module: &dyn Module,
        ema: &mut ModelEma,
        opt: &mut Optimizer,
    ) -> Result<()> {
        let ctx = |e: Error| e.context(format!("resuming from {}", self.file.path()));
        load_state_dict(module, &self.model_state(), true).map_err(ctx)?;
        ema.load_state(|n| self.tensor(&format!("ema.{n}")))
            .map_err(ctx)?;
        ema.updates = self.state.ema_updates;
        if opt.groups.len() != self.state.groups.len() {
            return Err(ctx(Error::msg(format!(
                "the optimizer has {} parameter groups, the checkpoint {}",
                opt.groups.len(),
                self.state.groups.len()
            ))));
        }
        for (g, h) in opt.groups.iter_mut().zip(&self.state.groups) {
            (g.lr, g.initial_lr, g.momentum, g.weight_decay) =
                (h.lr, h.initial_lr, h.momentum, h.weight_decay);
        }
        let mut state = BTreeMap::new();
        let names: Vec<String> = opt.params().map(|(n, _)| n.to_string()).collect();
        for n in &names {
            let get = |s: &str| -> Result<Option<Vec<f64>>> {
                let k = format!("optim.{n}.{s}");
                if self.file.contains(&k) {
                    Ok(Some(self.tensor(&k)?.to_vec_f64()?))
                } else {
                    Ok(None)
                }
            };
            if let Some(b) = get("momentum_buffer")? {
                state.insert(n.clone(), ParamState::Momentum(b));
            } else if let (Some(exp_avg), Some(exp_avg_sq)) = (get("exp_avg")?, get("exp_avg_sq")?)
            {
                let step = self.state.adam_steps.get(n).copied().unwrap_or(0);
                state.insert(
                    n.clone(),
                    ParamState::Adam {
                        step,
                        exp_avg,
                        exp_avg_sq,
                    },
                );
            }
        }
        opt.set_state(state).map_err(ctx)?;
        for (n, p) in opt.params() {
            let k = format!("grad.{n}");
            if self.file.contains(&k) {
                let g = self.tensor(&k).map_err(ctx)?;
                if g.shape() != p.shape() {
                    return Err(ctx(Error::msg(format!(
                        "gradient {n} has shape {}, the parameter {}",
                        g.shape(),
                        p.shape()
                    ))));
                }
                p.set_grad(Some(g.to_dtype(p.dtype())?));
            } else {
                p.zero_grad();
            }
        }
        Ok(())
    }
}

/// Where a run's checkpoints go and which ones are kept: `last`, `best` (by fitness), and
/// every `save_period` epochs `epochNNNN` with only the newest `keep_last` kept.
#[derive(Clone, Debug)]
pub struct CheckpointManager {
    pub dir: PathBuf,
    pub save_period: usize,
    pub keep_last: usize,
}

impl CheckpointManager {
    /// Checkpoints under `dir` (created if missing).
    pub fn new(dir: &Path, save_period: usize, keep_last: usize) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|source| Error::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        Ok(CheckpointManager {
            dir: dir.to_path_buf(),
            save_period,
            keep_last,
        })
    }
    pub fn last_path(&self) -> PathBuf {
        self.dir.join("last.safetensors")
    }
    pub fn best_path(&self) -> PathBuf {
        self.dir.join("best.safetensors")
    }
    /// The periodic checkpoint after 1-based epoch `epoch`.
    pub fn epoch_path(&self, epoch: usize) -> PathBuf {
        self.dir.join(format!("epoch{epoch:04}.safetensors"))
    }

    /// Write `bytes` as `last`; as `best` when `is_best`; and, after a completed 1-based
    /// `epoch_done` that is a multiple of `save_period`, as `epochNNNN` (pruning old ones).
    pub fn save(&self, bytes: &[u8], epoch_done: Option<usize>, is_best: bool) -> Result<()> {
        write_checkpoint(&self.last_path(), bytes)?;
        if is_best {
            write_checkpoint(&self.best_path(), bytes)?;
        }
        if let Some(e) = epoch_done
            && self.save_period > 0
            && e % self.save_period == 0
        {
            write_checkpoint(&self.epoch_path(e), bytes)?;
            self.prune()?;
        }
        Ok(())
    }

    /// Periodic checkpoints present, oldest first.
    pub fn periodic(&self) -> Result<Vec<PathBuf>> {
        let rd = std::fs::read_dir(&self.dir).map_err(|source| Error::Io {
            path: self.dir.clone(),
            source,
        })?;
        let mut v: Vec<PathBuf> = rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                    n.starts_with("epoch")
                        && n.ends_with(".safetensors")
                        && n["epoch".len()..n.len() - ".safetensors".len()]
                            .chars()
                            .all(|c| c.is_ascii_digit())
                })
            })
            .collect();
        v.sort();
        Ok(v)
    }

    fn prune(&self) -> Result<()> {
        if self.keep_last == 0 {
            return Ok(());
        }
        let v = self.periodic()?;
        for p in v.iter().take(v.len().saturating_sub(self.keep_last)) {
            std::fs::remove_file(p).map_err(|source| Error::Io {
                path: p.clone(),
                source,
            })?;
        }
        Ok(())
    }

    /// Open `last` for resuming; a missing file says so.
    pub fn load_last(&self) -> Result<Checkpoint> {
        let p = self.last_path();
        if !p.exists() {
            return Err(Error::msg(format!(
                "cannot resume: no checkpoint at {}",
                p.display()
            )));
        }
        Checkpoint::open(&p)
    }
}
