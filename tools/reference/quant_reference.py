"""numpy reference for activation calibration (src/quant/): writes tests/fixtures/quant-calib.json.

Restates NVIDIA pytorch-quantization's histogram calibrators
(pytorch_quantization/calib/histogram.py: _compute_amax_entropy, _compute_amax_percentile)
on histograms binned the way src/quant/histogram.rs bins them (power-of-two bin width, the
smallest whose 2048 bins hold max |x|; bin = floor(|x| / width)).

- entropy: the reference line by line (linspace + digitize + Counter, bins[0] = bins[1],
  last argmin, numpy's argmin preferring NaN). scipy is not needed: `entropy` below is
  scipy.stats.entropy restated (normalise both, rel_entr per element with C log, np.sum).
  It is handed the histogram up to the bin holding max |x|: pytorch-quantization's
  histograms end at the max's bin edge, ours run on to a power-of-two range, and the empty
  bins above the max would be candidates it never has.
- percentile: the bin where the integer cumulative count first reaches p% of the total
  (cum * 100 >= p * total in f64);
  amax is that bin's UPPER edge. pytorch-quantization returns calib_bin_edges[idx], the
  lower edge of the same bin (found from a float cdf); that value is written too
  ("amax_percentile_pq") for comparison.
- minmax: max |x|.

Run: /work/venv/bin/python tools/reference/quant_reference.py  (about a minute)
"""

import json
import math
import os
from collections import Counter

import numpy as np

NBINS = 2048
PERCENTILES = [99.99, 99.9, 99.0, 100.0]
OUT = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "fixtures", "quant-calib.json")


def pow2_width(amax, nbins=NBINS):
    """Smallest power-of-two width w with amax < nbins * w (as histogram.rs)."""
    k = math.floor(math.log2(amax / nbins))
    while amax >= nbins * 2.0**k:
        k += 1
    while amax < nbins * 2.0 ** (k - 1):
        k -= 1
    return k


def histogram(x, nbins=NBINS):
    a = np.abs(np.asarray(x, dtype=np.float32)).astype(np.float64)
    k = pow2_width(float(a.max()), nbins)
    idx = np.floor(a * 2.0 ** (-k)).astype(np.int64)
    assert idx.max() < nbins
    return np.bincount(idx, minlength=nbins).astype(np.int64), k, float(np.float32(a.max()))


def rel_entr(x, y):
    """scipy.special.rel_entr with the C library's log (as scipy's ufunc and Rust's ln)."""
    if math.isnan(x) or math.isnan(y):
        return math.nan
    if x > 0 and y > 0:
        return x * math.log(x / y)
    if x == 0 and y >= 0:
        return 0.0
    return math.inf


def entropy(pk, qk):
    """scipy.stats.entropy(pk, qk): both normalised by np.sum, sum of rel_entr by np.sum."""
    with np.errstate(invalid="ignore", divide="ignore"):
        pk = 1.0 * pk / np.sum(pk)
        qk = 1.0 * qk / np.sum(qk)
    vec = np.array([rel_entr(float(p), float(q)) for p, q in zip(pk, qk)], dtype=np.float64)
    return np.sum(vec)


