//! YOLOv8 detect/seg model parity with ultralytics 8.4.190: the shared yolov8n-seg fixture
//! (eval, train-mode BN, fused), a committed tiny detect fixture (reg_max 8, non-square
//! input), stock configs' names and sizes, state-dict errors, and gradients.
mod common;

use edgedistill::check::Fixture;
use edgedistill::io::StateDict;
use edgedistill::models::yolov8::{YoloConfig, YoloModel};
use edgedistill::nn::{Module, state_dict_of};
use edgedistill::tensor::Rng;
use edgedistill::{DType, Tensor};

/// Compare `ours` with fixture tensor `name` under its tolerance; panics with the worst
/// element.
fn check(fx: &Fixture, name: &str, ours: &Tensor) {
    let line = fx.compare(name, ours);
    assert!(line.pass, "{name}: {line:?}");
    eprintln!(
        "{name}: max abs {:.3e}, max rel {:.3e}",
        line.max_abs, line.max_rel
    );
}

fn load(fx: &Fixture) -> YoloModel {
    let cfg = YoloConfig::from_json(&fx.config().unwrap()).unwrap();
    YoloModel::from_state_dict(&cfg, &fx.state_dict("weights.")).unwrap()
}

#[test]
fn seg_fixture_eval_train_and_fused() {
    let Some(path) = common::shared_or_skip("yolov8n-seg-visible.safetensors") else {
        return;
    };
    let fx = Fixture::open(path).unwrap();
    let m = load(&fx);
    assert!(m.is_seg());
    assert_eq!((m.nc(), m.nm(), m.reg_max()), (3, 32, 16));
    assert_eq!(m.strides(), &[8.0, 16.0, 32.0]);
    let x = fx.tensor("inputs.images").unwrap();

    let e = m.forward_eval(&x).unwrap();
    check(&fx, "outputs.pred", &e.pred);
    check(&fx, "outputs.proto", e.proto.as_ref().unwrap());

    // Folded BN gives the same outputs.
    let f = m.fuse().unwrap();
    assert!(f.is_fused());
    assert!(
        f.named_parameters()
            .iter()
            .all(|(n, _)| !n.contains(".bn."))
    );
    let fe = f.forward_eval(&x).unwrap();
    check(&fx, "outputs.pred", &fe.pred);
    check(&fx, "outputs.proto", fe.proto.as_ref().unwrap());

    let t = m.forward_train(&x).unwrap();
    assert_eq!(t.feats.len(), 3);
    for (i, feat) in t.feats.iter().enumerate() {
        check(&fx, &format!("outputs.train.feats.{i}"), feat);
    }
    check(
        &fx,
        "outputs.train.mask_coefficient",
        t.mask_coef.as_ref().unwrap(),
    );
    check(&fx, "outputs.train.proto", t.proto.as_ref().unwrap());
    assert_eq!(t.boxes.dims(), &[2, 64, 1344]);
    assert_eq!(t.scores.dims(), &[2, 3, 1344]);
    // The train pass moved the running statistics (momentum 0.03) and counted the batch.
    let sd = state_dict_of(&m);
    let get = |n: &str| sd.iter().find(|(k, _)| k == n).unwrap().1.clone();
    let before = fx
        .tensor("weights.model.0.bn.running_mean")
        .unwrap()
        .to_vec_f64()
        .unwrap();
    let after = get("model.0.bn.running_mean").to_vec_f64().unwrap();
    assert!(before.iter().zip(&after).any(|(a, b)| (a - b).abs() > 1e-6));
    assert_eq!(
        get("model.0.bn.num_batches_tracked")
            .to_vec::<i64>()
            .unwrap(),
        vec![1]
    );
}

