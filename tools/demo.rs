//! `ed-demo`: the main job, end to end on data it generates itself.
//!
//! generate a synthetic instance-segmentation dataset (shape classes, varied colours and
//! sizes, rotation, occlusion, textured backgrounds; COCO polygons of the visible parts)
//! → validate it → train the YOLOv8-seg student → evaluate it on the validation split →
//! predict → calibrate INT8 → export the fp32/INT8 engines and ONNX → evaluate the engines.
//! Prints the figures and writes them to DIR/summary.json. It grows as the teachers and
//! distillation land.
//!
//!   ed-demo [--out DIR] [--epochs N] [--seed S] [--train N] [--val N] [--imgsz S]
//!           [--batch B] [--scale n|s] [--threads N]
use edgedistill::data::Coco;
use edgedistill::data::augment::{Environment, plan};
use edgedistill::data::image::load_rgb;
use edgedistill::data::synth::{SynthConfig, generate};
use edgedistill::data::validate::{ValidateOptions, validate};
use edgedistill::engine::Engine;
use edgedistill::engine::calibrate::{CalibOptions, calibrate};
use edgedistill::engine::export::{ExportOptions, Precision, export};
use edgedistill::eval::cocoeval::{IouType, evaluate};
use edgedistill::eval::plot::overlay_png::draw_prediction;
use edgedistill::eval::results::Results;
use edgedistill::eval::{evaluate_detector, predict_coco, write_results};
use edgedistill::models::yolov8::postprocess::{Binarize, NmsConfig};
use edgedistill::models::yolov8::{LossGains, Predictor};
use edgedistill::optim::OptimizerKind;
use edgedistill::quant::Method;
use edgedistill::train::student::{StudentOptions, train_student, write_json};
use edgedistill::train::{TrainConfig, install_signal_handlers};
use edgedistill::{Error, Result};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

struct Args {
    out: PathBuf,
    epochs: usize,
    seed: u64,
    train: usize,
    val: usize,
    imgsz: u32,
    batch: usize,
    scale: char,
    threads: usize,
}

fn parse() -> std::result::Result<Args, String> {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut a = Args {
        out: PathBuf::from(format!("runs/demo-{stamp}")),
        // More images for fewer epochs: the same steps reach a far better model than
        // 300 images × 24 epochs did (BENCHMARKS.md has the figures and timings).
        epochs: 16,
        seed: 0,
        train: 600,
        val: 60,
        imgsz: 160,
        batch: 8,
        scale: 'n',
        threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let val = it.next().ok_or(format!("{flag} needs a value"))?;
        let num = |v: &str| {
            v.parse::<u64>()
                .map_err(|_| format!("{flag} {v:?} is not a whole number"))
        };
        match flag.as_str() {
            "--out" => a.out = PathBuf::from(val),
            "--epochs" => a.epochs = num(&val)? as usize,
            "--seed" => a.seed = num(&val)?,
            "--train" => a.train = num(&val)? as usize,
            "--val" => a.val = num(&val)? as usize,
            "--imgsz" => a.imgsz = num(&val)? as u32,
            "--batch" => a.batch = num(&val)? as usize,
            "--threads" => a.threads = num(&val)? as usize,
            "--scale" => {
                a.scale = val
                    .chars()
                    .next()
                    .filter(|c| "nsmlx".contains(*c))
                    .ok_or("--scale: n, s, m, l or x")?
            }
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    if a.epochs == 0 || a.train == 0 || a.val == 0 {
        return Err("--epochs, --train and --val must be positive".into());
    }
    Ok(a)
}

fn main() -> ExitCode {
    let a = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!(
                "ed-demo: {e}\nusage: ed-demo [--out DIR] [--epochs N] [--seed S] [--train N] [--val N] [--imgsz S] [--batch B] [--scale n|s] [--threads N]"
            );
            return ExitCode::from(2);
        }
    };
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(a.threads.max(1))
        .build_global();
    install_signal_handlers();
    edgedistill::backend::cpu::alloc::tune_allocator();
    match run(&a) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ed-demo: {e}");
            ExitCode::from(1)
        }
    }
}

