//! `ed-bench`: time our kernels and, in the same run, the reference library on the same
//! shapes, and print the ratio (ours / reference; < 1 means we are faster).
//!
//!   ed-bench matmul [--threads 2] [--iters 20] [--python PATH]
//!   ed-bench conv   [--threads 2] [--iters 20] [--python PATH]
//!   ed-bench conv-train (forward + backward of the same conv)
//!   ed-bench mask-iou   (100×100 masks of 640², CPU and, with a GPU, CUDA; vs pycocotools and torch)
//!   ed-bench attention  (GPU: B=1, H=12, L=4096, D=64 forward, f32; vs torch SDPA)
//!   ed-bench lora       (GPU: x 8192×768, W 768², r 16 forward, f32; vs torch f32/f16)
//!   ed-bench cocoeval-segm (COCOeval segm, 5 000 images × 20 detections at 640×480; vs
//!                        pycocotools evaluate+accumulate+summarize; try --iters 3)
//!
//!   ed-bench engine     (our fp32 engine vs onnxruntime on our ONNX, YOLOv8n-seg 640², batch 1)
//!   ed-bench engine-gpu (GPU: our fp16 and INT8 engines on CUDA vs ultralytics eager PyTorch
//!                        fp16 on the same weights, YOLOv8n-seg 640², batch 1)
//!   ed-bench sam-teacher (SAM teacher fine-tuning: peak memory LoRA vs whole decoder, and
//!                        epoch 1 with the embedding cache built vs later epochs; --iters =
//!                        epochs, 2..5)
//!   ed-bench grounding-dino (eval forward of the grounding-dino-tiny shape at 800×1333 vs
//!                        transformers on the same weights; encode vs a LoRA decode step, the
//!                        per-image saving of the encoder cache; try --iters 2)
//!
//! The reference side runs tools/reference/bench_ref.py with PATH (default: $EDGEDISTILL_PYTHON,
//! else python3); pass `--python none` to time ours only.
#[path = "bench_engine.rs"]
mod bench_engine;
#[path = "bench_engine_gpu.rs"]
mod bench_engine_gpu;
#[path = "bench_gdino.rs"]
mod bench_gdino;
#[path = "bench_sam.rs"]
mod bench_sam;
#[path = "bench_yolo.rs"]
mod bench_yolo;
use edgedistill::tensor::{Conv2dParams, Rng};
use edgedistill::{Result, Tensor};
use std::process::{Command, ExitCode};
use std::time::Instant;

struct Args {
    case: String,
    threads: usize,
    iters: usize,
    python: Option<String>,
    /// `engine`: print where the time goes and the N slowest nodes (0: no profile).
    profile: usize,
}

fn parse() -> std::result::Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let case = it.next().ok_or(
        "usage: ed-bench matmul|conv|conv-train|mask-iou|attention|lora|cocoeval-segm|yolo-forward|yolo-train|engine|engine-gpu|sam-teacher|grounding-dino [--threads N] [--iters N] [--python PATH|none] [--profile N (engine)]",
    )?;
    let mut a = Args {
        case,
        threads: 2,
        iters: 20,
        python: std::env::var("EDGEDISTILL_PYTHON")
            .ok()
            .or(Some("python3".into())),
        profile: 0,
    };
    while let Some(flag) = it.next() {
        let val = it.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--threads" => {
                a.threads = val
                    .parse()
                    .map_err(|_| format!("--threads: not a number: {val}"))?
            }
            "--iters" => {
                a.iters = val
                    .parse()
                    .map_err(|_| format!("--iters: not a number: {val}"))?
            }
            "--python" => a.python = if val == "none" { None } else { Some(val) },
            "--profile" => {
                a.profile = val
                    .parse()
                    .map_err(|_| format!("--profile: not a number: {val}"))?
            }
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    Ok(a)
}