#[test]
fn detect_fixture_eval_and_train() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/yolov8_detect_tiny.safetensors"
    );
    let fx = Fixture::open(path).unwrap();
    let m = load(&fx);
    assert!(!m.is_seg());
    assert_eq!((m.nc(), m.nm(), m.reg_max()), (2, 0, 8));
    let n: usize = m
        .named_parameters()
        .iter()
        .map(|(_, t)| t.elem_count())
        .sum();
    assert_eq!(n.to_string(), fx.meta("param_count").unwrap());
    let x = fx.tensor("inputs.images").unwrap();
    let e = m.forward_eval(&x).unwrap();
    assert!(e.proto.is_none());
    check(&fx, "outputs.pred", &e.pred);
    check(
        &fx,
        "outputs.pred",
        &m.fuse().unwrap().forward_eval(&x).unwrap().pred,
    );
    let t = m.forward_train(&x).unwrap();
    assert!(t.mask_coef.is_none() && t.proto.is_none());
    check(&fx, "outputs.train.boxes", &t.boxes);
    check(&fx, "outputs.train.scores", &t.scores);
    for (i, feat) in t.feats.iter().enumerate() {
        check(&fx, &format!("outputs.train.feats.{i}"), feat);
    }
}

/// Parameter counts, state-dict sizes and name lists of ultralytics' stock models (nc 80),
/// taken from ultralytics 8.4.190; the ordered name list is compared through its FNV-1a
/// hash (computed in Python over the names joined by newlines).
#[test]
fn stock_configs_match_ultralytics_sizes_and_names() {
    let fnv = |s: &str| {
        s.bytes().fold(0xcbf29ce484222325u64, |h, b| {
            (h ^ b as u64).wrapping_mul(0x100000001b3)
        })
    };
    for (scale, seg, params, keys, state, hash) in [
        ('n', true, 3_409_968, 351, 3_421_264, 0xd122f2ce80553e8e_u64),
        ('s', false, 11_166_560, 298, 11_186_592, 0x26b525021b036dd4),
    ] {
        let cfg = YoloConfig::yolov8(scale, 80, seg).unwrap();
        let m = YoloModel::new(&cfg, &mut Rng::new(1)).unwrap();
        let p: usize = m
            .named_parameters()
            .iter()
            .map(|(_, t)| t.elem_count())
            .sum();
        assert_eq!(p, params, "yolov8{scale} params");
        let sd: Vec<_> = state_dict_of(&m)
            .into_iter()
            .filter(|(n, _)| !n.ends_with("num_batches_tracked"))
            .collect();
        assert_eq!(sd.len(), keys);
        assert_eq!(sd.iter().map(|(_, t)| t.elem_count()).sum::<usize>(), state);
        let names: Vec<&str> = sd.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            fnv(&names.join("\n")),
            hash,
            "yolov8{scale} state-dict names/order"
        );
        assert!(sd.iter().any(|(n, _)| n == "model.22.dfl.conv.weight"));
        assert_eq!(m.strides(), &[8.0, 16.0, 32.0]);
    }
    // bias_init: box 2.0, class log(5 / nc / (640 / s)^2).
    let m = YoloModel::new(
        &YoloConfig::yolov8('n', 80, true).unwrap(),
        &mut Rng::new(2),
    )
    .unwrap();
    let ps = m.named_parameters();
    let get = |n: &str| {
        ps.iter()
            .find(|(k, _)| k == n)
            .unwrap()
            .1
            .to_vec_f64()
            .unwrap()
    };
    assert!(get("model.22.cv2.1.2.bias").iter().all(|&b| b == 2.0));
    let want = (5.0f64 / 80.0 / (640.0f64 / 16.0).powi(2)).ln() as f32 as f64;
    assert!(get("model.22.cv3.1.2.bias").iter().all(|&b| b == want));
    // The DFL integral is fixed, as in ultralytics (requires_grad False).
    assert!(
        !ps.iter()
            .find(|(k, _)| k == "model.22.dfl.conv.weight")
            .unwrap()
            .1
            .requires_grad()
    );
}

