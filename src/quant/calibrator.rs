//! amax (the clipping range of a symmetric INT8 scale `amax / 127`) from an
//! [`AbsHistogram`], by TensorRT's three calibrators as NVIDIA's pytorch-quantization
//! states them (`pytorch_quantization/calib/histogram.py`); `tools/reference/quant_reference.py`
//! restates them in numpy and writes the fixture `tests/quant_calibrate.rs` checks.
use super::histogram::AbsHistogram;
pub use crate::backend::cpu::math::pairwise_sum;
use crate::{Error, Result};
use std::fmt;
use std::str::FromStr;

/// The percentile used when "percentile" is given without a number (TensorRT, pytorch-quantization).
pub const DEFAULT_PERCENTILE: f64 = 99.99;
/// INT8 signed: 128 quantized levels per sign (`1 << (num_bits - 1)`).
const QUANT_BINS: usize = 128;
/// First candidate clip bin of the entropy search (pytorch-quantization's `start_bin`).
const START_BIN: usize = 128;

/// How a tensor's amax is chosen from its histogram.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum Method {
    /// The exact max |x|.
    MinMax,
    /// The smallest bin upper edge below which this percent of the values lie.
    Percentile(f64),
    /// The clip that minimises KL(P || Q) (TensorRT's IInt8EntropyCalibrator2).
    #[default]
    Entropy,
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Method::MinMax => write!(f, "minmax"),
            Method::Percentile(p) => write!(f, "percentile:{p}"),
            Method::Entropy => write!(f, "entropy"),
        }
    }
}

impl FromStr for Method {
    type Err = String;
    /// "minmax", "entropy", "percentile" (99.99) or "percentile:P" with 0 < P <= 100.
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let t = s.trim().to_ascii_lowercase();
        match t.as_str() {
            "minmax" => return Ok(Method::MinMax),
            "entropy" => return Ok(Method::Entropy),
            "percentile" => return Ok(Method::Percentile(DEFAULT_PERCENTILE)),
            _ => {}
        }
        if let Some(p) = t.strip_prefix("percentile:") {
            let v: f64 = p
                .trim()
                .parse()
                .map_err(|_| format!("calibration method {s:?}: {p:?} is not a number"))?;
            if !(v > 0.0 && v <= 100.0) {
                return Err(format!(
                    "calibration method {s:?}: percentile must be in (0, 100]"
                ));
            }
            return Ok(Method::Percentile(v));
        }
        Err(format!(
            "unknown calibration method {s:?} (expected minmax, entropy, percentile or percentile:P)"
        ))
    }
}

/// amax of the values in `h` by `m`. Errors when NaN/inf values were seen, when nothing
/// was seen, or on a percentile outside [0, 100]. A histogram of zeros gives 0.
pub fn amax(h: &AbsHistogram, m: Method) -> Result<f32> {
    if h.nonfinite() > 0 {
        return Err(Error::msg(format!(
            "{} non-finite values (NaN or inf) among {} observed",
            h.nonfinite(),
            h.nonfinite() + h.count()
        )));
    }
    if h.count() == 0 {
        return Err(Error::msg("no values observed"));
    }
    if h.log2_bin_width().is_none() {
        return Ok(0.0); // every value was 0
    }
    let edge = |i: usize| h.edge(i).min(f32::MAX as f64) as f32;
    match m {
        Method::MinMax => Ok(h.max()),
        Method::Percentile(p) => Ok(edge(percentile_bin(h.counts(), p)? + 1)),
        Method::Entropy => {
            // The histogram up to the bin holding the max, as pytorch-quantization's ends at
            // the max's bin edge; the empty bins of our power-of-two range above it would be
            // candidates it never has (and exact ties there would push amax past the max).
            let top = h.counts().iter().rposition(|&c| c > 0).map_or(0, |b| b + 1);
            Ok(edge(entropy_search(&h.counts()[..top])?.0))
        }
    }
}

/// Index of the first bin at which the cumulative count reaches `p`% of all values, so
/// amax is its upper edge. (pytorch-quantization's `_compute_amax_percentile` finds the
/// same bin from a float cdf but returns `calib_bin_edges[idx]`, its lower edge, which
/// clips part of the bin it was looking for; this keeps the whole bin, so percentile 100
/// is the max rounded up to its bin edge.)
pub fn percentile_bin(counts: &[u64], p: f64) -> Result<usize> {
    if !(0.0..=100.0).contains(&p) {
        return Err(Error::msg(format!("percentile {p} is outside [0, 100]")));
    }
    // cum · 100 >= p · total: one rounding, so 99.9% of 200000 is 199800 rather than
    // 199800.00000000003 (which p / 100 · total gives, 99.9 not being exact in binary).
    let target = p * counts.iter().sum::<u64>() as f64;
    let mut cum = 0u64;
    for (i, &c) in counts.iter().enumerate() {
        cum += c;
        if cum as f64 * 100.0 >= target {
            return Ok(i);
        }
    }
    Ok(counts.len() - 1)
}