fn secs(t: Instant) -> f64 {
    (t.elapsed().as_secs_f64() * 100.0).round() / 100.0
}

fn run(a: &Args) -> Result<()> {
    let t_all = Instant::now();
    std::fs::create_dir_all(&a.out).map_err(|source| Error::Io {
        path: a.out.clone(),
        source,
    })?;
    let data = a.out.join("data");

    println!(
        "[1/7] generating {} train + {} val images ({}²) into {}",
        a.train,
        a.val,
        a.imgsz,
        data.display()
    );
    let t = Instant::now();
    let synth = generate(
        &SynthConfig {
            n_train: a.train,
            n_val: a.val,
            size: a.imgsz,
            seed: a.seed,
            ..SynthConfig::default()
        },
        &data,
    )?;
    let t_generate = secs(t);

    println!("[2/7] validating");
    let t = Instant::now();
    let mut val_reports = Vec::new();
    for p in [&synth.train_json, &synth.val_json] {
        let (coco, problems) = Coco::read(p)?;
        let v = validate(
            coco,
            problems,
            &ValidateOptions {
                images_dir: Some(synth.images_dir.clone()),
            },
        );
        let r = &v.report;
        println!(
            "      {}: {} images, {} annotations ({}), {} classes, {} problems",
            p.file_name().map_or("?".into(), |s| s.to_string_lossy()),
            r.images,
            r.annotations,
            r.mode,
            r.num_classes,
            r.problems.len()
        );
        if !r.problems.is_empty() {
            return Err(Error::msg(format!(
                "{}: the generated dataset has problems: {}",
                p.display(),
                r.problems[0]
            )));
        }
        val_reports.push(json!({"images": r.images, "annotations": r.annotations, "mode": r.mode}));
    }
    let t_validate = secs(t);

    println!(
        "[3/7] training YOLOv8{}-seg for {} epochs at {} px (progress on stderr)",
        a.scale, a.epochs, a.imgsz
    );
    let t = Instant::now();
    let train = TrainConfig {
        epochs: a.epochs,
        batch: a.batch,
        // Step on every batch: a short run needs optimizer steps more than a nominal batch.
        nbs: a.batch,
        optimizer: OptimizerKind::adamw(),
        lr0: 0.002,
        momentum: 0.9,
        warmup_epochs: 1.0,
        // Mosaic shrinks the demo's objects and slows a short run down; it stays off.
        close_mosaic: a.epochs,
        cos_lr: false,
        seed: a.seed,
        ..TrainConfig::default()
    };
    let student = train_student(&StudentOptions {
        train_json: synth.train_json.clone(),
        val_json: synth.val_json.clone(),
        images: synth.images_dir.clone(),
        out: a.out.join("student"),
        scale: a.scale,
        config: None,
        imgsz: a.imgsz,
        train,
        gains: LossGains::default(),
        augment: plan(&[], &Environment::default(), "medium")?,
        resume: false,
    })?;
    let t_train = secs(t);
    println!("{}", student.summary_text());

    println!(
        "[4/7] evaluating the model file on the validation split (COCOeval, pycocotools-exact)"
    );
    let t = Instant::now();
    let coco_val = Coco::read_strict(&synth.val_json)?;
    let eval_dir = a.out.join("eval");
    let predictor = Predictor::load(&student.model_path)?
        .with_nms(NmsConfig {
            conf: 0.001,
            iou: 0.7,
            max_det: 300,
            ..NmsConfig::default()
        })
        .with_binarize(Binarize::Truncate);
    let val_name = synth.val_json.display().to_string();
    let records = predict_coco(&predictor, &coco_val, &val_name, &synth.images_dir, 4)?;
    std::fs::create_dir_all(&eval_dir).map_err(|source| Error::Io {
        path: eval_dir.clone(),
        source,
    })?;
    let results_path = eval_dir.join("predictions.json");
    write_results(&results_path, &records)?;
    let dt = Results::read(&results_path, &coco_val)?;
    let mut coco_stats = serde_json::Map::new();
    for ty in [IouType::Bbox, IouType::Segm] {
        let r = evaluate(&coco_val, &dt, ty)?;
        println!("COCOeval iouType={}", ty.as_str());
        print!("{}", r.summary_text());
        coco_stats.insert(format!("{}_AP50_95", ty.as_str()), json!(r.stats[0]));
        coco_stats.insert(format!("{}_AP50", ty.as_str()), json!(r.stats[1]));
    }
    let t_eval = secs(t);

    println!("[5/7] predicting the first validation images with overlays");
    let t = Instant::now();
    let pred_dir = a.out.join("predict");
    std::fs::create_dir_all(&pred_dir).map_err(|source| Error::Io {
        path: pred_dir.clone(),
        source,
    })?;
    let predictor = predictor
        .with_nms(NmsConfig::default())
        .with_binarize(Binarize::Half);
    let mut shown = 0;
    for im in coco_val.images.iter().take(8) {
        let mut img = load_rgb(synth.images_dir.join(&im.file_name))?;
        let p = predictor.predict(&img)?;
        shown += p.scores.len();
        draw_prediction(&mut img, &p, predictor.names());
        let path = pred_dir.join(format!("{}.png", im.id));
        img.save(&path)
            .map_err(|e| Error::msg(format!("{}: {e}", path.display())))?;
    }
    let t_predict = secs(t);
    println!("      {shown} objects drawn in {}", pred_dir.display());

    let t = Instant::now();
    let optimized = optimize(a, &synth, &student.model_path, &coco_stats)?;
    let t_optimize = secs(t);

    let ev = &student.val;
    let mut figures = serde_json::Map::new();
    for (tag, m) in [("box", Some(&ev.boxes)), ("mask", ev.masks.as_ref())] {
        if let Some(m) = m {
            figures.insert(format!("{tag}_mAP50"), json!(m.map50));
            figures.insert(format!("{tag}_mAP50_95"), json!(m.map));
            figures.insert(format!("{tag}_precision"), json!(m.mp));
            figures.insert(format!("{tag}_recall"), json!(m.mr));
        }
    }
    let summary = json!({
        "out": a.out,
        "dataset": {"train": val_reports[0], "val": val_reports[1], "imgsz": a.imgsz, "classes": SynthConfig::default().classes},
        "student": {
            "model": student.model_path,
            "epochs": student.fit.epochs_completed,
            "status": format!("{:?}", student.fit.status),
            "val": figures,
            "val_cocoeval": coco_stats,
        },
        "optimized": optimized,
        "seconds": {"generate": t_generate, "validate": t_validate, "train": t_train, "evaluate": t_eval, "predict": t_predict, "optimize": t_optimize, "total": secs(t_all)},
        "settings": {"epochs": a.epochs, "batch": a.batch, "scale": a.scale.to_string(), "seed": a.seed, "threads": a.threads},
    });
    write_json(&a.out.join("summary.json"), &summary)?;
    println!(
        "done in {:.0} s; outputs in {}",
        secs(t_all),
        a.out.display()
    );
    println!("  summary:  {}", a.out.join("summary.json").display());
    println!("  model:    {}", student.model_path.display());
    println!("  COCOeval: {}", results_path.display());
    println!("  overlays: {}", pred_dir.display());
    println!(
        "  training: {}",
        Path::new(&a.out).join("student/results.csv").display()
    );
    Ok(())
}