#[test]
fn bad_state_dict_and_bad_config_are_errors_naming_the_problem() {
    let cfg = YoloConfig::yolov8('n', 2, false).unwrap();
    let m = YoloModel::new(&cfg, &mut Rng::new(3)).unwrap();
    let mut sd = StateDict::from_tensors(state_dict_of(&m));
    sd.insert(
        "model.22.cv3.0.2.weight",
        Tensor::zeros([3, 64, 1, 1], DType::F32),
    );
    let e = YoloModel::from_state_dict(&cfg, &sd)
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("model.22.cv3.0.2.weight")
            && e.contains("[2, 64, 1, 1]")
            && e.contains("[3, 64, 1, 1]"),
        "{e}"
    );
    let mut sd = StateDict::from_tensors(state_dict_of(&m));
    sd.remove("model.4.m.1.cv2.bn.running_var");
    sd.insert("model.99.weight", Tensor::zeros([1], DType::F32));
    let e = YoloModel::from_state_dict(&cfg, &sd)
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("model.4.m.1.cv2.bn.running_var") && e.contains("model.99.weight"),
        "{e}"
    );
    // num_batches_tracked may be absent.
    let sd = StateDict::from_tensors(
        state_dict_of(&m)
            .into_iter()
            .filter(|(n, _)| !n.ends_with("num_batches_tracked")),
    );
    assert!(YoloModel::from_state_dict(&cfg, &sd).is_ok());

    for (raw, want) in [
        (serde_json::json!({"backbone": [], "head": []}), "nc"),
        (
            serde_json::json!({"nc": 2, "backbone": [[-1, 1, "Foo", [8]]], "head": [[[0], 1, "Detect", ["nc"]]]}),
            "Foo",
        ),
        (
            serde_json::json!({"nc": 2, "backbone": [[3, 1, "Conv", [8, 3, 2]]], "head": [[[0], 1, "Detect", ["nc"]]]}),
            "layer 0",
        ),
        (
            serde_json::json!({"nc": 2, "scale": "q", "scales": {"n": [1, 1, 8]}, "backbone": [], "head": []}),
            "scale \"q\"",
        ),
    ] {
        let e = YoloConfig::from_json(&raw)
            .and_then(|c| YoloModel::new(&c, &mut Rng::new(0)).map(|_| ()))
            .unwrap_err()
            .to_string();
        assert!(e.contains(want), "{e} should mention {want}");
    }
    assert!(YoloConfig::yolov8('q', 2, true).is_err());
    let e = m
        .forward_eval(&Tensor::zeros([1, 3, 40, 64], DType::F32))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("multiple"), "{e}");
}

/// A tiny seg model: every parameter gets a finite gradient from a train forward, and one
/// BN weight's gradient matches central differences (batch-statistics BN).
#[test]
fn gradients_reach_every_parameter_and_match_finite_differences() {
    let mut raw = YoloConfig::yolov8('n', 2, true).unwrap().raw;
    raw["scales"] = serde_json::json!({"t": [0.33, 0.03125, 1024]});
    raw["scale"] = serde_json::json!("t");
    raw["reg_max"] = serde_json::json!(4);
    let cfg = YoloConfig::from_json(&raw).unwrap();
    let m = YoloModel::new(&cfg, &mut Rng::new(4)).unwrap();
    let x = common::randn(&[2, 3, 64, 64], 5);
    let objective = |m: &YoloModel| {
        let t = m.forward_train(&x).unwrap();
        let mut s = t.boxes.sqr().unwrap().mean_all().unwrap();
        for extra in [
            &t.scores,
            t.mask_coef.as_ref().unwrap(),
            t.proto.as_ref().unwrap(),
        ] {
            s = s.add(&extra.sqr().unwrap().mean_all().unwrap()).unwrap();
        }
        s
    };
    objective(&m).backward().unwrap();
    for (n, p) in m.named_parameters() {
        if !p.requires_grad() {
            assert_eq!(n, "model.22.dfl.conv.weight");
            continue;
        }
        let g = p
            .grad()
            .unwrap_or_else(|| panic!("{n} has no gradient"))
            .to_vec_f64()
            .unwrap();
        assert!(g.iter().all(|v| v.is_finite()), "{n}: non-finite gradient");
        assert!(g.iter().any(|v| *v != 0.0), "{n}: all-zero gradient");
    }
    let ps = m.named_parameters();
    let w = ps
        .iter()
        .find(|(k, _)| k == "model.8.cv1.bn.weight")
        .unwrap()
        .1
        .clone();
    let analytic = w.grad().unwrap().to_vec_f64().unwrap()[3];
    let h = 1e-2;
    let at = |d: f64| {
        let v = w.to_vec::<f32>().unwrap();
        let mut v2 = v.clone();
        v2[3] += d as f32;
        w.assign(&Tensor::from_vec(v2, w.shape().clone()).unwrap())
            .unwrap();
        let _g = edgedistill::no_grad();
        let r = objective(&m).to_scalar_f64().unwrap();
        w.assign(&Tensor::from_vec(v, w.shape().clone()).unwrap())
            .unwrap();
        r
    };
    let numeric = (at(h) - at(-h)) / (2.0 * h);
    assert!(
        (numeric - analytic).abs() <= 2e-3 + 2e-2 * analytic.abs(),
        "numeric {numeric} vs analytic {analytic}"
    );
}