/// pytorch-quantization's `_compute_amax_entropy` (num_bits 8, signed, stride 1,
/// start_bin 128): returns (i, KL at i); amax is `i · width`.
///
/// For each candidate i in 128..=nbins: P is bins[..i] with the mass of bins[i..] added to
/// its last bin; Q spreads bins[..i] over 128 chunks (chunk of bin j: floor(128 j / i), the
/// same split as `np.digitize(range(i), np.linspace(0, i, 129)) - 1`, since those edges are
/// exact in f64) and gives each non-empty bin its chunk's mean over the non-empty bins.
/// KL(P || Q) as `scipy.stats.entropy`: both normalised, p·ln(p/q), 0 where p = 0, inf
/// where q = 0 < p, NaN where Q is all zero (0/0), sums in numpy's pairwise order so
/// near-equal candidates compare as they do in numpy.
///
/// Quirks kept on purpose, as the reference has them:
/// - bin 0 takes bin 1's count first (`bins[0] = bins[1]`), damping the spike of exact
///   zeros that ReLU-like activations have.
/// - the *last* minimum wins (`len - 1 - argmin(reversed)`), and a NaN candidate beats
///   every number (numpy's argmin), so the last NaN wins if there is one.
/// - a candidate whose cut bin is empty while values lie beyond it gets inf: a lone far
///   outlier over a body narrower than 128 bins makes every candidate but i = nbins inf,
///   so amax is the max (rounded up to its bin edge). With a body wider than 128 bins the
///   cut lands in the body and the outlier is clipped.
/// - the method assumes mass near zero. With nothing below 1/16 of the max (say |x| all in
///   [0.7, 1]) the first candidates have an empty Q (NaN), the last of them wins, and amax
///   is the lower edge of the first occupied bin: every value is clipped. (Skipping NaN
///   would not help: the next cut has KL exactly 0.) Percentile or minmax suit such tensors.
pub fn entropy_search(counts: &[u64]) -> Result<(usize, f64)> {
    let n = counts.len();
    if n < START_BIN {
        return Err(Error::msg(format!(
            "entropy calibration needs at least {START_BIN} histogram bins, got {n}"
        )));
    }
    let mut bins = counts.to_vec();
    bins[0] = bins[1];
    let total: u64 = bins.iter().sum();
    let total_f = total as f64;
    let mut q = vec![0f64; n];
    let mut terms = vec![0f64; n];
    let mut head: u64 = bins[..START_BIN - 1].iter().sum();
    let mut best: Option<(usize, f64)> = None;
    let mut last_nan: Option<usize> = None;
    for i in START_BIN..=n {
        head += bins[i - 1];
        let tail = total - head;
        // Chunk c of Q is bins ceil(c·i/128)..ceil((c+1)·i/128): the j with floor(128 j / i) = c.
        for c in 0..QUANT_BINS {
            let lo = (c * i).div_ceil(QUANT_BINS);
            let hi = ((c + 1) * i).div_ceil(QUANT_BINS);
            let chunk = &bins[lo..hi];
            let sum: u64 = chunk.iter().sum();
            let nonzero = chunk.iter().filter(|&&b| b > 0).count();
            let mean = if nonzero > 0 {
                sum as f64 / nonzero as f64
            } else {
                0.0
            };
            for (qj, &b) in q[lo..hi].iter_mut().zip(chunk) {
                *qj = if b > 0 { mean } else { 0.0 };
            }
        }
        let q_total = pairwise_sum(&q[..i]);
        for j in 0..i {
            let pj = if j == i - 1 { bins[j] + tail } else { bins[j] };
            let p = pj as f64 / total_f;
            let qn = q[j] / q_total;
            terms[j] = rel_entr(p, qn);
        }
        let d = pairwise_sum(&terms[..i]);
        if d.is_nan() {
            last_nan = Some(i);
        } else if best.is_none_or(|(_, bd)| d <= bd) {
            best = Some((i, d));
        }
    }
    Ok(match last_nan {
        Some(i) => (i, f64::NAN),
        None => best.expect("at least one candidate"),
    })
}

/// scipy.special.rel_entr: x ln(x/y); 0 at x = 0 <= y; inf where y = 0 < x; NaN in, NaN out.
fn rel_entr(x: f64, y: f64) -> f64 {
    if x.is_nan() || y.is_nan() {
        f64::NAN
    } else if x > 0.0 && y > 0.0 {
        x * (x / y).ln()
    } else if x == 0.0 && y >= 0.0 {
        0.0
    } else {
        f64::INFINITY
    }
}
