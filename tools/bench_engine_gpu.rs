//! `ed-bench engine-gpu`: the engine on CUDA — YOLOv8n-seg (random weights, seed 0, 80
//! classes), 640², batch 1 — fp16 (the fp32 graph's convs in f16) and INT8 (entropy
//! calibration on 8 random images, the default layers kept in higher precision), against
//! ultralytics' eager PyTorch fp16 (`model.fuse().half()`, what its predictor runs) on the
//! same weights, on the same GPU, in the same run. Two timings each side:
//!   resident: the input already on the GPU, time to the network's outputs on the GPU;
//!   end to end: f32 image from the host, outputs back in host memory as f32.
//! Our outputs are compared with the CPU executor's on the same graph first, so the
//! timing is of correct work.
use super::{Args, reference_with, report, time};
use edgedistill::backend::cuda::CudaDevice;
use edgedistill::engine::cuda_exec::CudaEngine;
use edgedistill::engine::exec::run;
use edgedistill::engine::format::write_engine;
use edgedistill::engine::{Engine, capture_yolo};
use edgedistill::models::yolov8::{YoloConfig, YoloModel};
use edgedistill::nn::state_dict_of;
use edgedistill::tensor::Rng;
use edgedistill::{Error, Result, Tensor};

fn compare(label: &str, got: &[Tensor], want: &[Tensor]) -> Result<()> {
    for (k, (g, w)) in got.iter().zip(want).enumerate() {
        let (g, w) = (g.to_vec_f32()?, w.to_vec_f32()?);
        let mut rel = 0f32;
        for (a, b) in g.iter().zip(&w) {
            let e = (a - b).abs() / b.abs().max(1.0);
            rel = if e.is_nan() {
                f32::INFINITY
            } else {
                rel.max(e)
            };
        }
        println!("{label} output {k}: max |gpu − cpu| / max(1, |cpu|) = {rel:.3e}");
    }
    Ok(())
}

fn bench_gpu(a: &Args, label: &str, eng: &mut CudaEngine, x: &Tensor) -> Result<[(f64, f64); 3]> {
    eng.set_use_graph(false);
    let plain = time(&format!("{label} resident, launches"), a.iters, || {
        eng.run_resident()
    })?;
    eng.set_use_graph(true);
    eng.run(x)?;
    println!(
        "{label}: {} launches, {}",
        eng.launches(),
        eng.graph_status()
    );
    let resident = time(&format!("{label} resident, CUDA graph"), a.iters, || {
        eng.run_resident()
    })?;
    let e2e = time(&format!("{label} end to end"), a.iters, || {
        eng.run(x).map(|_| ())
    })?;
    Ok([plain, resident, e2e])
}

/// Each launch timed alone: totals by kind, then the `top` slowest.
fn profile(label: &str, eng: &CudaEngine, top: usize) -> Result<()> {
    let steps = eng.profile_steps(20)?;
    let total: f64 = steps.iter().map(|s| s.1).sum();
    let mut kinds: std::collections::BTreeMap<String, (f64, usize)> = Default::default();
    for (what, ms) in &steps {
        let k = kinds
            .entry(what.split(' ').next().unwrap_or("").to_string())
            .or_default();
        k.0 += ms;
        k.1 += 1;
    }
    println!(
        "{label} profile: {} launches, {total:.3} ms summed (each alone, incl. launch + sync)",
        steps.len()
    );
    for (k, (ms, n)) in &kinds {
        println!("  {k:<12} {n:>4} launches {ms:>8.3} ms");
    }
    let mut sorted = steps.clone();
    sorted.sort_by(|a, b| b.1.total_cmp(&a.1));
    for (what, ms) in sorted.iter().take(top) {
        println!("  {ms:>8.4} ms  {what}");
    }
    Ok(())
}