/// Latency of YOLOv8n-seg (nc 80) eval at 640×640, batch 1, fused and unfused: run with
/// `RAYON_NUM_THREADS=2 cargo test --release --test yolov8_model -- --ignored --nocapture`
/// next to tools/reference/bench_yolov8.py (same threads) to compare with PyTorch.
#[test]
#[ignore]
fn bench_yolov8n_seg_640() {
    let m = YoloModel::new(
        &YoloConfig::yolov8('n', 80, true).unwrap(),
        &mut Rng::new(0),
    )
    .unwrap();
    let f = m.fuse().unwrap();
    let x = Tensor::rand([1, 3, 640, 640], 0.0, 1.0, &mut Rng::new(1));
    for (name, model) in [("fused", &f), ("unfused", &m)] {
        let mut ts = Vec::new();
        for i in 0..(if std::env::var_os("YPROF").is_some() {
            2
        } else {
            18
        }) {
            let t = std::time::Instant::now();
            let out = model.forward_eval(&x).unwrap();
            if i >= 3 {
                ts.push(t.elapsed().as_secs_f64() * 1e3);
            }
            assert_eq!(out.pred.dims(), &[1, 116, 8400]);
        }
        ts.sort_by(f64::total_cmp);
        eprintln!(
            "yolov8n-seg 640 {name}: median {:.1} ms, min {:.1} ms",
            ts[ts.len() / 2],
            ts[0]
        );
    }
}

#[test]
fn fused_box_decode_matches_the_op_chain() {
    // Without a graph decode_boxes takes the one-pass path; with one, the op chain
    // (softmax, weights 0..r, sum, dist2bbox, stride). Same values up to rounding.
    use edgedistill::models::yolov8::head::decode_boxes;
    let (sizes, strides) = ([(8, 8), (4, 4), (2, 2)], [8.0f32, 16.0, 32.0]);
    let a: usize = sizes.iter().map(|(h, w)| h * w).sum();
    let x = Tensor::randn([2, 64, a], 0.0, 3.0, &mut Rng::new(5));
    let fused = decode_boxes(&x, 16, &sizes, &strides)
        .unwrap()
        .to_vec_f32()
        .unwrap();
    let tracked = x.clone().requires_grad_().unwrap();
    let chain = decode_boxes(&tracked, 16, &sizes, &strides).unwrap();
    assert!(chain.tracks_grad(), "the op chain was not taken");
    let chain = chain.to_vec_f32().unwrap();
    assert_eq!(fused.len(), chain.len());
    let worst = fused
        .iter()
        .zip(&chain)
        .map(|(a, b)| (a - b).abs() / b.abs().max(1.0))
        .fold(0f32, f32::max);
    // exp_f32 (2 ulp) against std exp, and Σi·e/Σe against Σ(e/Σe)·i: ~1e-5 at most.
    assert!(worst < 5e-5, "worst relative difference {worst}");
    assert!(chain.iter().any(|v| *v > 100.0), "boxes in pixels expected");
}
