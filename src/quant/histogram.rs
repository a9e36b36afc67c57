//! Histogram of |x| for activation calibration: a fixed number of equal bins over
//! [0, range), filled in one pass over each batch.
//!
//! The bin width is always a power of two, the smallest one whose range holds the largest
//! |x| seen so far. So the range is set by the first batch's max |x| (rounded up to such a
//! width) and, when a later batch goes past it, the width doubles and adjacent bin pairs
//! merge. Because every width is a power of two, bin `j` at width `2w` is exactly bins `2j`
//! and `2j + 1` at width `w`, and `|x| · 2^-k` is exact in f64: growing, merging histograms
//! of different ranges, or splitting a batch across threads all give exactly the counts of
//! binning every value at the final width directly. The histogram is a function of the set
//! of values seen, not of their order.
use crate::{Error, Result};
use rayon::prelude::*;

/// TensorRT's and pytorch-quantization's histogram size.
pub const DEFAULT_BINS: usize = 2048;

/// Slices at least this long are binned on the rayon pool (a local histogram per piece,
/// merged at the end); smaller ones are not worth the task overhead.
const PAR_MIN: usize = 1 << 20;
const PAR_CHUNK: usize = 1 << 18;

/// Counts of |x| in `nbins` equal bins of width `2^log2_width` starting at 0, plus the exact
/// max |x|, the number of finite values, and the number of NaN/inf values (kept apart so the
/// caller can refuse to calibrate on them).
#[derive(Clone, Debug, PartialEq)]
pub struct AbsHistogram {
    bins: Vec<u64>,
    /// None until a positive finite value arrives (zeros before that are in bin 0).
    log2_width: Option<i32>,
    max: f32,
    count: u64,
    nonfinite: u64,
}

impl Default for AbsHistogram {
    fn default() -> Self {
        Self::new(DEFAULT_BINS)
    }
}

/// 2^k as an f64, exactly (k stays far inside the normal range for f32 inputs).
fn pow2(k: i32) -> f64 {
    debug_assert!((-1022..=1023).contains(&k));
    f64::from_bits(((k + 1023) as u64) << 52)
}

impl AbsHistogram {
    /// An empty histogram of `nbins` bins (at least 1; calibration by entropy needs 128).
    pub fn new(nbins: usize) -> Self {
        let nbins = nbins.max(1);
        AbsHistogram {
            bins: vec![0; nbins],
            log2_width: None,
            max: 0.0,
            count: 0,
            nonfinite: 0,
        }
    }

    /// A histogram from stored counts (a fixture, a saved histogram): `bin_width` must be a
    /// power of two and `max` must fall in the last non-empty bin.
    pub fn from_counts(counts: Vec<u64>, bin_width: f64, max: f32) -> Result<Self> {
        let bad = |m: String| Err(Error::msg(format!("AbsHistogram::from_counts: {m}")));
        if counts.is_empty() {
            return bad("no bins".into());
        }
        let count: u64 = counts.iter().sum();
        let last = counts.iter().rposition(|&c| c > 0);
        if !(max.is_finite() && max >= 0.0) {
            return bad(format!("max {max} is not a finite non-negative number"));
        }
        let log2_width = if max == 0.0 {
            if count != counts[0] {
                return bad("max is 0 but bins above 0 are not empty".into());
            }
            None
        } else {
            let k = bin_width.log2().round() as i32;
            if !(bin_width > 0.0 && (-1022..=1023).contains(&k) && pow2(k) == bin_width) {
                return bad(format!("bin width {bin_width} is not a power of two"));
            }
            let b = (max as f64 / bin_width) as usize;
            if b >= counts.len() || Some(b) != last {
                return bad(format!(
                    "max {max} is in bin {b}, the last non-empty bin is {last:?} of {}",
                    counts.len()
                ));
            }
            Some(k)
        };
        Ok(AbsHistogram {
            bins: counts,
            log2_width,
            max,
            count,
            nonfinite: 0,
        })
    }

