//! The few numpy routines ultralytics' metrics are built on, reproduced operation for
//! operation (numpy 2.4) so that results agree to the last bit: `linspace`, `interp`, the
//! pairwise summation behind `sum`/`mean`, `trapezoid`, and ultralytics' `smooth` (a box
//! filter through `np.convolve`). `smooth` is the one exception: numpy's `convolve` sums
//! with BLAS `ddot`, whose order depends on the CPU's OpenBLAS kernel, so ours (a plain
//! left-to-right sum) agrees to a few ulps, not bit for bit.

/// `np.linspace(start, stop, num)`: `i·step + start` with `step = (stop − start)/(num − 1)`,
/// the last point set to `stop`.
pub fn linspace(start: f64, stop: f64, num: usize) -> Vec<f64> {
    if num == 0 {
        return Vec::new();
    }
    if num == 1 {
        return vec![start];
    }
    let div = (num - 1) as f64;
    let delta = stop - start;
    let step = delta / div;
    let mut y: Vec<f64> = (0..num)
        .map(|i| {
            if step == 0.0 {
                i as f64 / div * delta + start
            } else {
                i as f64 * step + start
            }
        })
        .collect();
    y[num - 1] = stop;
    y
}

/// `np.interp(x, xp, fp, left, right)` for increasing `xp` (ties allowed, as numpy: the last
/// of equal `xp` values wins). `left`/`right` default to `fp[0]`/`fp[last]`. With empty
/// `xp` numpy raises; here the result is empty.
pub fn interp(
    x: &[f64],
    xp: &[f64],
    fp: &[f64],
    left: Option<f64>,
    right: Option<f64>,
) -> Vec<f64> {
    let n = xp.len().min(fp.len());
    if n == 0 {
        return Vec::new();
    }
    let (xp, fp) = (&xp[..n], &fp[..n]);
    let lval = left.unwrap_or(fp[0]);
    let rval = right.unwrap_or(fp[n - 1]);
    x.iter()
        .map(|&v| {
            if v.is_nan() {
                return v;
            }
            if v > xp[n - 1] {
                return rval;
            }
            // numpy's binary_search_with_guess returns the largest j with xp[j] <= v
            // (whatever the guess), or -1.
            let after = xp.partition_point(|&q| q <= v);
            if after == 0 {
                return lval;
            }
            let j = after - 1;
            if j == n - 1 || xp[j] == v {
                return fp[j];
            }
            let slope = (fp[j + 1] - fp[j]) / (xp[j + 1] - xp[j]);
            let r = slope * (v - xp[j]) + fp[j];
            if !r.is_nan() {
                return r;
            }
            let r = slope * (v - xp[j + 1]) + fp[j + 1];
            if r.is_nan() && fp[j] == fp[j + 1] {
                fp[j]
            } else {
                r
            }
        })
        .collect()
}

pub use crate::backend::cpu::math::pairwise_sum;

/// `np.mean` of a 1-D array (pairwise sum / n); `None` when empty (numpy gives NaN).
pub fn mean(a: &[f64]) -> Option<f64> {
    (!a.is_empty()).then(|| pairwise_sum(a) / a.len() as f64)
}

/// `np.trapezoid(y, x)`: pairwise sum of `(Δx · (y[k+1] + y[k])) / 2`.
pub fn trapezoid(y: &[f64], x: &[f64]) -> f64 {
    let terms: Vec<f64> = y
        .windows(2)
        .zip(x.windows(2))
        .map(|(yy, xx)| (xx[1] - xx[0]) * (yy[1] + yy[0]) / 2.0)
        .collect();
    pairwise_sum(&terms)
}

/// ultralytics `smooth(y, f)`: a box filter of `nf = round(2·f·len)//2 + 1` points over `y`
/// padded at both ends with `nf/2` copies of its end values. Same length as `y` when `nf`
/// is odd (1000 points, f = 0.1: nf = 101); one longer when it is even, as in ultralytics.
pub fn smooth(y: &[f64], f: f64) -> Vec<f64> {
    let (Some(&first), Some(&last)) = (y.first(), y.last()) else {
        return Vec::new();
    };
    // Python's round() on a float is half-to-even.
    let nf = ((y.len() as f64 * f * 2.0).round_ties_even() as usize) / 2 + 1;
    let pad = nf / 2;
    let mut yp = vec![first; pad];
    yp.extend_from_slice(y);
    yp.resize(yp.len() + pad, last);
    let k = 1.0 / nf as f64;
    yp.windows(nf)
        .map(|w| w.iter().fold(0.0, |s, &v| s + v * k))
        .collect()
}

/// Index of the first maximum (`np.argmax`; NaN-free input); 0 for an empty slice.
pub fn argmax(a: &[f64]) -> usize {
    let mut best = 0;
    for (i, &v) in a.iter().enumerate() {
        if v > a[best] {
            best = i;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interp_ties_and_ends() {
        let xp = [0.0, 1.0, 1.0, 2.0];
        let fp = [0.0, 1.0, 5.0, 6.0];
        let y = interp(&[-1.0, 0.5, 1.0, 1.5, 2.0, 3.0], &xp, &fp, Some(-9.0), None);
        // at a tie the last value wins; between, the segment from the last tie
        assert_eq!(y, vec![-9.0, 0.5, 5.0, 5.5, 6.0, 6.0]);
    }

    #[test]
    fn pairwise_matches_numpy_order() {
        // Values from numpy 2.4: a plain left-to-right sum loses every 1 against 1e16.
        let mut a = vec![1.0; 20];
        a[0] = 1e16;
        assert_eq!(pairwise_sum(&a), 1.0000000000000016e16);
        let mut b = vec![1.0; 300];
        b[0] = 1e16;
        b[200] = 3e15;
        assert_eq!(pairwise_sum(&b), 1.3000000000000288e16);
        assert_eq!(mean(&b), Some(43333333333334.3));
        assert_eq!(linspace(0.0, 1.0, 5), vec![0.0, 0.25, 0.5, 0.75, 1.0]);
        // ultralytics' smooth on 30 points: nf = 4 (even), so 31 values come back
        let y: Vec<f64> = (0..30).map(|i| (i * i) as f64 / 7.0).collect();
        let s = smooth(&y, 0.1);
        assert_eq!(s.len(), 31);
        let want = [0.03571428571428571, 30.21428571428571, 118.10714285714286];
        for (g, w) in [s[0], s[15], s[30]].iter().zip(want) {
            assert!((g - w).abs() <= 1e-13 * w, "{g} vs {w}");
        }
    }
}
