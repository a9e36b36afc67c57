//! `ed-demo`: the main job, end to end on data it generates itself.
//!
//! Today (foundation stage) it generates a synthetic shapes dataset (circles, squares,
//! triangles; random colours, sizes and places; textured backgrounds; partial occlusion),
//! trains a small Conv-BN-SiLU network with our tensor layer, autograd and AdamW, evaluates
//! it on a held-out split and writes the run to DIR: config.json, metrics.jsonl,
//! model.safetensors (torch-style names) and summary.json. It grows into the full
//! validate → teachers → student → INT8 pipeline as those issues land.
//!
//!   ed-demo [--out DIR] [--epochs N] [--seed S] [--train N] [--val N] [--threads N]
use edgedistill::io::atomic::write_atomic;
use edgedistill::io::save_safetensors;
use edgedistill::loss::cross_entropy;
use edgedistill::nn::{
    Activation, BatchNorm2d, Conv2d, Flatten, Forward, Linear, Module, Sequential, state_dict_of,
};
use edgedistill::optim::{AdamW, AdamWConfig};
use edgedistill::tensor::{Conv2dParams, Rng};
use edgedistill::{Error, Result, Tensor};
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

const SIZE: usize = 32;
const CLASSES: [&str; 3] = ["circle", "square", "triangle"];

struct Args {
    out: PathBuf,
    epochs: usize,
    seed: u64,
    train: usize,
    val: usize,
    threads: usize,
}

fn parse() -> std::result::Result<Args, String> {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut a = Args {
        out: PathBuf::from(format!("runs/demo-{stamp}")),
        epochs: 20,
        seed: 0,
        train: 3000,
        val: 600,
        threads: 0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            return Err("usage: ed-demo [--out DIR] [--epochs N] [--seed S] [--train N] [--val N] [--threads N]".into());
        }
        let v = it.next().ok_or(format!("{flag} needs a value"))?;
        let num = |v: &str| {
            v.parse::<u64>()
                .map_err(|_| format!("{flag}: not a number: {v}"))
        };
        match flag.as_str() {
            "--out" => a.out = PathBuf::from(v),
            "--epochs" => a.epochs = num(&v)? as usize,
            "--seed" => a.seed = num(&v)?,
            "--train" => a.train = num(&v)? as usize,
            "--val" => a.val = num(&v)? as usize,
            "--threads" => a.threads = num(&v)? as usize,
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    if a.epochs == 0 || a.train < 3 || a.val < 3 {
        return Err("--epochs must be ≥ 1 and --train/--val ≥ 3".into());
    }
    Ok(a)
}

/// One RGB image (CHW, 0..1) of class `c` on a textured background, maybe partly occluded.
fn draw(c: usize, rng: &mut Rng, out: &mut [f32]) {
    let s = SIZE as f64;
    let bg: [f64; 3] = [rng.uniform(), rng.uniform(), rng.uniform()];
    let (gx, gy) = (rng.uniform() - 0.5, rng.uniform() - 0.5);
    let mut fg: [f64; 3] = [rng.uniform(), rng.uniform(), rng.uniform()];
    // keep the shape visible against the background
    if fg.iter().zip(&bg).map(|(a, b)| (a - b).abs()).sum::<f64>() < 0.6 {
        fg = bg.map(|v| 1.0 - v);
    }
    let r = s * (0.18 + 0.17 * rng.uniform());
    let (cx, cy) = (
        r + (s - 2.0 * r) * rng.uniform(),
        r + (s - 2.0 * r) * rng.uniform(),
    );
    let occ = if rng.uniform() < 0.3 {
        let (w, h) = (s * 0.25 * rng.uniform(), s * 0.25 * rng.uniform());
        Some((
            cx - w,
            cy - h,
            cx + w * rng.uniform(),
            cy + h * rng.uniform(),
        ))
    } else {
        None
    };
    for y in 0..SIZE {
        for x in 0..SIZE {
            let (px, py) = (x as f64 + 0.5, y as f64 + 0.5);
            let (dx, dy) = (px - cx, py - cy);
            let inside = match c {
                0 => dx * dx + dy * dy <= r * r,
                1 => dx.abs() <= r * 0.85 && dy.abs() <= r * 0.85,
                _ => dy <= r * 0.8 && dy >= -r && dx.abs() <= (dy + r) * 0.58,
            };
            let hidden =
                occ.is_some_and(|(x0, y0, x1, y1)| px >= x0 && px <= x1 && py >= y0 && py <= y1);
            for ch in 0..3 {
                let base = bg[ch] + 0.3 * (gx * (px / s - 0.5) + gy * (py / s - 0.5));
                let v = if hidden {
                    0.5
                } else if inside {
                    fg[ch]
                } else {
                    base
                };
                out[ch * SIZE * SIZE + y * SIZE + x] =
                    (v + 0.06 * rng.normal()).clamp(0.0, 1.0) as f32;
            }
        }
    }
}

fn dataset(n: usize, rng: &mut Rng) -> Result<(Tensor, Tensor)> {
    let mut xs = vec![0f32; n * 3 * SIZE * SIZE];
    let mut ys = Vec::with_capacity(n);
    for (i, img) in xs.chunks_mut(3 * SIZE * SIZE).enumerate() {
        let c = i % CLASSES.len();
        draw(c, rng, img);
        ys.push(c as i64);
    }
    Ok((
        Tensor::from_vec(xs, [n, 3, SIZE, SIZE])?,
        Tensor::from_vec(ys, [n])?,
    ))
}

struct Pool;
impl Forward for Pool {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.max_pool2d((2, 2), (2, 2), (0, 0))
    }
}
impl Module for Pool {}
struct GlobalPool;
impl Forward for GlobalPool {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.adaptive_avg_pool2d((1, 1))
    }
}
impl Module for GlobalPool {}