def compute_amax_entropy(calib_hist, calib_bin_edges, num_bits=8, unsigned=False, stride=1, start_bin=128):
    """pytorch-quantization's _compute_amax_entropy; returns (amax, bin i, divergence at i, gap)."""

    def _normalize_distr(distr):  # a no-op in the reference too (rebinds a local)
        summ = np.sum(distr)
        if summ != 0:
            distr = distr / summ

    bins = calib_hist[:].copy()  # the reference writes through a view; keep the caller's
    bins[0] = bins[1]
    total_data = np.sum(bins)
    divergences = []
    arguments = []
    nbins = 1 << (num_bits - 1 + int(unsigned))
    starting = start_bin
    stop = len(bins)
    new_density_counts = np.zeros(nbins, dtype=np.float64)
    for i in range(starting, stop + 1, stride):
        new_density_counts.fill(0)
        space = np.linspace(0, i, num=nbins + 1)
        digitized_space = np.digitize(range(i), space) - 1
        # The closed form histogram.rs uses for the chunk of bin j.
        assert (digitized_space == (nbins * np.arange(i)) // i).all()
        digitized_space[bins[:i] == 0] = -1
        for idx, digitized in enumerate(digitized_space):
            if digitized != -1:
                new_density_counts[digitized] += bins[idx]
        counter = Counter(digitized_space)
        for key, val in counter.items():
            if key != -1:
                new_density_counts[key] = new_density_counts[key] / val
        new_density = np.zeros(i, dtype=np.float64)
        for idx, digitized in enumerate(digitized_space):
            if digitized != -1:
                new_density[idx] = new_density_counts[digitized]
        total_counts_new = np.sum(new_density) + np.sum(bins[i:])
        _normalize_distr(new_density)
        reference_density = np.array(bins[: len(digitized_space)])
        reference_density[-1] += np.sum(bins[i:])
        total_counts_old = np.sum(reference_density)
        if round(total_counts_new) != total_data or round(total_counts_old) != total_data:
            raise RuntimeError("Count mismatch!")
        _normalize_distr(reference_density)
        ent = entropy(reference_density, new_density)
        divergences.append(ent)
        arguments.append(i)
    divergences = np.array(divergences)
    last_argmin = len(divergences) - 1 - np.argmin(divergences[::-1])
    i = last_argmin * stride + starting
    calib_amax = calib_bin_edges[i]
    # How close the runner-up is (a tie within float noise would make the choice fragile).
    d = divergences[last_argmin]
    others = np.delete(divergences, last_argmin)
    finite = others[np.isfinite(others)]
    gap = float(np.min(np.abs(finite - d))) if np.isfinite(d) and finite.size else None
    return calib_amax, i, float(d), gap


def compute_amax_percentile(calib_hist, calib_bin_edges, percentile):
    """Upper edge of the bin where the integer cumulative count reaches percentile% (see top)."""
    total = int(calib_hist.sum())
    cum = np.cumsum(calib_hist)
    # cum * 100 >= p * total: one rounding, so 99.9 of 200000 is 199800 (not 199800.00000000003)
    idx = int(np.searchsorted(cum * 100.0, percentile * float(total), side="left"))
    idx = min(idx, len(calib_hist) - 1)
    return calib_bin_edges[idx + 1], idx


def compute_amax_percentile_pq(calib_hist, calib_bin_edges, percentile):
    """pytorch-quantization's _compute_amax_percentile, verbatim (lower edge, float cdf)."""
    total = calib_hist.sum()
    cdf = np.cumsum(calib_hist / total)
    idx = np.searchsorted(cdf, percentile / 100)
    return calib_bin_edges[idx]


def check_pairwise():
    """histogram.rs sums in numpy's pairwise order; check the restatement against np.sum."""

    def pw(a):
        n = len(a)
        if n < 8:
            s = 0.0
            for x in a:
                s += x
            return s
        if n <= 128:
            r = list(a[:8])
            i = 8
            while i < n - n % 8:
                for k in range(8):
                    r[k] += a[i + k]
                i += 8
            s = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
            for x in a[i:]:
                s += x
            return s
        n2 = n // 2
        n2 -= n2 % 8
        return pw(a[:n2]) + pw(a[n2:])

    rng = np.random.default_rng(1)
    differ = 0
    for n in [1, 7, 8, 9, 100, 128, 129, 300, 1000, 2047, 2048]:
        a = rng.standard_normal(n) * 1e3 + rng.standard_normal(n) * 1e-3
        assert float(np.sum(a)) == pw([float(x) for x in a]), n
        naive = 0.0
        for x in a.tolist():
            naive += x
        differ += naive != float(np.sum(a))
    assert differ >= 3, "the check must tell pairwise from left-to-right summation"


def cases():
    rng = np.random.default_rng(20240611)
    n = 200_000
    out = {}
    out["normal"] = rng.standard_normal(n)
    out["laplace"] = rng.laplace(0.0, 1.0, n)
    out["student_t3"] = rng.standard_t(3, n)
    z = rng.normal(0.5, 2.0, n)
    out["silu"] = z / (1.0 + np.exp(-z))
    # Post-ReLU: half exact zeros (bins[0] = bins[1] matters).
    out["relu"] = np.maximum(rng.normal(0.0, 1.0, n), 0.0)
    # A body wider than 128 bins and one outlier well past it: KL clips in the body.
    out["outlier_near"] = np.concatenate([rng.standard_normal(n), [40.0]])
    # A body of a few bins and one outlier far past it: every cut below the outlier has an
    # empty cut bin with mass beyond it (inf), so the reference keeps the whole range.
    out["outlier_far"] = np.concatenate([rng.standard_normal(n), [3000.0]])
    # Nothing below 1/16 of the range: Q is empty (0/0, NaN) for the first candidates and
    # numpy's argmin takes the last NaN: amax is the lower edge of the first occupied bin,
    # clipping every value. (Skipping NaN would not help: the next cut has KL exactly 0.)
    out["band"] = rng.uniform(0.7, 1.0, 20_000) * np.sign(rng.standard_normal(20_000))
    return {k: np.asarray(v, dtype=np.float32) for k, v in out.items()}


def main():
    check_pairwise()
    fixture = {
        "generator": "tools/reference/quant_reference.py",
        "nbins": NBINS,
        "cases": [],
    }
    # An order-sensitive array and numpy's sum of it: the Rust pairwise sum must agree.
    for seed in range(7, 100):
        rng = np.random.default_rng(seed)
        v = rng.standard_normal(600) * 1e3 + rng.standard_normal(600) * 1e-3
        naive = 0.0
        for x in v.tolist():
            naive += x
        if naive != float(np.sum(v)):
            break
    fixture["pairwise"] = {"values": v.tolist(), "sum": float(np.sum(v)), "naive": naive}
    for name, x in cases().items():
        hist, k, amax = histogram(x)
        width = 2.0**k
        edges = np.arange(NBINS + 1, dtype=np.float64) * width
        top = int(np.nonzero(hist)[0][-1]) + 1  # the histogram up to the max's bin
        e_amax, e_bin, e_div, e_gap = compute_amax_entropy(hist[:top], edges[: top + 1])
        pct = []
        for p in PERCENTILES:
            a, idx = compute_amax_percentile(hist, edges, p)
            pct.append(
                {
                    "p": p,
                    "bin": idx,
                    "amax": float(a),
                    "amax_pq": float(compute_amax_percentile_pq(hist, edges, p)),
                }
            )
        case = {
            "name": name,
            "log2_width": k,
            "bin_width": width,
            "max": amax,
            "counts": hist.tolist(),
            "amax_minmax": amax,
            "percentile": pct,
            "entropy_bin": int(e_bin),
            "amax_entropy": float(e_amax),
            "entropy_divergence": None if math.isnan(e_div) else e_div,
            "entropy_gap": e_gap,
        }
        if name == "silu":
            # A small raw sample, to check the Rust binning against numpy's.
            sample = x[:1000]
            sh, sk, smax = histogram(sample)
            case["sample"] = {"values": sample.astype(np.float64).tolist(), "log2_width": sk, "counts": sh.tolist()}
        fixture["cases"].append(case)
        print(
            f"{name:13s} max {amax:10.4f} width 2^{k} entropy bin {e_bin} amax {e_amax:.4f} "
            f"(div {e_div:.3e}, gap {e_gap}) p99.99 {pct[0]['amax']:.4f} (pq {pct[0]['amax_pq']:.4f})"
        )
    with open(OUT, "w") as f:
        json.dump(fixture, f, separators=(",", ":"))
        f.write("\n")
    print("wrote", os.path.normpath(OUT), os.path.getsize(OUT), "bytes")


if __name__ == "__main__":
    main()