/// Median and min wall time in ms after warm-up; progress on stderr.
fn time(name: &str, iters: usize, mut f: impl FnMut() -> Result<()>) -> Result<(f64, f64)> {
    for _ in 0..3 {
        f()?;
    }
    let mut ts = Vec::with_capacity(iters);
    let start = Instant::now();
    for i in 0..iters {
        let t0 = Instant::now();
        f()?;
        ts.push(t0.elapsed().as_secs_f64() * 1e3);
        let done = i + 1;
        let rate = done as f64 / start.elapsed().as_secs_f64();
        eprint!(
            "\r{name}: {done}/{iters} ({rate:.1}/s, ETA {:.1}s)   ",
            (iters - done) as f64 / rate
        );
    }
    eprintln!();
    ts.sort_by(|a, b| a.total_cmp(b));
    Ok((ts[ts.len() / 2], ts[0]))
}

fn reference(a: &Args) -> Option<serde_json::Value> {
    reference_with(a, &[])
}

/// Run the reference script for `a.case` with extra arguments; None when it cannot run.
fn reference_with(a: &Args, extra: &[&str]) -> Option<serde_json::Value> {
    let py = a.python.as_ref()?;
    // The checkout it was built in, else the current directory's (a binary carried to
    // another machine and run from the repository root there).
    let built = concat!(env!("CARGO_MANIFEST_DIR"), "/tools/reference/bench_ref.py");
    let script = if std::path::Path::new(built).is_file() {
        built
    } else {
        "tools/reference/bench_ref.py"
    };
    eprintln!("reference: {py} {script} {}", a.case);
    let out = Command::new(py)
        .args([
            script,
            &a.case,
            "--threads",
            &a.threads.to_string(),
            "--iters",
            &a.iters.to_string(),
        ])
        .args(extra)
        .output();
    match out {
        Ok(o) if o.status.success() => match serde_json::from_slice(&o.stdout) {
            Ok(v) => Some(v),
            Err(e) => {
                // Say so: a silent None would print our side alone, as if no reference ran.
                let text = String::from_utf8_lossy(&o.stdout);
                eprintln!(
                    "reference output is not JSON ({e}); it began: {:?}",
                    text.chars().take(200).collect::<String>()
                );
                None
            }
        },
        Ok(o) => {
            eprintln!(
                "reference failed: {}",
                String::from_utf8_lossy(&o.stderr)
                    .lines()
                    .last()
                    .unwrap_or("")
            );
            None
        }
        Err(e) => {
            eprintln!("reference not run ({py}: {e})");
            None
        }
    }
}

fn report(ours_name: &str, ours: (f64, f64), refs: &Option<serde_json::Value>, keys: &[&str]) {
    println!(
        "{ours_name:<32} median {:>9.3} ms   min {:>9.3} ms",
        ours.0, ours.1
    );
    let Some(r) = refs else { return };
    for k in keys {
        if let Some(m) = r
            .get(*k)
            .and_then(|v| v.get("median_ms"))
            .and_then(|v| v.as_f64())
        {
            let mn = r[*k]["min_ms"].as_f64().unwrap_or(f64::NAN);
            println!(
                "{k:<32} median {m:>9.3} ms   min {mn:>9.3} ms   ratio ours/ref {:.3}",
                ours.0 / m
            );
        }
    }
    for k in ["numpy_version", "torch_version", "pycocotools_version"] {
        if let Some(v) = r.get(k).and_then(|v| v.as_str()) {
            println!("{k}: {v}");
        }
    }
}