/// Conv(k3) → BN → SiLU blocks, as in YOLOv8's `Conv`.
fn model(rng: &mut Rng) -> Result<Sequential> {
    let p = Conv2dParams {
        padding: (1, 1),
        ..Default::default()
    };
    let mut m = Sequential::new();
    let mut cin = 3;
    for (i, cout) in [16, 32, 64].into_iter().enumerate() {
        m = m
            .push(Conv2d::new(cin, cout, (3, 3), p, false, rng)?)
            .push(BatchNorm2d::new(cout)?.with_eps(1e-3))
            .push(Activation::Silu);
        if i < 2 {
            m = m.push(Pool);
        }
        cin = cout;
    }
    Ok(m.push(GlobalPool)
        .push(Flatten)
        .push(Linear::new(cin, CLASSES.len(), true, rng)?))
}

fn batch(x: &Tensor, y: &Tensor, idx: &[usize]) -> Result<(Tensor, Tensor)> {
    let ix = Tensor::from_vec(
        idx.iter().map(|&i| i as i64).collect::<Vec<_>>(),
        [idx.len()],
    )?;
    Ok((x.index_select(0, &ix)?, y.index_select(0, &ix)?))
}

/// Accuracy and confusion matrix (rows: truth, cols: prediction) on a split.
fn evaluate(m: &Sequential, x: &Tensor, y: &Tensor) -> Result<(f64, Vec<Vec<usize>>)> {
    let _g = edgedistill::no_grad();
    m.eval();
    let n = y.dims()[0];
    let mut conf = vec![vec![0usize; CLASSES.len()]; CLASSES.len()];
    let truth = y.to_vec::<i64>()?;
    for start in (0..n).step_by(100) {
        let idx: Vec<usize> = (start..(start + 100).min(n)).collect();
        let (bx, _) = batch(x, y, &idx)?;
        let pred = m.forward(&bx)?.argmax(1, false)?.to_vec::<i64>()?;
        for (k, &i) in idx.iter().enumerate() {
            conf[truth[i] as usize][pred[k] as usize] += 1;
        }
    }
    m.train();
    let correct: usize = (0..CLASSES.len()).map(|c| conf[c][c]).sum();
    Ok((correct as f64 / n as f64, conf))
}

fn write_json(path: &std::path::Path, v: &serde_json::Value) -> Result<()> {
    write_atomic(path, |w| {
        let s = serde_json::to_string_pretty(v).map_err(|e| Error::msg(e.to_string()))?;
        w.write_all(s.as_bytes()).map_err(|e| Error::Io {
            path: path.to_path_buf(),
            source: e,
        })
    })
}

