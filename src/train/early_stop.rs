//! Early stopping as ultralytics' `EarlyStopping`, plus a `min_delta`: stop after
//! `patience` epochs without the fitness rising by more than `min_delta`.
use serde::{Deserialize, Serialize};

/// Early-stopping state (saved in checkpoints).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EarlyStopping {
    /// Epochs to wait after the last improvement; 0 disables stopping.
    pub patience: usize,
    /// An improvement must exceed the best fitness by more than this.
    pub min_delta: f64,
    pub best_fitness: f64,
    /// 1-based epoch of the best fitness.
    pub best_epoch: usize,
    /// True when the next epoch without improvement stops training.
    pub possible_stop: bool,
}

impl EarlyStopping {
    pub fn new(patience: usize, min_delta: f64) -> Self {
        EarlyStopping {
            patience,
            min_delta,
            best_fitness: 0.0,
            best_epoch: 0,
            possible_stop: false,
        }
    }

    /// Record `fitness` after 1-based `epoch`; true when training should stop. As in
    /// ultralytics a best fitness of exactly 0 counts any value as an improvement (early
    /// epochs where mAP is still 0 do not run the patience down).
    pub fn update(&mut self, epoch: usize, fitness: f64) -> bool {
        if fitness > self.best_fitness + self.min_delta || self.best_fitness == 0.0 {
            self.best_epoch = epoch;
            self.best_fitness = fitness;
        }
        if self.patience == 0 {
            self.possible_stop = false;
            return false;
        }
        let delta = epoch.saturating_sub(self.best_epoch);
        self.possible_stop = delta + 1 >= self.patience;
        delta >= self.patience
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stops_after_patience_without_improvement() {
        let mut s = EarlyStopping::new(3, 0.01);
        assert!(!s.update(1, 0.0)); // zero best: counts as improvement
        assert!(!s.update(2, 0.5));
        assert!(!s.update(3, 0.505)); // within min_delta: no improvement
        assert_eq!(s.best_epoch, 2);
        assert!(!s.update(4, 0.4));
        assert!(s.possible_stop);
        assert!(s.update(5, 0.3));
        let mut off = EarlyStopping::new(0, 0.0);
        assert!((1..50).all(|e| !off.update(e, 0.1)));
    }
}
