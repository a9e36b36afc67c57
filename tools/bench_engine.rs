//! `ed-bench engine`: our fp32 engine against onnxruntime running our fp32 ONNX of the
//! same capture — YOLOv8n-seg (random weights, seed 0, 80 classes), 640², batch 1 — timed
//! in the same run on the same input. The outputs are compared too (max |ours − ORT| over
//! `pred` and `proto`, and relative to max(1, |ORT|)), so the timing is of equal work.
//! The INT8 engine of the same graph (entropy calibration on 8 random images, the default
//! layers kept in f32) is timed in the same run against the same ORT fp32 figure.
use super::{Args, reference_with, report, time};
use edgedistill::engine::exec::run_observed;
use edgedistill::engine::format::{EngineMeta, ModelInfo, PostprocessSpec, write_engine};
use edgedistill::engine::onnx::{OnnxOptions, write_onnx};
use edgedistill::engine::quantize::{QuantOptions, calibrated_values, quantize_graph};
use edgedistill::engine::{Engine, capture_yolo};
use edgedistill::io::{Safetensors, save_safetensors};
use edgedistill::models::yolov8::{YoloConfig, YoloModel};
use edgedistill::quant::{Collector, Method};
use edgedistill::tensor::Rng;
use edgedistill::{Error, Result, Tensor};

