//! Dropout: in training, zero each element with probability p and scale the survivors by
//! 1/(1-p) (inverted dropout, so eval is the identity). Seeded, so runs repeat exactly.
use super::Module;
use crate::tensor::Rng;
use crate::{Error, Result, Tensor};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

pub struct Dropout {
    pub p: f64,
    rng: Mutex<Rng>,
    training: AtomicBool,
}

impl Dropout {
    pub fn new(p: f64, seed: u64) -> Result<Self> {
        if !(0.0..=1.0).contains(&p) {
            return Err(Error::msg(format!(
                "Dropout: probability {p} is not in [0, 1]"
            )));
        }
        Ok(Dropout {
            p,
            rng: Mutex::new(Rng::new(seed)),
            training: AtomicBool::new(true),
        })
    }
    pub fn is_training(&self) -> bool {
        self.training.load(Ordering::Relaxed)
    }

    /// The next mask for `n` elements as bytes (1 kept, 0 dropped), drawn exactly as
    /// `forward` draws its mask (same RNG stream).
    pub fn keep_mask(&self, n: usize) -> Vec<u8> {
        let mut rng = self.rng.lock().unwrap_or_else(|e| e.into_inner());
        (0..n).map(|_| u8::from(rng.uniform() >= self.p)).collect()
    }

    /// x * mask, where mask holds 0 or 1/(1-p); the gradient is g * mask through `mul`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if !self.is_training() || self.p == 0.0 {
            return Ok(x.clone());
        }
        // p = 1 drops everything (torch returns zeros rather than dividing by zero).
        let scale = if self.p < 1.0 {
            1.0 / (1.0 - self.p)
        } else {
            0.0
        };
        let mut rng = self.rng.lock().unwrap_or_else(|e| e.into_inner());
        let mask: Vec<f64> = (0..x.elem_count())
            .map(|_| if rng.uniform() < self.p { 0.0 } else { scale })
            .collect();
        let mask = Tensor::from_vec(mask, x.shape().clone())?.to_dtype(x.dtype())?;
        x.mul(&mask)
    }
}

impl Module for Dropout {
    fn set_own_training(&self, training: bool) {
        self.training.store(training, Ordering::Relaxed);
    }
}