fn run(a: &Args) -> Result<()> {
    edgedistill::backend::cpu::alloc::tune_allocator();
    if a.threads > 0 {
        rayon::ThreadPoolBuilder::new()
            .num_threads(a.threads)
            .build_global()
            .map_err(|e| Error::msg(format!("thread pool: {e}")))?;
    }
    let t0 = Instant::now();
    std::fs::create_dir_all(&a.out).map_err(|e| Error::Io {
        path: a.out.clone(),
        source: e,
    })?;
    let config = json!({"epochs": a.epochs, "seed": a.seed, "train": a.train, "val": a.val, "image_size": SIZE,
        "classes": CLASSES, "batch": 32, "optimizer": {"name": "AdamW", "lr": 3e-3, "weight_decay": 5e-4}, "schedule": "cosine"});
    write_json(&a.out.join("config.json"), &config)?;
    let mut rng = Rng::new(a.seed);
    eprintln!(
        "ed-demo: generating {} train + {} val images ({SIZE}x{SIZE}, {} classes)",
        a.train,
        a.val,
        CLASSES.len()
    );
    let (xt, yt) = dataset(a.train, &mut rng)?;
    let (xv, yv) = dataset(a.val, &mut rng)?;
    let m = model(&mut rng)?;
    let params: Vec<Tensor> = m.named_parameters().into_iter().map(|(_, t)| t).collect();
    let n_params: usize = params.iter().map(|p| p.elem_count()).sum();
    let base_lr = 3e-3;
    let mut opt = AdamW::new(
        params,
        AdamWConfig {
            lr: base_lr,
            weight_decay: 5e-4,
            ..Default::default()
        },
    )?;
    let bs = 32;
    let steps_per_epoch = a.train.div_ceil(bs);
    let total = steps_per_epoch * a.epochs;
    let mut metrics = Vec::new();
    let train_start = Instant::now();
    let mut step = 0;
    let mut last_print = Instant::now();
    for epoch in 0..a.epochs {
        let mut order: Vec<usize> = (0..a.train).collect();
        rng.shuffle(&mut order);
        let (mut loss_sum, mut seen) = (0.0, 0);
        for chunk in order.chunks(bs) {
            opt.cfg.lr =
                base_lr * 0.5 * (1.0 + (std::f64::consts::PI * step as f64 / total as f64).cos());
            let (bx, by) = batch(&xt, &yt, chunk)?;
            opt.zero_grad();
            let loss = cross_entropy(&m.forward(&bx)?, &by)?;
            let lv = loss.to_scalar_f64()?;
            if !lv.is_finite() {
                return Err(Error::msg(format!(
                    "non-finite loss {lv} at epoch {epoch} step {step}"
                )));
            }
            loss.backward()?;
            opt.step()?;
            loss_sum += lv * chunk.len() as f64;
            seen += chunk.len();
            step += 1;
            if last_print.elapsed().as_secs_f64() < 0.25 && step != total {
                continue;
            }
            last_print = Instant::now();
            let rate = step as f64 / train_start.elapsed().as_secs_f64();
            eprint!(
                "\repoch {}/{} step {step}/{total} loss {:.4} ({rate:.1} steps/s, ETA {:.0}s)   ",
                epoch + 1,
                a.epochs,
                loss_sum / seen as f64,
                (total - step) as f64 / rate
            );
        }
        let (acc, _) = evaluate(&m, &xv, &yv)?;
        let rec = json!({"epoch": epoch + 1, "train_loss": loss_sum / seen as f64, "val_accuracy": acc, "lr": opt.cfg.lr, "time_s": train_start.elapsed().as_secs_f64()});
        eprintln!(
            "\repoch {}/{}: train loss {:.4}, val accuracy {acc:.3}                              ",
            epoch + 1,
            a.epochs,
            loss_sum / seen as f64
        );
        metrics.push(rec);
        write_atomic(&a.out.join("metrics.jsonl"), |w| {
            for r in &metrics {
                writeln!(w, "{r}").map_err(|e| Error::Io {
                    path: a.out.join("metrics.jsonl"),
                    source: e,
                })?;
            }
            Ok(())
        })?;
    }
    let train_s = train_start.elapsed().as_secs_f64();
    let (acc, conf) = evaluate(&m, &xv, &yv)?;
    let model_path = a.out.join("model.safetensors");
    let meta = [
        ("kind".to_string(), "demo-classifier".to_string()),
        ("classes".to_string(), CLASSES.join(",")),
    ]
    .into_iter()
    .collect();
    save_safetensors(&model_path, &state_dict_of(&m), Some(&meta))?;
    let summary = json!({
        "stage": "foundation: synthetic shape classification (the full detection/segmentation pipeline arrives with later issues)",
        "val_accuracy": acc, "confusion_matrix": conf, "classes": CLASSES, "parameters": n_params,
        "epochs": a.epochs, "train_images": a.train, "val_images": a.val,
        "train_time_s": train_s, "total_time_s": t0.elapsed().as_secs_f64(), "threads": rayon::current_num_threads(),
    });
    write_json(&a.out.join("summary.json"), &summary)?;
    println!(
        "val accuracy: {acc:.4} ({} images, {} classes)",
        a.val,
        CLASSES.len()
    );
    println!(
        "confusion (rows truth, cols predicted; {}):",
        CLASSES.join(", ")
    );
    for (c, row) in conf.iter().enumerate() {
        println!("  {:<9} {:?}", CLASSES[c], row);
    }
    println!(
        "parameters: {n_params}; training {train_s:.1}s; total {:.1}s",
        t0.elapsed().as_secs_f64()
    );
    println!(
        "outputs: {}/{{config.json, metrics.jsonl, model.safetensors, summary.json}}",
        a.out.display()
    );
    Ok(())
}

fn main() -> ExitCode {
    let a = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("ed-demo: {e}");
            return ExitCode::from(2);
        }
    };
    match run(&a) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("\ned-demo: {e}");
            ExitCode::FAILURE
        }
    }
}
