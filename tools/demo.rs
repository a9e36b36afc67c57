//! `ed-demo`: the main job, end to end on data it generates itself.
//!
//! generate a synthetic instance-segmentation dataset (shape classes, varied colours and
//! sizes, rotation, occlusion, textured backgrounds; COCO polygons of the visible parts)
//! → validate it → train the YOLOv8-seg student → evaluate it on the validation split →
//! predict. Prints the figures and writes them to DIR/summary.json. It grows as teachers,
//! distillation and export land.
//!
//!   ed-demo [--out DIR] [--epochs N] [--seed S] [--train N] [--val N] [--imgsz S]
//!           [--batch B] [--scale n|s] [--threads N]
use edgedistill::data::Coco;
use edgedistill::data::augment::{Environment, plan};
use edgedistill::data::image::load_rgb;
use edgedistill::data::synth::{SynthConfig, generate};
use edgedistill::data::validate::{ValidateOptions, validate};
use edgedistill::eval::cocoeval::{IouType, evaluate};
use edgedistill::eval::plot::overlay_png::draw_prediction;
use edgedistill::eval::results::Results;
use edgedistill::eval::{predict_coco, write_results};
use edgedistill::models::yolov8::postprocess::{Binarize, NmsConfig};
use edgedistill::models::yolov8::{LossGains, Predictor};
use edgedistill::optim::OptimizerKind;
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
        "[1/5] generating {} train + {} val images ({}²) into {}",
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

    println!("[2/5] validating");
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
        "[3/5] training YOLOv8{}-seg for {} epochs at {} px (progress on stderr)",
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
        "[4/5] evaluating the model file on the validation split (COCOeval, pycocotools-exact)"
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

    println!("[5/5] predicting the first validation images with overlays");
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
        "seconds": {"generate": t_generate, "validate": t_validate, "train": t_train, "evaluate": t_eval, "predict": t_predict, "total": secs(t_all)},
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