/// Steps 6 and 7: calibrate on the training split, export the fp32 and INT8 engines and the
/// ONNX models into DIR/optimized, and evaluate each engine on the validation split the way
/// the model file was (COCOeval). The INT8 engine uses the entropy calibrator; the other two
/// calibrators get an engine each under optimized/calibrators/ for comparison.
fn optimize(
    a: &Args,
    synth: &edgedistill::data::synth::SynthOutput,
    model: &Path,
    model_stats: &serde_json::Map<String, serde_json::Value>,
) -> Result<serde_json::Value> {
    let out = a.out.join("optimized");
    let cache = out.join("calib_cache.json");
    println!("[6/7] calibrating INT8 on up to 512 training images, exporting engines and ONNX");
    let t = Instant::now();
    let c = calibrate(
        model,
        &synth.train_json,
        &synth.images_dir,
        &CalibOptions::default(),
    )?;
    std::fs::create_dir_all(&out).map_err(|source| Error::Io {
        path: out.clone(),
        source,
    })?;
    c.write(&cache)?;
    let t_calib = secs(t);
    println!(
        "      {} tensors from {} images in {t_calib:.1} s -> {}",
        c.tensors.len(),
        c.num_images,
        cache.display()
    );
    let fp32 = export(model, &out, &ExportOptions::default())?;
    let int8_opts = |method| ExportOptions {
        precision: Precision::Int8,
        calib: Some(cache.clone()),
        method: Some(method),
        ..ExportOptions::default()
    };
    let int8 = export(model, &out, &int8_opts(Method::Entropy))?;
    let (Some(e32), Some(e8)) = (&fp32.engine, &int8.engine) else {
        return Err(Error::msg("export wrote no engine"));
    };
    println!(
        "      {} ({:.2} MB), {} ({:.2} MB, {:.3}x), {} INT8 convs, {} kept in f32",
        e32.path.display(),
        e32.bytes as f64 / 1e6,
        e8.path.display(),
        e8.bytes as f64 / 1e6,
        e8.bytes as f64 / e32.bytes as f64,
        int8.int8.as_ref().map_or(0, |q| q.layers.int8_layers.len()),
        int8.int8.as_ref().map_or(0, |q| q.layers.fp32_layers.len()),
    );

    println!("[7/7] evaluating the engines on the validation split (COCOeval)");
    let gt = Coco::read_strict(&synth.val_json)?;
    let name = synth.val_json.display().to_string();
    let eval = |engine: &Path, dir: &str| -> Result<edgedistill::eval::CocoFigures> {
        let mut e = Engine::load(engine)?;
        Ok(evaluate_detector(&mut e, &gt, &name, &synth.images_dir, &out.join(dir))?.0)
    };
    let mut engines = serde_json::Map::new();
    let base = model_stats.get("segm_AP50").and_then(|v| v.as_f64());
    let row = |label: &str, f: &edgedistill::eval::CocoFigures| {
        let delta = f.segm_ap50.zip(base).map(|(x, b)| (x - b) * 100.0);
        println!(
            "      {label:<24} mask AP50 {:.4} ({}), box AP50 {:.4}",
            f.segm_ap50.unwrap_or(f64::NAN),
            delta.map_or("-".into(), |d| format!("{d:+.2} points vs the model file")),
            f.bbox_ap50
        );
        json!({"figures": f, "mask_ap50_delta_points": delta})
    };
    let f32f = eval(&e32.path, "eval_fp32")?;
    engines.insert("fp32".into(), row("fp32 engine", &f32f));
    let f8 = eval(&e8.path, "eval_int8")?;
    engines.insert("int8_entropy".into(), row("int8 engine (entropy)", &f8));
    for m in [Method::Percentile(99.99), Method::MinMax] {
        let dir = out
            .join("calibrators")
            .join(m.to_string().replace([':', '.'], "_"));
        let mut o = int8_opts(m);
        o.onnx = false;
        let s = export(model, &dir, &o)?;
        let p = s
            .engine
            .map(|e| e.path)
            .ok_or_else(|| Error::msg("no engine"))?;
        let f = eval(
            &p,
            &format!("eval_int8_{}", m.to_string().replace([':', '.'], "_")),
        )?;
        engines.insert(format!("int8_{m}"), row(&format!("int8 engine ({m})"), &f));
    }
    let file = |f: &Option<edgedistill::engine::export::ExportedFile>| {
        f.as_ref()
            .map(|f| json!({"path": f.path, "bytes": f.bytes}))
    };
    Ok(json!({
        "dir": out,
        "calib_cache": cache,
        "calib_images": c.num_images,
        "fp32_engine": file(&fp32.engine),
        "int8_engine": file(&int8.engine),
        "int8_size_ratio": e8.bytes as f64 / e32.bytes as f64,
        "onnx": file(&fp32.onnx),
        "onnx_int8": file(&int8.onnx_int8),
        "int8_layers": int8.int8.as_ref().map(|q| &q.layers),
        "val": engines,
        "seconds_calibrate": t_calib,
    }))
}
