//! Learning-rate schedule, warmup and gradient accumulation exactly as ultralytics 8.4
//! (engine/trainer.py `_setup_scheduler`, `_get_warmup_iterations`, the warmup block of
//! `_do_train`, `_build_train_pipeline`). Rounding follows Python: `round` is half-to-even.
use super::groups::{GroupKind, Optimizer};

/// Schedule hyper-parameters (ultralytics cfg/default.yaml names and defaults).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ScheduleConfig {
    pub epochs: usize,
    pub lr0: f64,
    pub lrf: f64,
    pub cos_lr: bool,
    pub momentum: f64,
    pub warmup_epochs: f64,
    pub warmup_momentum: f64,
    pub warmup_bias_lr: f64,
    /// Lower bound on warmup iterations. ultralytics 8.4 has none (0); older releases
    /// (8.0–8.3) used `max(round(warmup_epochs * nb), 100)`, i.e. 100.
    pub min_warmup_iters: usize,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        ScheduleConfig {
            epochs: 100,
            lr0: 0.01,
            lrf: 0.01,
            cos_lr: false,
            momentum: 0.937,
            warmup_epochs: 3.0,
            warmup_momentum: 0.8,
            warmup_bias_lr: 0.1,
            min_warmup_iters: 0,
        }
    }
}

/// `ultralytics.utils.torch_utils.one_cycle(y1, y2, steps)(x)`.
pub fn one_cycle(y1: f64, y2: f64, steps: f64, x: f64) -> f64 {
    ((1.0 - (x * std::f64::consts::PI / steps).cos()) / 2.0).max(0.0) * (y2 - y1) + y1
}

/// `np.interp(x, [x0, x1], [y0, y1])` for x0 < x1, with numpy's arithmetic
/// (`slope * (x - x0) + y0`, exactly `y1` at the right end, clamped outside).
pub fn interp(x: f64, x0: f64, x1: f64, y0: f64, y1: f64) -> f64 {
    if x >= x1 {
        y1
    } else if x < x0 {
        y0
    } else {
        (y1 - y0) / (x1 - x0) * (x - x0) + y0
    }
}

/// Python's `round(x)` (half to even) as an integer (non-negative inputs).
fn py_round(x: f64) -> usize {
    x.round_ties_even().max(0.0) as usize
}

impl ScheduleConfig {
    /// The lr factor `lf(epoch)`: linear `max(1 - x/epochs, 0)*(1 - lrf) + lrf`, or cosine
    /// `one_cycle(1, lrf, epochs)`.
    pub fn lf(&self, epoch: f64) -> f64 {
        let e = self.epochs as f64;
        if self.cos_lr {
            one_cycle(1.0, self.lrf, e, epoch)
        } else {
            (1.0 - epoch / e).max(0.0) * (1.0 - self.lrf) + self.lrf
        }
    }

    /// Warmup iterations for `nb` batches per epoch: `round(min(warmup_epochs,
    /// max(epochs - 1, 0)) * nb)` (0 when that warmup is 0), then at least
    /// `min_warmup_iters` when warmup is on.
    pub fn warmup_iters(&self, nb: usize) -> usize {
        let we = self.warmup_epochs.min((self.epochs as f64 - 1.0).max(0.0));
        if we > 0.0 {
            py_round(we * nb as f64).max(self.min_warmup_iters)
        } else {
            0
        }
    }

    /// The lr of a group of `kind` at global batch `ni` of `epoch`, with `nw` warmup
    /// iterations, for a group whose base lr is `initial_lr`.
    pub fn lr(&self, kind: GroupKind, initial_lr: f64, epoch: usize, ni: usize, nw: usize) -> f64 {
        let target = initial_lr * self.lf(epoch as f64);
        if nw > 0 && ni <= nw {
            let start = if kind == GroupKind::Bias {
                self.warmup_bias_lr
            } else {
                0.0
            };
            interp(ni as f64, 0.0, nw as f64, start, target)
        } else {
            target
        }
    }

    /// The momentum at global batch `ni`: warmup_momentum → momentum during warmup.
    /// After warmup it stays at whatever warmup left (`momentum`), as in ultralytics.
    pub fn momentum(&self, ni: usize, nw: usize) -> Option<f64> {
        (nw > 0 && ni <= nw).then(|| {
            interp(
                ni as f64,
                0.0,
                nw as f64,
                self.warmup_momentum,
                self.momentum,
            )
        })
    }

    /// Set every group's lr (and SGD momentum during warmup) for batch `ni` of `epoch`.
    /// Outside warmup the lr is `initial_lr * lf(epoch)`, which is what torch's LambdaLR
    /// sets at the start of each epoch; warmup overrides it batch by batch.
    pub fn apply(&self, opt: &mut Optimizer, epoch: usize, ni: usize, nw: usize) {
        let mom = if opt.has_momentum() {
            self.momentum(ni, nw)
        } else {
            None
        };
        for g in &mut opt.groups {
            g.lr = self.lr(g.kind, g.initial_lr, epoch, ni, nw);
            if let Some(m) = mom {
                g.momentum = m;
            }
        }
    }
}

/// Gradient accumulation to a nominal batch: `accumulate = max(round(nbs / batch), 1)`
/// and the decay scaled as `weight_decay * batch * accumulate / nbs`. When `total_batches`
/// (batches per epoch × epochs) is given, accumulate is capped at it (ultralytics).
pub fn accumulation(
    nbs: usize,
    batch: usize,
    weight_decay: f64,
    total_batches: Option<usize>,
) -> (usize, f64) {
    let acc = py_round(nbs as f64 / batch.max(1) as f64).max(1);
    let wd = weight_decay * batch as f64 * acc as f64 / nbs.max(1) as f64;
    let acc = total_batches.map_or(acc, |t| acc.min(t.max(1)));
    (acc, wd)
}

/// Accumulation during warmup: `max(1, round(np.interp(ni, [0, nw], [1, acc0])))`.
pub fn warmup_accumulate(ni: usize, nw: usize, acc0: usize) -> usize {
    if nw > 0 && ni <= nw {
        py_round(interp(ni as f64, 0.0, nw as f64, 1.0, acc0 as f64)).max(1)
    } else {
        acc0
    }
}