    /// An empty histogram with this one's bins and width (the start of a parallel piece).
    fn empty_like(&self) -> Self {
        AbsHistogram {
            log2_width: self.log2_width,
            ..Self::new(self.bins.len())
        }
    }

    pub fn nbins(&self) -> usize {
        self.bins.len()
    }
    pub fn counts(&self) -> &[u64] {
        &self.bins
    }
    /// Bin width; 0 while no positive value has been seen.
    pub fn bin_width(&self) -> f64 {
        self.log2_width.map_or(0.0, pow2)
    }
    /// log2 of the bin width; None while no positive value has been seen.
    pub fn log2_bin_width(&self) -> Option<i32> {
        self.log2_width
    }
    /// Upper end of the last bin (every finite |x| seen is below it).
    pub fn range(&self) -> f64 {
        self.bin_width() * self.bins.len() as f64
    }
    /// Upper edge of bin `i - 1`, i.e. `i · width` (pytorch-quantization's `calib_bin_edges[i]`).
    pub fn edge(&self, i: usize) -> f64 {
        i as f64 * self.bin_width()
    }
    /// Exact max |x| over the finite values.
    pub fn max(&self) -> f32 {
        self.max
    }
    /// Number of finite values binned.
    pub fn count(&self) -> u64 {
        self.count
    }
    /// Number of NaN and ±inf values seen (not binned).
    pub fn nonfinite(&self) -> u64 {
        self.nonfinite
    }

    /// Bin every |x| of `xs`. One pass, no sorting; long slices are split over rayon.
    pub fn add(&mut self, xs: &[f32]) {
        if xs.len() < PAR_MIN || rayon::current_num_threads() < 2 {
            self.add_serial(xs);
            return;
        }
        let seed = self.empty_like();
        let part = xs
            .par_chunks(PAR_CHUNK)
            .fold(
                || seed.clone(),
                |mut h, c| {
                    h.add_serial(c);
                    h
                },
            )
            .reduce(
                || seed.clone(),
                |mut a, b| {
                    a.merge(&b);
                    a
                },
            );
        self.merge(&part);
    }

    fn add_serial(&mut self, xs: &[f32]) {
        let mut rest = xs;
        while !rest.is_empty() {
            let done = self.add_in_range(rest);
            let Some((&x, tail)) = rest[done..].split_first() else {
                break;
            };
            self.add_one(x);
            rest = tail;
        }
    }

    /// Bin the longest prefix of `xs` whose |x| all lie inside the current range (so no
    /// NaN/inf either); returns its length. The hot loop: four interleaved u32 histograms
    /// so runs of equal values (the zeros after a ReLU) do not wait on one counter.
    #[allow(clippy::neg_cmp_op_on_partial_ord)] // `!(t < limit)` is meant to catch NaN
    fn add_in_range(&mut self, xs: &[f32]) -> usize {
        let Some(k) = self.log2_width else {
            return 0;
        };
        let n = self.bins.len();
        // `a · 2^-k` is exact, so `t < n` is exactly `a < range` and false for NaN/inf.
        let inv = pow2(-k);
        let limit = n as f64;
        let mut done = 0;
        if xs.len() >= 4096 {
            let mut sub = vec![0u32; 4 * n];
            let (s01, s23) = sub.split_at_mut(2 * n);
            let (s0, s1) = s01.split_at_mut(n);
            let (s2, s3) = s23.split_at_mut(n);
            let mut m = [self.max; 4];
            // At most 2^32 - 1 values per u32 counter before they are flushed.
            for block in xs.chunks(1 << 31) {
                let mut quads = block.chunks_exact(4);
                let mut inner = 0;
                for q in &mut quads {
                    let a = [q[0].abs(), q[1].abs(), q[2].abs(), q[3].abs()];
                    let t = a.map(|v| v as f64 * inv);
                    if !(t[0] < limit && t[1] < limit && t[2] < limit && t[3] < limit) {
                        break;
                    }
                    s0[t[0] as usize] += 1;
                    s1[t[1] as usize] += 1;
                    s2[t[2] as usize] += 1;
                    s3[t[3] as usize] += 1;
                    for l in 0..4 {
                        m[l] = m[l].max(a[l]);
                    }
                    inner += 4;
                }
                done += inner;
                if inner < block.len() - block.len() % 4 {
                    break; // stopped at an out-of-range value
                }
            }
            for (j, b) in self.bins.iter_mut().enumerate() {
                *b += s0[j] as u64 + s1[j] as u64 + s2[j] as u64 + s3[j] as u64;
            }
            self.max = m.iter().fold(self.max, |x, &y| x.max(y));
        }
        for &x in &xs[done..] {
            let a = x.abs();
            let t = a as f64 * inv;
            if !(t < limit) {
                break;
            }
            self.bins[t as usize] += 1;
            self.max = self.max.max(a);
            done += 1;
        }
        self.count += done as u64;
        done
    }