fn run(a: &Args) -> Result<()> {
    edgedistill::backend::cpu::alloc::tune_allocator();
    rayon::ThreadPoolBuilder::new()
        .num_threads(a.threads)
        .build_global()
        .map_err(|e| edgedistill::Error::msg(format!("thread pool: {e}")))?;
    println!(
        "ed-bench {} threads={} iters={}",
        a.case, a.threads, a.iters
    );
    let mut rng = Rng::new(0);
    match a.case.as_str() {
        "matmul" => {
            let x = Tensor::randn([1024, 1024], 0.0, 1.0, &mut rng);
            let y = Tensor::randn([1024, 1024], 0.0, 1.0, &mut rng);
            let ours = time("ours matmul", a.iters, || x.matmul(&y).map(|_| ()))?;
            let refs = reference(a);
            report(
                "ours_matmul_1024 (f32)",
                ours,
                &refs,
                &["numpy_matmul_1024", "torch_matmul_1024"],
            );
        }
        "conv" => {
            let x = Tensor::randn([1, 64, 160, 160], 0.0, 1.0, &mut rng);
            let w = Tensor::randn([64, 64, 3, 3], 0.0, 0.05, &mut rng);
            let p = Conv2dParams {
                padding: (1, 1),
                ..Default::default()
            };
            let ours = time("ours conv", a.iters, || x.conv2d(&w, None, p).map(|_| ()))?;
            let refs = reference(a);
            report(
                "ours_conv3x3_64x160x160 (f32)",
                ours,
                &refs,
                &["torch_conv3x3_64x160x160"],
            );
        }
        "conv-train" => {
            // forward + backward to input and weight (sum of the output as the loss)
            let x = Tensor::randn([1, 64, 160, 160], 0.0, 1.0, &mut rng).requires_grad_()?;
            let w = Tensor::randn([64, 64, 3, 3], 0.0, 0.05, &mut rng).requires_grad_()?;
            let p = Conv2dParams {
                padding: (1, 1),
                ..Default::default()
            };
            let ours = time("ours conv fwd+bwd", a.iters, || {
                x.zero_grad();
                w.zero_grad();
                x.conv2d(&w, None, p)?.sum_all()?.backward()
            })?;
            let refs = reference(a);
            report(
                "ours_conv3x3_64x160x160_fwd_bwd",
                ours,
                &refs,
                &["torch_conv3x3_64x160x160_fwd_bwd"],
            );
        }
        "mask-iou" => mask_iou_case(a, &mut rng)?,
        "attention" => attention_case(a, &mut rng)?,
        "lora" => lora_case(a, &mut rng)?,
        "cocoeval-segm" => cocoeval_case(a, &mut rng)?,
        "yolo-forward" => bench_yolo::yolo_case(a, false)?,
        "yolo-train" => bench_yolo::yolo_case(a, true)?,
        "engine" => bench_engine::engine_case(a)?,
        "engine-gpu" => bench_engine_gpu::engine_gpu_case(a)?,
        "sam-teacher" => bench_sam::sam_teacher_case(a.iters.clamp(2, 5))?,
        "grounding-dino" => bench_gdino::grounding_dino_case(a)?,
        other => {
            return Err(edgedistill::Error::msg(format!(
                "unknown case {other:?}: expected matmul, conv, conv-train, mask-iou, attention, lora, cocoeval-segm, yolo-forward, yolo-train, engine, engine-gpu, sam-teacher or grounding-dino"
            )));
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let a = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("ed-bench: {e}");
            return ExitCode::from(2);
        }
    };
    match run(&a) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ed-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// 100 predictions × 100 references of 640×640: rectangles and ellipses, 85 % of the
/// predictions jittered copies of a reference (realistic overlaps), 20 % of references crowd.
fn bench_masks(rng: &mut Rng) -> (Vec<u8>, Vec<u8>, Vec<bool>) {
    let (n, h, w) = (100usize, 640usize, 640usize);
    let shape = |rng: &mut Rng| -> [f64; 5] {
        let (rx, ry) = (10.0 + rng.uniform() * 150.0, 10.0 + rng.uniform() * 150.0);
        [
            rx + rng.uniform() * (w as f64 - 2.0 * rx),
            ry + rng.uniform() * (h as f64 - 2.0 * ry),
            rx,
            ry,
            rng.below(2) as f64,
        ]
    };
    let draw = |s: &[f64; 5], out: &mut [u8]| {
        for y in 0..h {
            for x in 0..w {
                let (dx, dy) = (
                    (x as f64 + 0.5 - s[0]) / s[2],
                    (y as f64 + 0.5 - s[1]) / s[3],
                );
                out[y * w + x] = if s[4] > 0.5 {
                    (dx * dx + dy * dy <= 1.0) as u8
                } else {
                    (dx.abs() <= 1.0 && dy.abs() <= 1.0) as u8
                };
            }
        }
    };
    let gts: Vec<[f64; 5]> = (0..n).map(|_| shape(rng)).collect();
    let mut gt = vec![0u8; n * h * w];
    let mut pred = vec![0u8; n * h * w];
    for i in 0..n {
        draw(&gts[i], &mut gt[i * h * w..(i + 1) * h * w]);
        let s = if rng.uniform() < 0.85 {
            let g = gts[rng.below(n as u64) as usize];
            [
                g[0] + 10.0 * rng.normal(),
                g[1] + 10.0 * rng.normal(),
                g[2] * (1.0 + 0.1 * rng.normal()),
                g[3] * (1.0 + 0.1 * rng.normal()),
                g[4],
            ]
        } else {
            shape(rng)
        };
        draw(&s, &mut pred[i * h * w..(i + 1) * h * w]);
    }
    let crowd = (0..n).map(|_| rng.uniform() < 0.2).collect();
    (pred, gt, crowd)
}

fn mask_iou_case(a: &Args, rng: &mut Rng) -> Result<()> {
    use edgedistill::backend::cpu::mask_iou::{PackedMasks, mask_iou, mask_iou_with_stats};
    let (n, h, w) = (100usize, 640usize, 640usize);
    let (pred_u8, gt_u8, crowd) = bench_masks(rng);
    let pred = PackedMasks::from_u8(&pred_u8, n, h, w)?;
    let gt = PackedMasks::from_u8(&gt_u8, n, h, w)?;
    // Packing and stats are the encoding step (pycocotools' RLE encode is not timed either).
    let (ps, gs) = (pred.stats(), gt.stats());
    let cpu = time("ours mask_iou cpu", a.iters, || {
        mask_iou_with_stats(&pred, &ps, &gt, &gs, &crowd).map(|_| ())
    })?;
    let cpu_all = time("ours mask_iou cpu incl. stats", a.iters, || {
        mask_iou(&pred, &gt, &crowd).map(|_| ())
    })?;
    let iou = mask_iou(&pred, &gt, &crowd)?;
    println!(
        "pairs with IoU > 0: {} of {}",
        iou.iter().filter(|&&v| v > 0.0).count(),
        iou.len()
    );
    let gpu = match edgedistill::backend::cuda::CudaDevice::get(0) {
        Ok(dev) => {
            let g = edgedistill::backend::cuda::mask_iou::mask_iou(dev, &pred, &gt, &crowd)?;
            if g.iter().zip(&iou).any(|(x, y)| x.to_bits() != y.to_bits()) {
                return Err(edgedistill::Error::msg(
                    "GPU mask_iou differs from the CPU reference",
                ));
            }
            println!("device: {} (GPU result identical to CPU)", dev.name);
            use edgedistill::backend::cuda::mask_iou::{DeviceMasks, mask_iou_device};
            // Masks resident on the GPU, as torch's are; the IoU matrix comes back each time.
            let (dp, dg) = (
                DeviceMasks::upload(dev, &pred, &ps)?,
                DeviceMasks::upload(dev, &gt, &gs)?,
            );
            let resident = time("ours mask_iou cuda", a.iters, || {
                mask_iou_device(dev, &dp, &dg, &crowd).map(|_| ())
            })?;
            let copies = time("ours mask_iou cuda incl. upload", a.iters, || {
                edgedistill::backend::cuda::mask_iou::mask_iou_with_stats(
                    dev, &pred, &ps, &gt, &gs, &crowd,
                )
                .map(|_| ())
            })?;
            Some((resident, copies))
        }
        Err(e) => {
            eprintln!("no GPU timing: {e}");
            None
        }
    };
    // The reference times the very same masks.
    let dir = std::env::temp_dir().join(format!("ed-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| edgedistill::Error::Io {
        path: dir.clone(),
        source: e,
    })?;
    let file = dir.join("masks.safetensors");
    let crowd_u8: Vec<u8> = crowd.iter().map(|&c| c as u8).collect();
    edgedistill::io::save_safetensors(
        &file,
        &[
            ("pred".into(), Tensor::from_vec(pred_u8, [n, h, w])?),
            ("gt".into(), Tensor::from_vec(gt_u8, [n, h, w])?),
            ("crowd".into(), Tensor::from_vec(crowd_u8, [n])?),
        ],
        None,
    )?;
    let refs = reference_with(a, &["--masks", &file.display().to_string()]);
    std::fs::remove_dir_all(&dir).ok();
    report(
        "ours_mask_iou_cpu (100x100 @640²)",
        cpu,
        &refs,
        &["pycocotools_mask_iou", "torch_cpu_mask_iou_matmul"],
    );
    report(
        "ours_mask_iou_cpu incl. stats",
        cpu_all,
        &refs,
        &["pycocotools_mask_iou"],
    );
    if let Some((resident, copies)) = gpu {
        report(
            "ours_mask_iou_cuda (resident, D2H result)",
            resident,
            &refs,
            &["torch_cuda_mask_iou_matmul"],
        );
        report(
            "ours_mask_iou_cuda incl. 10 MB upload",
            copies,
            &refs,
            &["torch_cuda_mask_iou_matmul"],
        );
    }
    Ok(())
}

/// Attention forward at the shape with q, k, v resident on the GPU.
fn attention_case(a: &Args, rng: &mut Rng) -> Result<()> {
    use edgedistill::backend::cuda::attention::{AttnDims, attention_fwd_device};
    let dev = edgedistill::backend::cuda::CudaDevice::get(0)
        .map_err(|e| e.context("ed-bench attention needs a GPU"))?;
    let dims = AttnDims {
        b: 1,
        h: 12,
        lq: 4096,
        lk: 4096,
        d: 64,
        dv: 64,
    };
    let n = dims.b * dims.h * dims.lq * dims.d;
    let (q, k, v) = (
        upload_randn(dev, n, rng)?,
        upload_randn(dev, n, rng)?,
        upload_randn(dev, n, rng)?,
    );
    let scale = 1.0 / 8.0;
    let ours = time("ours attention fwd f32", a.iters, || {
        attention_fwd_device(dev, &dims, &q, &k, &v, None, None, scale)?;
        dev.stream.synchronize().map_err(gpu_err)
    })?;
    let refs = reference(a);
    println!("device: {}", dev.name);
    report(
        "ours_attention_fwd_f32 (1x12x4096x64)",
        ours,
        &refs,
        &["torch_sdpa_f32", "torch_sdpa_bf16_flash"],
    );
    Ok(())
}

/// LoRA linear forward at the shape, inputs resident on the GPU.
fn lora_case(a: &Args, rng: &mut Rng) -> Result<()> {
    use edgedistill::backend::cuda::lora::lora_fwd_device;
    let dev = edgedistill::backend::cuda::CudaDevice::get(0)
        .map_err(|e| e.context("ed-bench lora needs a GPU"))?;
    let (n, m, k, r) = (8192usize, 768usize, 768usize, 16usize);
    let (x, w, la, lb) = (
        upload_randn(dev, n * k, rng)?,
        upload_randn(dev, m * k, rng)?,
        upload_randn(dev, r * k, rng)?,
        upload_randn(dev, m * r, rng)?,
    );
    let ours = time("ours lora fwd f32", a.iters, || {
        lora_fwd_device(dev, (n, m, k, r), &x, &w, None, &la, &lb, 2.0)?;
        dev.stream.synchronize().map_err(gpu_err)
    })?;
    let refs = reference(a);
    println!("device: {}", dev.name);
    report(
        "ours_lora_fwd_f32 (8192x768, r16)",
        ours,
        &refs,
        &["torch_lora_f32", "torch_lora_f16"],
    );
    Ok(())
}

fn gpu_err(e: impl std::fmt::Display) -> edgedistill::Error {
    edgedistill::Error::msg(e.to_string())
}

/// `len` standard normals uploaded to `dev` (GPU benches keep their inputs resident).
fn upload_randn(
    dev: &edgedistill::backend::cuda::CudaDevice,
    len: usize,
    rng: &mut Rng,
) -> Result<cudarc::driver::CudaSlice<f32>> {
    let v: Vec<f32> = (0..len).map(|_| rng.normal() as f32).collect();
    dev.stream.clone_htod(&v).map_err(gpu_err)
}

/// A COCO ground truth and results list for the COCOeval bench: 5 000 images of 640×480,
/// 2–10 objects each (ellipse polygons, small/medium/large, 4 % crowd regions as compressed
/// RLE) over 10 categories, and 20 detections per image (jittered copies of the objects,
/// sometimes of the wrong class, and false positives) with bbox + compressed RLE masks.
fn cocoeval_data(rng: &mut Rng) -> Result<(serde_json::Value, serde_json::Value)> {
    use edgedistill::data::masks::Rle;
    use serde_json::json;
    let (n_img, h, w, n_cat) = (5000u64, 480u32, 640u32, 10u64);
    let r2 = |v: f64| (v * 100.0).round() / 100.0;
    let ellipse = |rng: &mut Rng, cx: f64, cy: f64, rx: f64, ry: f64| -> Vec<f64> {
        let n = 12 + rng.below(13) as usize;
        let mut a: Vec<f64> = (0..n)
            .map(|_| rng.uniform() * std::f64::consts::TAU)
            .collect();
        a.sort_by(f64::total_cmp);
        a.iter()
            .flat_map(|t| {
                let k = 0.8 + 0.2 * rng.uniform();
                [r2(cx + rx * k * t.cos()), r2(cy + ry * k * t.sin())]
            })
            .collect()
    };
    let mask_err = |e: edgedistill::data::masks::MaskError| edgedistill::Error::msg(e.to_string());
    let (mut images, mut anns, mut dets) = (Vec::new(), Vec::new(), Vec::new());
    for iid in 1..=n_img {
        images.push(
            json!({"id": iid, "file_name": format!("{iid:06}.jpg"), "width": w, "height": h}),
        );
        let mut objs: Vec<(u64, f64, f64, f64, f64)> = Vec::new();
        for _ in 0..2 + rng.below(9) {
            let u = rng.uniform();
            let r = if u < 0.35 {
                4.0 + 12.0 * rng.uniform()
            } else if u < 0.75 {
                16.0 + 32.0 * rng.uniform()
            } else {
                48.0 + 100.0 * rng.uniform()
            };
            let (rx, ry) = (r, r * (0.6 + 0.6 * rng.uniform()));
            let cx = rx + rng.uniform() * (f64::from(w) - 2.0 * rx).max(1.0);
            let cy = ry + rng.uniform() * (f64::from(h) - 2.0 * ry).max(1.0);
            let cat = 1 + rng.below(n_cat);
            let poly = ellipse(rng, cx, cy, rx, ry);
            let m = Rle::from_polygons(&[&poly], h, w).map_err(mask_err)?;
            let crowd = rng.uniform() < 0.04;
            let seg = if crowd {
                json!({"size": [h, w], "counts": m.to_compressed()})
            } else {
                json!([poly])
            };
            anns.push(
                json!({"id": anns.len() + 1, "image_id": iid, "category_id": cat,
                "segmentation": seg, "area": m.area() as f64, "bbox": m.to_bbox(),
                "iscrowd": u8::from(crowd)}),
            );
            objs.push((cat, cx, cy, rx, ry));
        }
        for j in 0..20usize {
            let (cat, poly) = if j < 2 * objs.len() && rng.uniform() < 0.8 {
                let (c, cx, cy, rx, ry) = objs[j % objs.len()];
                let s = 0.9 + 0.2 * rng.uniform();
                let c = if rng.uniform() < 0.9 {
                    c
                } else {
                    1 + rng.below(n_cat)
                };
                let (dx, dy) = (3.0 * rng.normal(), 3.0 * rng.normal());
                (c, ellipse(rng, cx + dx, cy + dy, rx * s, ry * s))
            } else {
                let r = 6.0 + 60.0 * rng.uniform();
                let (cx, cy) = (rng.uniform() * f64::from(w), rng.uniform() * f64::from(h));
                let (c, ry) = (1 + rng.below(n_cat), r * (0.5 + rng.uniform()));
                (c, ellipse(rng, cx, cy, r, ry))
            };
            let m = Rle::from_polygons(&[&poly], h, w).map_err(mask_err)?;
            let score = (rng.uniform() * 1e4).round() / 1e4;
            dets.push(
                json!({"image_id": iid, "category_id": cat, "bbox": m.to_bbox(),
                "segmentation": {"size": [h, w], "counts": m.to_compressed()}, "score": score}),
            );
        }
    }
    let cats: Vec<_> = (1..=n_cat)
        .map(|c| json!({"id": c, "name": format!("class{c}")}))
        .collect();
    Ok((
        json!({"images": images, "annotations": anns, "categories": cats}),
        serde_json::Value::Array(dets),
    ))
}

/// COCOeval (segm) of 5 000 images × 20 detections, ours vs pycocotools on the same files.
fn cocoeval_case(a: &Args, rng: &mut Rng) -> Result<()> {
    use edgedistill::data::Coco;
    use edgedistill::eval::{IouType, Results, evaluate};
    let io_err = |path: &std::path::Path| {
        let path = path.to_path_buf();
        move |source| edgedistill::Error::Io { path, source }
    };
    let t0 = Instant::now();
    let (gt_json, dt_json) = cocoeval_data(rng)?;
    let dir = std::env::temp_dir().join(format!("ed-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
    let (gt_path, dt_path) = (dir.join("gt.json"), dir.join("dt.json"));
    let to_vec = |v: &serde_json::Value| {
        serde_json::to_vec(v).map_err(|e| edgedistill::Error::msg(e.to_string()))
    };
    std::fs::write(&gt_path, to_vec(&gt_json)?).map_err(io_err(&gt_path))?;
    std::fs::write(&dt_path, to_vec(&dt_json)?).map_err(io_err(&dt_path))?;
    let n_gt = gt_json["annotations"].as_array().map_or(0, Vec::len);
    let n_dt = dt_json.as_array().map_or(0, Vec::len);
    drop((gt_json, dt_json));
    eprintln!(
        "generated {n_gt} gt, {n_dt} detections in {:.1} s",
        t0.elapsed().as_secs_f64()
    );

    let load = || -> Result<(Coco, Results)> {
        let gt = Coco::read_strict(&gt_path)?;
        let dt = Results::read(&dt_path, &gt)?;
        Ok((gt, dt))
    };
    let (gt, dt) = load()?;
    let r = evaluate(&gt, &dt, IouType::Segm)?;
    print!("{}", r.summary_text());
    let ours = time("ours cocoeval segm", a.iters, || {
        evaluate(&gt, &dt, IouType::Segm).map(|r| {
            let _ = r.summary_text();
        })
    })?;
    let ours_all = time("ours load + cocoeval segm", a.iters, || {
        let (gt, dt) = load()?;
        evaluate(&gt, &dt, IouType::Segm).map(|_| ())
    })?;
    let refs = reference_with(
        a,
        &[
            "--gt",
            &gt_path.display().to_string(),
            "--dt",
            &dt_path.display().to_string(),
        ],
    );
    std::fs::remove_dir_all(&dir).ok();
    println!("{n_gt} gt, {n_dt} detections, 5000 images of 640x480, 10 categories");
    if let Some(theirs) = refs.as_ref().and_then(|v| v.get("pycocotools_stats")) {
        let theirs: Vec<f64> = theirs
            .as_array()
            .map(|v| v.iter().filter_map(|x| x.as_f64()).collect())
            .unwrap_or_default();
        let same = theirs.len() == 12 && theirs.iter().zip(&r.stats).all(|(x, y)| x == y);
        println!("stats identical to pycocotools: {same}");
        if !same {
            return Err(edgedistill::Error::msg(format!(
                "stats differ: ours {:?} pycocotools {theirs:?}",
                r.stats
            )));
        }
    }
    report(
        "ours_cocoeval_segm (evaluate+accumulate+summarize)",
        ours,
        &refs,
        &["pycocotools_cocoeval_segm"],
    );
    report(
        "ours_load_and_cocoeval_segm (JSON in, stats out)",
        ours_all,
        &refs,
        &["pycocotools_load_and_cocoeval_segm"],
    );
    Ok(())
}