pub fn engine_case(a: &Args) -> Result<()> {
    let cfg = YoloConfig::yolov8('n', 80, true)?;
    let model = YoloModel::new(&cfg, &mut Rng::new(0))?;
    let dir = std::env::temp_dir().join(format!("ed-bench-engine-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| Error::msg(e.to_string()))?;
    let graph = capture_yolo(&model, 640)?;
    let meta = bench_meta(&cfg, &model);
    let (epath, opath) = (dir.join("model_fp32.engine"), dir.join("model.onnx"));
    let size = write_engine(&epath, &graph, &meta)?;
    write_onnx(&opath, &graph, &OnnxOptions::default())?;
    println!(
        "engine {:.2} MB, onnx {:.2} MB",
        size as f64 / 1e6,
        std::fs::metadata(&opath).map_or(0, |m| m.len()) as f64 / 1e6
    );
    // Flush the files just written, so the kernel's writeback cannot overlap the first
    // timings (suspected when half of one run's fp32 iterations came out 40 % slower).
    for p in [&epath, &opath] {
        std::fs::File::open(p)
            .and_then(|f| f.sync_all())
            .map_err(|e| Error::msg(format!("{}: {e}", p.display())))?;
    }
    let engine = Engine::load(&epath)?;
    let x = Tensor::rand([1, 3, 640, 640], 0.0, 1.0, &mut Rng::new(1));
    let ours = time("ours fp32 engine yolov8n-seg 640", a.iters, || {
        engine.forward(&x).map(|_| ())
    })?;
    let outs = engine.forward(&x)?;
    overhead(&model, &engine, &x, a.iters)?;
    let (int8, int8_size) = int8_engine(&graph, &meta, &dir.join("model_int8.engine"))?;
    println!(
        "int8 engine {:.2} MB ({:.3}x fp32)",
        int8_size as f64 / 1e6,
        int8_size as f64 / size as f64
    );
    let ours_int8 = time("ours int8 engine yolov8n-seg 640", a.iters, || {
        int8.forward(&x).map(|_| ())
    })?;
    let (ipath, rpath) = (
        dir.join("input.safetensors"),
        dir.join("ort_out.safetensors"),
    );
    save_safetensors(&ipath, &[("images".to_string(), x.clone())], None)?;
    let (o, i, r) = (
        opath.display().to_string(),
        ipath.display().to_string(),
        rpath.display().to_string(),
    );
    let refs = reference_with(a, &["--onnx", &o, "--input", &i, "--out", &r]);
    if refs.is_some() {
        let f = Safetensors::open(&rpath)?;
        for (name, ours_t) in ["pred", "proto"].iter().zip(&outs) {
            let theirs = f.tensor(name)?.to_vec_f32()?;
            let mine = ours_t.to_vec_f32()?;
            if theirs.len() != mine.len() {
                return Err(Error::msg(format!(
                    "{name}: {} values from ORT, {} ours",
                    theirs.len(),
                    mine.len()
                )));
            }
            let (mut abs, mut rel) = (0f32, 0f32);
            for (m, t) in mine.iter().zip(&theirs) {
                let d = (m - t).abs();
                abs = abs.max(d);
                rel = rel.max(d / t.abs().max(1.0));
            }
            println!("{name:<6} vs onnxruntime: max abs {abs:.3e}, max abs/max(1,|ort|) {rel:.3e}");
        }
    }
    if a.profile > 0 {
        profile("fp32", &engine, &x, a.profile)?;
        profile("int8", &int8, &x, a.profile)?;
    }
    let _ = std::fs::remove_dir_all(&dir);
    report(
        "ours_engine_fp32_yolov8n_seg_640",
        ours,
        &refs,
        &["ort_fp32_yolov8n_seg_640"],
    );
    report(
        "ours_engine_int8_yolov8n_seg_640",
        ours_int8,
        &refs,
        &["ort_fp32_yolov8n_seg_640"],
    );
    Ok(())
}

/// The engine header of the benchmark model (80 classes named class0.., ids 1..=80).
pub(super) fn bench_meta(cfg: &YoloConfig, model: &YoloModel) -> EngineMeta {
    EngineMeta {
        model: ModelInfo {
            family: "yolov8".into(),
            task: "segment".into(),
            nc: 80,
            nm: model.nm(),
            reg_max: model.reg_max(),
            config: cfg.raw.clone(),
        },
        names: (0..80).map(|i| format!("class{i}")).collect(),
        category_ids: (1..=80).collect(),
        postprocess: PostprocessSpec {
            conf: 0.25,
            iou: 0.7,
            max_det: 300,
            mask_threshold: 0.5,
        },
    }
}

/// Calibrate `graph` (entropy, 8 random images) and write its INT8 engine to `path`.
pub(super) fn int8_engine(
    graph: &edgedistill::engine::graph::Graph,
    meta: &EngineMeta,
    path: &std::path::Path,
) -> Result<(Engine, u64)> {
    let opts = QuantOptions::default();
    let wanted: std::collections::HashSet<String> =
        calibrated_values(graph, &opts).into_iter().collect();
    let mut col = Collector::default();
    let mut rng = Rng::new(2);
    for _ in 0..8 {
        let x = Tensor::rand([1, 3, 640, 640], 0.0, 1.0, &mut rng);
        edgedistill::engine::calibrate::observe(graph, &wanted, &x, &mut col)?;
    }
    let cache = col.finish(8, "random", Method::Entropy)?;
    let (q, _) = quantize_graph(graph, &|v| cache.amax(v, Method::Entropy), &opts)?;
    let size = write_engine(path, &q, meta)?;
    Ok((Engine::load(path)?, size))
}

/// Where an engine's time goes: each node timed from the previous value made to its own
/// output (so a value's drop after its last reader counts to the node that freed it),
/// medians over 5 runs, summed by op kind, then the `top` slowest nodes.
fn profile(label: &str, engine: &Engine, x: &Tensor, top: usize) -> Result<()> {
    use std::time::Instant;
    let graph = engine.file().graph();
    let producer: std::collections::HashMap<&str, usize> = graph
        .nodes
        .iter()
        .enumerate()
        .flat_map(|(i, n)| n.outputs.iter().map(move |o| (o.as_str(), i)))
        .collect();
    let mut runs: Vec<Vec<f64>> = Vec::new();
    for _ in 0..5 {
        let mut t = vec![0f64; graph.nodes.len()];
        let mut last = Instant::now();
        run_observed(graph, engine.file(), x, &mut |name, _| {
            let now = Instant::now();
            if let Some(&i) = producer.get(name) {
                t[i] += (now - last).as_secs_f64() * 1e3;
            }
            last = now;
            Ok(())
        })?;
        runs.push(t);
    }
    let med: Vec<f64> = (0..graph.nodes.len())
        .map(|i| {
            let mut v: Vec<f64> = runs.iter().map(|r| r[i]).collect();
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        })
        .collect();
    let kind = |i: usize| {
        let d = format!("{:?}", graph.nodes[i].op);
        d.split([' ', '{', '(']).next().unwrap_or("").to_string()
    };
    let mut by_kind: std::collections::BTreeMap<String, (usize, f64)> = Default::default();
    for (i, &m) in med.iter().enumerate() {
        let e = by_kind.entry(kind(i)).or_default();
        e.0 += 1;
        e.1 += m;
    }
    let total: f64 = med.iter().sum();
    println!("profile {label}: {total:.2} ms over {} nodes", med.len());
    let mut kinds: Vec<_> = by_kind.into_iter().collect();
    kinds.sort_by(|a, b| b.1.1.total_cmp(&a.1.1));
    for (k, (n, ms)) in kinds {
        println!(
            "  {k:<14} {n:>4} nodes {ms:>9.2} ms {:>5.1}%",
            100.0 * ms / total
        );
    }
    let mut order: Vec<usize> = (0..med.len()).collect();
    order.sort_by(|&a, &b| med[b].total_cmp(&med[a]));
    for &i in order.iter().take(top) {
        let n = &graph.nodes[i];
        println!("  {:>8.2} ms  {:<8} {}", med[i], kind(i), n.name);
    }
    Ok(())
}

/// The engine against the fused model's own eval forward (the same kernels), alternated
/// call by call so host noise hits both alike: what the executor adds, if anything.
fn overhead(model: &YoloModel, engine: &Engine, x: &Tensor, iters: usize) -> Result<()> {
    use std::time::Instant;
    let fused = model.fuse()?;
    let (mut e, mut m) = (Vec::new(), Vec::new());
    for _ in 0..iters.max(3) {
        let t = Instant::now();
        engine.forward(x)?;
        e.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        {
            let _g = edgedistill::no_grad();
            fused.forward_eval(x)?;
        }
        m.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let med = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (me, mm) = (med(&mut e), med(&mut m));
    println!(
        "alternated: fp32 engine median {me:.3} ms, fused model forward_eval {mm:.3} ms, engine / model {:.3}",
        me / mm
    );
    Ok(())
}
