//! Activation calibration (src/quant/): histogram exactness (growth, merge, parallel split),
//! the three amax methods against the numpy restatement of pytorch-quantization
//! (tests/fixtures/quant-calib.json, tools/reference/quant_reference.py), and the cache file.
use edgedistill::quant::calibrator::{entropy_search, pairwise_sum, percentile_bin};
use edgedistill::quant::{AbsHistogram, CalibCache, Collector, Method, TensorCalib, amax};
use edgedistill::tensor::Rng;
use serde_json::Value;
use std::path::PathBuf;

fn fixture() -> Value {
    let p = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/quant-calib.json"
    );
    serde_json::from_str(&std::fs::read_to_string(p).expect("fixture")).expect("fixture JSON")
}

fn u64s(v: &Value) -> Vec<u64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap())
        .collect()
}

fn normals(n: usize, std: f64, seed: u64) -> Vec<f32> {
    let mut r = Rng::new(seed);
    (0..n).map(|_| (r.normal() * std) as f32).collect()
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ed-quant-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Counts of |x| binned directly at width 2^k.
fn direct_counts(xs: &[f32], k: i32, nbins: usize) -> Vec<u64> {
    let w = 2f64.powi(k);
    let mut c = vec![0u64; nbins];
    for &x in xs {
        c[(x.abs() as f64 / w).floor() as usize] += 1;
    }
    c
}

#[test]
fn fixture_matches_numpy_reference() {
    let f = fixture();
    let cases = f["cases"].as_array().unwrap();
    assert!(cases.len() >= 8);
    for c in cases {
        let name = c["name"].as_str().unwrap();
        let counts = u64s(&c["counts"]);
        let width = c["bin_width"].as_f64().unwrap();
        let max = c["max"].as_f64().unwrap() as f32;
        let h = AbsHistogram::from_counts(counts.clone(), width, max).unwrap();
        assert_eq!(
            h.log2_bin_width(),
            Some(c["log2_width"].as_i64().unwrap() as i32)
        );

        assert_eq!(amax(&h, Method::MinMax).unwrap(), max, "{name}: minmax");
        for p in c["percentile"].as_array().unwrap() {
            let pv = p["p"].as_f64().unwrap();
            let bin = p["bin"].as_u64().unwrap() as usize;
            assert_eq!(
                percentile_bin(&counts, pv).unwrap(),
                bin,
                "{name}: p{pv} bin"
            );
            let want = p["amax"].as_f64().unwrap() as f32;
            let got = amax(&h, Method::Percentile(pv)).unwrap();
            assert_eq!(got, want, "{name}: percentile {pv}");
            // pytorch-quantization returns the lower edge of the same bin.
            let pq = p["amax_pq"].as_f64().unwrap();
            assert_eq!(
                pq,
                bin as f64 * width,
                "{name}: p{pv}: pytorch-quantization"
            );
        }

        let top = counts.iter().rposition(|&x| x > 0).unwrap() + 1;
        let (bin, div) = entropy_search(&counts[..top]).unwrap();
        let want_bin = c["entropy_bin"].as_u64().unwrap() as usize;
        assert_eq!(bin, want_bin, "{name}: entropy bin");
        match c["entropy_divergence"].as_f64() {
            Some(d) => assert!(
                (div - d).abs() <= 1e-12 * d.abs().max(1e-300) || div == d,
                "{name}: divergence {div} vs numpy {d}"
            ),
            None => assert!(div.is_nan(), "{name}: numpy's divergence is NaN, got {div}"),
        }
        let want = c["amax_entropy"].as_f64().unwrap() as f32;
        assert_eq!(amax(&h, Method::Entropy).unwrap(), want, "{name}: entropy");

        if let Some(s) = c.get("sample") {
            let xs: Vec<f32> = s["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32)
                .collect();
            let mut h = AbsHistogram::default();
            h.add(&xs);
            assert_eq!(
                h.log2_bin_width(),
                Some(s["log2_width"].as_i64().unwrap() as i32)
            );
            assert_eq!(
                h.counts(),
                &u64s(&s["counts"])[..],
                "{name}: sample binning"
            );
        }
    }
}

#[test]
fn numpy_pairwise_sum_order() {
    // Near-equal entropy candidates compare as in numpy only if the sums round alike.
    let f = fixture();
    let pw = &f["pairwise"];
    let xs: Vec<f64> = pw["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let naive: f64 = xs.iter().sum();
    assert_eq!(naive, pw["naive"].as_f64().unwrap());
    assert_eq!(pairwise_sum(&xs), pw["sum"].as_f64().unwrap());
    assert_ne!(pairwise_sum(&xs), naive);
    assert_eq!(pairwise_sum(&[1.0, 2.0, 3.0]), 6.0);
}

#[test]
fn growth_equals_direct_binning_at_final_range() {
    // Batches of growing scale: the range doubles several times, inside batches too.
    let mut h = AbsHistogram::default();
    let mut all = Vec::new();
    let mut widths = Vec::new();
    for (i, std) in [0.01, 0.5, 0.2, 3.0, 40.0, 1.0].iter().enumerate() {
        let mut b = normals(5000, *std, i as u64);
        b.push(-(*std as f32) * 7.5); // the batch max, at the end
        h.add(&b);
        widths.push(h.log2_bin_width().unwrap());
        all.extend(b);
    }
    assert!(
        widths[0] < widths[4],
        "the range must have grown: {widths:?}"
    );
    let k = h.log2_bin_width().unwrap();
    let max = all.iter().fold(0f32, |m, x| m.max(x.abs()));
    assert_eq!(h.max(), max);
    assert!((max as f64) < h.range() && (max as f64) >= h.range() / 2.0);
    assert_eq!(h.counts(), &direct_counts(&all, k, 2048)[..]);
    assert_eq!(h.count(), all.len() as u64);

    // A slice long enough for the rayon split (over 2^20 values), with its max late (the
    // pieces grow apart), a NaN and an inf inside it.
    let mut big = normals(1_500_000, 1.0, 9);
    big[1_400_001] = 1000.0;
    big[700_003] = f32::NAN;
    big[5] = f32::NEG_INFINITY;
    let mut hb = AbsHistogram::default();
    hb.add(&big[..10]);
    hb.add(&big);
    let mut want: Vec<f32> = big[..10].to_vec();
    want.extend_from_slice(&big);
    want.retain(|x| x.is_finite());
    assert_eq!(
        hb.counts(),
        &direct_counts(&want, hb.log2_bin_width().unwrap(), 2048)[..]
    );
    assert_eq!(hb.max(), 1000.0);
    assert_eq!(hb.count(), want.len() as u64);
    assert_eq!(hb.nonfinite(), 3);
}

#[test]
fn merge_equals_sequential_add() {
    let a = normals(20_000, 0.3, 1);
    let b = normals(30_000, 5.0, 2);
    let mut c = normals(10_000, 1.0, 3);
    c.extend([0.0, -0.0, f32::NAN, f32::INFINITY]);
    let mut seq = AbsHistogram::default();
    for x in [&a, &b, &c] {
        seq.add(x);
    }
    let parts: Vec<AbsHistogram> = [&c, &a, &b]
        .iter()
        .map(|x| {
            let mut h = AbsHistogram::default();
            h.add(x);
            h
        })
        .collect();
    let mut merged = AbsHistogram::default();
    for p in &parts {
        merged.merge(p);
    }
    assert_eq!(merged, seq);
    // The other way round: a wide histogram merged into a narrow one.
    let mut m2 = parts[1].clone();
    m2.merge(&parts[2]);
    m2.merge(&parts[0]);
    assert_eq!(m2, seq);
    assert_eq!(seq.nonfinite(), 2);
    assert_eq!(seq.count(), 60_002);

    // Zeros only (width unset) merge into either side.
    let mut z = AbsHistogram::default();
    z.add(&[0.0; 5]);
    assert_eq!(z.log2_bin_width(), None);
    let mut zs = z.clone();
    zs.merge(&parts[1]);
    let mut sz = parts[1].clone();
    sz.merge(&z);
    assert_eq!(zs, sz);
    assert_eq!(zs.counts()[0], parts[1].counts()[0] + 5);

    // Collectors merge the same way.
    let mut c1 = Collector::default();
    let mut c2 = Collector::default();
    c1.observe("t", &a).unwrap();
    c2.observe("t", &b).unwrap();
    c2.observe("u", &c).unwrap();
    c1.merge(c2);
    let mut ab = AbsHistogram::default();
    ab.add(&a);
    ab.add(&b);
    assert_eq!(c1.histograms()["t"], ab);
    assert_eq!(c1.histograms()["u"], parts[0]);
}

#[test]
fn percentile_100_is_max_rounded_up_to_its_bin_edge() {
    let mut xs = normals(50_000, 2.0, 4);
    let mut h = AbsHistogram::default();
    h.add(&xs);
    let w = h.bin_width();
    let max = h.max() as f64;
    let want = ((max / w).floor() + 1.0) * w;
    assert!(want > max);
    assert_eq!(amax(&h, Method::Percentile(100.0)).unwrap(), want as f32);
    assert!(amax(&h, Method::Percentile(99.99)).unwrap() < want as f32);
    // A max exactly on an edge goes to the bin above it.
    xs.push(16.0);
    let mut h = AbsHistogram::default();
    h.add(&xs);
    assert_eq!(h.bin_width(), 2f64.powi(-6)); // 16 < 2048 · 2^-6 = 32
    assert_eq!(
        amax(&h, Method::Percentile(100.0)).unwrap(),
        16.0 + 2f32.powi(-6)
    );
    assert!(amax(&h, Method::Percentile(101.0)).is_err());
}

#[test]
fn entropy_clips_a_far_outlier() {
    let mut xs = normals(200_000, 1.0, 5);
    xs.push(60.0);
    let mut h = AbsHistogram::default();
    h.add(&xs);
    assert_eq!(amax(&h, Method::MinMax).unwrap(), 60.0);
    let e = amax(&h, Method::Entropy).unwrap();
    assert!(e > 2.5 && e < 0.15 * 60.0, "entropy amax {e}");
    let p = amax(&h, Method::Percentile(99.99)).unwrap();
    assert!(p < 6.0, "percentile amax {p}");
}

#[test]
fn special_histograms() {
    let mut h = AbsHistogram::default();
    assert!(
        amax(&h, Method::MinMax)
            .unwrap_err()
            .to_string()
            .contains("no values")
    );
    h.add(&[0.0, -0.0]);
    for m in [Method::MinMax, Method::Percentile(99.99), Method::Entropy] {
        assert_eq!(amax(&h, m).unwrap(), 0.0);
    }
    h.add(&[1.0, f32::NAN, f32::NEG_INFINITY]);
    let e = amax(&h, Method::Entropy).unwrap_err().to_string();
    assert!(e.contains("2 non-finite"), "{e}");
    // Subnormal and huge magnitudes keep exact power-of-two widths.
    let mut h = AbsHistogram::default();
    h.add(&[1e-44, 3e-45, 0.0]);
    assert_eq!(amax(&h, Method::MinMax).unwrap(), 1e-44);
    h.add(&[3e38]);
    assert_eq!(amax(&h, Method::MinMax).unwrap(), 3e38);
    assert!(amax(&h, Method::Percentile(100.0)).unwrap().is_finite());
    assert_eq!(h.counts()[0], 3);
    assert!(AbsHistogram::from_counts(vec![1, 2], 0.3, 0.5).is_err());
    assert!(AbsHistogram::from_counts(vec![1, 2], 0.25, 0.1).is_err());
}

#[test]
fn method_parse_and_display() {
    for (s, m) in [
        ("minmax", Method::MinMax),
        ("entropy", Method::Entropy),
        ("percentile", Method::Percentile(99.99)),
        ("percentile:99.9", Method::Percentile(99.9)),
        ("Percentile:100", Method::Percentile(100.0)),
    ] {
        let got: Method = s.parse().unwrap();
        assert_eq!(got, m, "{s}");
        assert_eq!(got.to_string().parse::<Method>().unwrap(), m);
    }
    assert_eq!(Method::Percentile(99.99).to_string(), "percentile:99.99");
    assert_eq!(Method::MinMax.to_string(), "minmax");
    for bad in [
        "max",
        "percentile:",
        "percentile:0",
        "percentile:101",
        "percentile:x",
        "",
    ] {
        assert!(bad.parse::<Method>().is_err(), "{bad:?}");
    }
}

fn small_cache() -> CalibCache {
    let mut c = Collector::default();
    c.observe("model.0.conv", &normals(10_000, 1.0, 6)).unwrap();
    c.observe("model.1.conv", &normals(10_000, 3.0, 7)).unwrap();
    c.observe("model.1.conv", &normals(10_000, 0.5, 8)).unwrap();
    c.finish(2, "runs/x/best.safetensors", Method::Entropy)
        .unwrap()
}

#[test]
fn cache_round_trip() {
    let cache = small_cache();
    assert_eq!(cache.version, 1);
    assert_eq!(cache.method, "entropy");
    assert_eq!(cache.tensors.len(), 2);
    let t = &cache.tensors["model.1.conv"];
    assert_eq!(t.count, 20_000);
    assert_eq!(t.percentile, 99.99);
    assert!(t.amax_percentile < t.amax_minmax && t.amax_entropy > 0.0);
    let d = scratch("roundtrip");
    let p = d.join("calib_cache.json");
    cache.write(&p).unwrap();
    let back = CalibCache::read(&p).unwrap();
    assert_eq!(back, cache);
    assert_eq!(
        back.amax("model.1.conv", Method::MinMax).unwrap(),
        t.amax_minmax
    );
    assert_eq!(
        back.amax("model.1.conv", Method::Percentile(99.99))
            .unwrap(),
        t.amax_percentile
    );
    assert_eq!(
        back.amax("model.1.conv", Method::Entropy).unwrap(),
        t.amax_entropy
    );
    let e = back
        .amax("model.1.conv", Method::Percentile(99.9))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("model.1.conv") && e.contains("99.99") && e.contains("99.9"),
        "{e}"
    );
    let e = back
        .amax("model.9.conv", Method::Entropy)
        .unwrap_err()
        .to_string();
    assert!(e.contains("model.9.conv"), "{e}");
    // The percentile of a percentile default is the one stored.
    let mut c = Collector::default();
    c.observe("a", &normals(1000, 1.0, 1)).unwrap();
    let pc = c.finish(1, "m", Method::Percentile(99.9)).unwrap();
    assert_eq!(pc.method, "percentile:99.9");
    assert_eq!(pc.tensors["a"].percentile, 99.9);
    assert!(pc.amax("a", Method::Percentile(99.9)).is_ok());
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn cache_errors_name_file_and_tensor() {
    let d = scratch("errors");
    let good = d.join("good.json");
    small_cache().write(&good).unwrap();
    let text = std::fs::read_to_string(&good).unwrap();
    let read_err = |name: &str, body: &str| -> String {
        let p = d.join(name);
        std::fs::write(&p, body).unwrap();
        let e = CalibCache::read(&p).unwrap_err().to_string();
        assert!(
            e.contains(name),
            "{name}: error does not name the file: {e}"
        );
        e
    };
    let e = read_err("truncated.json", &text[..text.len() / 2]);
    assert!(e.contains("EOF"), "{e}");
    read_err("garbage.json", "not json at all");
    read_err("empty.json", "");
    let e = read_err(
        "negative.json",
        &text.replacen("\"amax_entropy\": ", "\"amax_entropy\": -", 1),
    );
    assert!(
        e.contains("model.0.conv") && e.contains("amax_entropy"),
        "{e}"
    );
    let mut v: Value = serde_json::from_str(&text).unwrap();
    v["tensors"]["model.1.conv"]["amax_minmax"] = Value::Null;
    let e = read_err("null.json", &v.to_string());
    assert!(
        e.contains("model.1.conv") && e.contains("non-finite"),
        "{e}"
    );
    let mut v: Value = serde_json::from_str(&text).unwrap();
    v["tensors"]["model.1.conv"]
        .as_object_mut()
        .unwrap()
        .remove("count");
    let e = read_err("missing.json", &v.to_string());
    assert!(e.contains("model.1.conv") && e.contains("count"), "{e}");
    let mut v: Value = serde_json::from_str(&text).unwrap();
    v["tensors"]["model.0.conv"]["amax_percentile"] = serde_json::json!(1e39);
    let e = read_err("overflow.json", &v.to_string());
    assert!(e.contains("model.0.conv"), "{e}");
    let e = read_err(
        "version.json",
        &text.replacen("\"version\": 1", "\"version\": 7", 1),
    );
    assert!(e.contains("version"), "{e}");
    let e = read_err("method.json", &text.replacen("\"entropy\"", "\"kl\"", 1));
    assert!(e.contains("method"), "{e}");
    let e = CalibCache::read(&d.join("absent.json"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("absent.json"), "{e}");

    // Writing refuses a non-finite or negative amax, naming the tensor.
    let mut bad = small_cache();
    bad.tensors.insert(
        "model.2.conv".into(),
        TensorCalib {
            amax_minmax: f32::NAN,
            amax_percentile: 1.0,
            percentile: 99.99,
            amax_entropy: 1.0,
            count: 3,
        },
    );
    let p = d.join("bad.json");
    let e = bad.write(&p).unwrap_err().to_string();
    assert!(e.contains("model.2.conv") && e.contains("bad.json"), "{e}");
    assert!(!p.exists());
    bad.tensors.get_mut("model.2.conv").unwrap().amax_minmax = -1.0;
    assert!(bad.write(&p).is_err());

    // Non-finite activations stop calibration, naming the tensor.
    let mut c = Collector::default();
    c.observe(
        "model.3.conv",
        &[1.0, f32::NAN, 2.0, f32::INFINITY, f32::NAN],
    )
    .unwrap();
    c.observe("model.4.conv", &[1.0]).unwrap();
    let e = c.finish(1, "m", Method::Entropy).unwrap_err().to_string();
    assert!(
        e.contains("tensor model.3.conv: 3 non-finite values"),
        "{e}"
    );
    let e = Collector::default()
        .finish(1, "m", Method::Entropy)
        .unwrap_err()
        .to_string();
    assert!(e.contains("no tensors"), "{e}");
    let _ = std::fs::remove_dir_all(&d);
}
