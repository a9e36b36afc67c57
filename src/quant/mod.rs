//! Post-training INT8 quantization: activation calibration.
//!
//! The INT8 engine quantizes each quantized conv's input with one symmetric per-tensor
//! scale `amax / 127` (ONNX QuantizeLinear int8, zero point 0). Calibration runs the fp32
//! network over a few hundred images, keeps a histogram of |x| per such tensor
//! ([`AbsHistogram`]) and turns it into amax by TensorRT's three methods ([`Method`]:
//! minmax, percentile, entropy/KL), all kept in the [`CalibCache`] so the export can choose.
//! Weights are quantized per output channel, symmetric, from their own values; that lives
//! with the INT8 conv in `backend::cpu::qconv`. Which layers stay fp32 is the engine's
//! decision (`engine::quantize`), not this module's.
//!
//! ```
//! use edgedistill::quant::{Collector, Method};
//!
//! let mut c = Collector::default();
//! c.observe("model.0.conv", &[0.5, -1.0, 2.0, 0.25])?;
//! let cache = c.finish(1, "model.safetensors", Method::Entropy)?;
//! assert_eq!(cache.amax("model.0.conv", Method::MinMax)?, 2.0);
//! # Ok::<(), edgedistill::Error>(())
//! ```
pub mod cache;
pub mod calibrator;
pub mod histogram;

pub use cache::{CACHE_VERSION, CalibCache, TensorCalib};
pub use calibrator::{DEFAULT_PERCENTILE, Method, amax};
pub use histogram::{AbsHistogram, DEFAULT_BINS};

use crate::{Error, Result};
use rayon::prelude::*;
use std::collections::BTreeMap;

/// Histograms of the calibrated tensors, by name, over all images fed so far.
#[derive(Clone, Debug, Default)]
pub struct Collector {
    hists: BTreeMap<String, AbsHistogram>,
}

impl Collector {
    /// Add the values of tensor `name` for one batch. Never fails today (NaN/inf values are
    /// counted and refused at `finish`); the `Result` leaves room for checks.
    pub fn observe(&mut self, name: &str, xs: &[f32]) -> Result<()> {
        match self.hists.get_mut(name) {
            Some(h) => h.add(xs),
            None => {
                let mut h = AbsHistogram::default();
                h.add(xs);
                self.hists.insert(name.to_string(), h);
            }
        }
        Ok(())
    }

    /// Fold in another collector's histograms (collection split over threads).
    pub fn merge(&mut self, other: Collector) {
        for (name, h) in other.hists {
            match self.hists.get_mut(&name) {
                Some(mine) => mine.merge(&h),
                None => {
                    self.hists.insert(name, h);
                }
            }
        }
    }

    pub fn histograms(&self) -> &BTreeMap<String, AbsHistogram> {
        &self.hists
    }

    /// The cache: every tensor's amax by minmax, percentile (the default method's
    /// percentile, else 99.99) and entropy. `default_method` is recorded for the export.
    /// A tensor with NaN/inf values or none at all is an error naming it.
    pub fn finish(
        self,
        num_images: usize,
        source: &str,
        default_method: Method,
    ) -> Result<CalibCache> {
        if self.hists.is_empty() {
            return Err(Error::msg("calibration observed no tensors"));
        }
        let percentile = match default_method {
            Method::Percentile(p) => p,
            _ => DEFAULT_PERCENTILE,
        };
        let tensors = self
            .hists
            .par_iter()
            .map(|(name, h)| {
                let t = (|| {
                    Ok(TensorCalib {
                        amax_minmax: amax(h, Method::MinMax)?,
                        amax_percentile: amax(h, Method::Percentile(percentile))?,
                        percentile,
                        amax_entropy: amax(h, Method::Entropy)?,
                        count: h.count(),
                    })
                })()
                .map_err(|e: Error| e.context(format!("tensor {name}")))?;
                Ok((name.clone(), t))
            })
            .collect::<Result<BTreeMap<_, _>>>()?;
        Ok(CalibCache {
            version: CACHE_VERSION,
            method: default_method.to_string(),
            num_images,
            source: source.to_string(),
            tensors,
        })
    }
}
