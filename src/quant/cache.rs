//! The calibration cache: each calibrated tensor's amax by all three methods, so the export
//! can pick a method without running the images again. JSON, written atomically; reading
//! checks every entry and names the file and the tensor when one is wrong.
use super::calibrator::Method;
use crate::io::atomic::write_atomic;
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// Format version written to and required from cache files.
pub const CACHE_VERSION: u32 = 1;

/// One tensor's calibrated ranges.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TensorCalib {
    pub amax_minmax: f32,
    pub amax_percentile: f32,
    /// The percentile `amax_percentile` is for.
    pub percentile: f64,
    pub amax_entropy: f32,
    /// Finite values observed.
    pub count: u64,
}

/// What `ed-calibrate` writes and `ed-export` reads.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CalibCache {
    pub version: u32,
    /// The method chosen at calibration ("entropy", "minmax", "percentile:99.99"): the
    /// export's default.
    pub method: String,
    pub num_images: usize,
    /// The model file calibrated.
    pub source: String,
    pub tensors: BTreeMap<String, TensorCalib>,
}

/// The top level as read, entries still raw so each can be checked under its own name.
#[derive(Deserialize)]
struct RawCache {
    version: u32,
    method: String,
    num_images: usize,
    source: String,
    tensors: BTreeMap<String, serde_json::Value>,
}

impl TensorCalib {
    /// Every amax finite and non-negative, the percentile in (0, 100].
    fn check(&self) -> std::result::Result<(), String> {
        for (what, v) in [
            ("amax_minmax", self.amax_minmax),
            ("amax_percentile", self.amax_percentile),
            ("amax_entropy", self.amax_entropy),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(format!("{what} {v} is not a finite non-negative number"));
            }
        }
        if !(self.percentile > 0.0 && self.percentile <= 100.0) {
            return Err(format!(
                "percentile {} is outside (0, 100]",
                self.percentile
            ));
        }
        Ok(())
    }

    /// amax by `m`; a percentile other than the one calibrated is an error.
    pub fn amax(&self, m: Method) -> std::result::Result<f32, String> {
        match m {
            Method::MinMax => Ok(self.amax_minmax),
            Method::Entropy => Ok(self.amax_entropy),
            Method::Percentile(p) if (p - self.percentile).abs() <= 1e-9 => {
                Ok(self.amax_percentile)
            }
            Method::Percentile(p) => Err(format!(
                "calibrated at percentile {}, not {p}; calibrate again with --method percentile:{p}",
                self.percentile
            )),
        }
    }
}

fn format_err(path: &Path, record: impl Into<String>, msg: impl Into<String>) -> Error {
    Error::Format {
        path: path.display().to_string(),
        record: record.into(),
        msg: msg.into(),
    }
}

impl CalibCache {
    /// amax of tensor `name` by `m`.
    pub fn amax(&self, name: &str, m: Method) -> Result<f32> {
        let t = self.tensors.get(name).ok_or_else(|| {
            Error::msg(format!(
                "tensor {name:?} is not in the calibration cache ({} tensors, model {})",
                self.tensors.len(),
                self.source
            ))
        })?;
        t.amax(m)
            .map_err(|e| Error::msg(format!("tensor {name:?}: {e}")))
    }

    /// The checks `read` makes, naming `path` in the error.
    fn check(&self, path: &Path) -> Result<()> {
        if self.version != CACHE_VERSION {
            return Err(format_err(
                path,
                "version",
                format!("version {} is not {CACHE_VERSION}", self.version),
            ));
        }
        self.method
            .parse::<Method>()
            .map_err(|e| format_err(path, "method", e))?;
        for (name, t) in &self.tensors {
            t.check()
                .map_err(|e| format_err(path, format!("tensor {name:?}"), e))?;
        }
        Ok(())
    }

    /// Write as pretty JSON, atomically. A non-finite or negative amax is refused.
    pub fn write(&self, path: &Path) -> Result<()> {
        self.check(path)?;
        write_atomic(path, |w| {
            serde_json::to_writer_pretty(&mut *w, self)
                .map_err(|e| Error::msg(format!("JSON: {e}")))?;
            w.write_all(b"\n").map_err(|source| Error::Io {
                path: path.to_path_buf(),
                source,
            })
        })
    }

    /// Read and check a cache file. Errors name the file and the entry.
    pub fn read(path: &Path) -> Result<CalibCache> {
        let bytes = std::fs::read(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let raw: RawCache = serde_json::from_slice(&bytes)
            .map_err(|e| format_err(path, "calibration cache", e.to_string()))?;
        let mut tensors = BTreeMap::new();
        for (name, v) in raw.tensors {
            // serde_json writes a non-finite f32 as null; say so rather than "invalid type".
            let t: TensorCalib = serde_json::from_value(v).map_err(|e| {
                let msg = if e.to_string().contains("null") {
                    format!("{e} (a non-finite amax is written as null)")
                } else {
                    e.to_string()
                };
                format_err(path, format!("tensor {name:?}"), msg)
            })?;
            tensors.insert(name, t);
        }
        let cache = CalibCache {
            version: raw.version,
            method: raw.method,
            num_images: raw.num_images,
            source: raw.source,
            tensors,
        };
        cache.check(path)?;
        Ok(cache)
    }
}