pub fn engine_gpu_case(a: &Args) -> Result<()> {
    let dev = CudaDevice::get(0)?;
    println!("GPU: {} (sm_{}{})", dev.name, dev.cc.0, dev.cc.1);
    let cfg = YoloConfig::yolov8('n', 80, true)?;
    let model = YoloModel::new(&cfg, &mut Rng::new(0))?;
    let dir = std::env::temp_dir().join(format!("ed-bench-engine-gpu-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| Error::msg(e.to_string()))?;
    let (wpath, cpath) = (dir.join("weights.safetensors"), dir.join("config.json"));
    edgedistill::io::save_safetensors(&wpath, &state_dict_of(&model), None)?;
    std::fs::write(&cpath, cfg.raw.to_string()).map_err(|e| Error::msg(e.to_string()))?;
    let graph = capture_yolo(&model, 640)?;
    let x = Tensor::rand([1, 3, 640, 640], 0.0, 1.0, &mut Rng::new(1));

    let want = run(&graph, &graph, &x)?;
    // The CUDA-core kernels (FMA / dp4a) for the record, where tensor cores are the default.
    let mut cuda_cores = Vec::new();
    if dev.cc.0 >= 8 {
        let e = CudaEngine::with_kernels(dev, &graph, &graph, 1, false)?;
        e.run(&x)?;
        cuda_cores.push((
            "fp16",
            time("ours cuda fp16 engine, CUDA cores", a.iters, || {
                e.run_resident()
            })?,
        ));
    }
    let mut fp16 = CudaEngine::new(dev, &graph, &graph, 1)?;
    println!("fp16 engine: tensor cores {}", fp16.tensor_cores());
    compare("fp16 engine vs CPU fp32", &fp16.run(&x)?, &want)?;
    let t16 = bench_gpu(a, "ours cuda fp16 engine", &mut fp16, &x)?;
    if a.profile > 0 {
        profile("fp16", &fp16, a.profile)?;
    }

    let meta = super::bench_engine::bench_meta(&cfg, &model);
    let (int8, _) =
        super::bench_engine::int8_engine(&graph, &meta, &dir.join("model_int8.engine"))?;
    let qfile = int8.file();
    if dev.cc.0 >= 8 {
        let e = CudaEngine::with_kernels(dev, qfile.graph(), qfile, 1, false)?;
        e.run(&x)?;
        cuda_cores.push((
            "int8",
            time("ours cuda int8 engine, CUDA cores (dp4a)", a.iters, || {
                e.run_resident()
            })?,
        ));
    }
    let mut q = CudaEngine::new(dev, qfile.graph(), qfile, 1)?;
    compare("int8 engine vs CPU int8", &q.run(&x)?, &int8.forward(&x)?)?;
    let t8 = bench_gpu(a, "ours cuda int8 engine", &mut q, &x)?;
    if a.profile > 0 {
        profile("int8", &q, a.profile)?;
    }
    let fp32_size = write_engine(&dir.join("model_fp32.engine"), &graph, &meta)?;
    let _ = fp32_size;
    let _ = Engine::load(&dir.join("model_fp32.engine"))?; // the file the CUDA path also loads

    let (w, c) = (wpath.display().to_string(), cpath.display().to_string());
    let refs = reference_with(a, &["--weights", &w, "--config", &c, "--imgsz", "640"]);
    let _ = std::fs::remove_dir_all(&dir);
    for (name, t) in [
        ("ours_cuda_fp16_resident_launches", t16[0]),
        ("ours_cuda_fp16_resident_graph", t16[1]),
        ("ours_cuda_int8_resident_launches", t8[0]),
        ("ours_cuda_int8_resident_graph", t8[1]),
    ] {
        report(name, t, &refs, &["torch_cuda_fp16_resident"]);
    }
    for (label, t) in &cuda_cores {
        report(
            &format!("ours_cuda_{label}_resident_cuda_cores"),
            *t,
            &refs,
            &["torch_cuda_fp16_resident"],
        );
    }
    report(
        "ours_cuda_fp16_end_to_end",
        t16[2],
        &refs,
        &["torch_cuda_fp16_end_to_end"],
    );
    report(
        "ours_cuda_int8_end_to_end",
        t8[2],
        &refs,
        &["torch_cuda_fp16_end_to_end"],
    );
    if let Some(r) = &refs {
        for k in ["torch_cuda_fp32_resident", "gpu"] {
            if let Some(v) = r.get(k) {
                println!("{k}: {v}");
            }
        }
    }
    Ok(())
}