    /// One value outside the range (or any value while the width is unset): count a NaN/inf,
    /// bin a zero, or set/grow the width to hold it.
    fn add_one(&mut self, x: f32) {
        let a = x.abs();
        if !a.is_finite() {
            self.nonfinite += 1;
            return;
        }
        self.count += 1;
        if a == 0.0 {
            self.bins[0] += 1; // only reached while the width is unset
            return;
        }
        let n = self.bins.len();
        let k = min_log2_width(a, n);
        if self.log2_width.is_none_or(|cur| cur < k) {
            self.widen_to(k);
        }
        let k = self.log2_width.expect("width set above");
        self.bins[(a as f64 * pow2(-k)) as usize] += 1;
        self.max = self.max.max(a);
    }

    /// Widen to `2^k` (k at least the current width) by merging bin pairs.
    fn widen_to(&mut self, k: i32) {
        match self.log2_width {
            None => self.log2_width = Some(k),
            Some(cur) => {
                for _ in cur..k {
                    double_width(&mut self.bins);
                }
                self.log2_width = Some(cur.max(k));
            }
        }
    }

    /// Add `other`'s counts (same number of bins); the result is at the wider of the two
    /// widths and equals one histogram fed both sets of values.
    pub fn merge(&mut self, other: &AbsHistogram) {
        assert_eq!(
            self.bins.len(),
            other.bins.len(),
            "AbsHistogram::merge: bin counts differ"
        );
        match (self.log2_width, other.log2_width) {
            (_, None) => self.bins[0] += other.bins[0],
            (None, Some(k)) => {
                let zeros = self.bins[0];
                self.bins.copy_from_slice(&other.bins);
                self.bins[0] += zeros;
                self.log2_width = Some(k);
            }
            (Some(a), Some(b)) if a >= b => {
                let mut o = other.bins.clone();
                for _ in b..a {
                    double_width(&mut o);
                }
                self.bins.iter_mut().zip(&o).for_each(|(s, x)| *s += x);
            }
            (Some(_), Some(b)) => {
                self.widen_to(b);
                self.bins
                    .iter_mut()
                    .zip(&other.bins)
                    .for_each(|(s, x)| *s += x);
            }
        }
        self.max = self.max.max(other.max);
        self.count += other.count;
        self.nonfinite += other.nonfinite;
    }
}

/// Smallest k with `a < n · 2^k` (a positive and finite).
fn min_log2_width(a: f32, n: usize) -> i32 {
    let a = a as f64;
    let n = n as f64;
    let mut k = (a / n).log2().floor() as i32;
    while a >= n * pow2(k) {
        k += 1;
    }
    while a < n * pow2(k - 1) {
        k -= 1;
    }
    k
}

/// Double the bin width in place: bin j becomes old bins 2j + 2j+1.
fn double_width(bins: &mut [u64]) {
    let n = bins.len();
    for j in 0..n {
        let lo = if 2 * j < n { bins[2 * j] } else { 0 };
        let hi = if 2 * j + 1 < n { bins[2 * j + 1] } else { 0 };
        bins[j] = lo + hi;
    }
}
