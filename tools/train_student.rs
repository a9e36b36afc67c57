//! ed-train-student: train the YOLOv8 student on COCO train/val files (ground truth for
//! now; teacher distillation joins with its issue). Masks on every annotation → YOLOv8-seg,
//! else YOLOv8 detect.
use edgedistill::data::augment::{Environment, plan};
use edgedistill::models::yolov8::LossGains;
use edgedistill::optim::OptimizerKind;
use edgedistill::train::student::{StudentOptions, train_student};
use edgedistill::train::{FitStatus, TrainConfig, install_signal_handlers};
use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "usage: ed-train-student --train train.json --val val.json --images DIR [--out DIR]
       [--scale n|s|m|l|x] [--config model.json] [--imgsz 640] [--epochs 100] [--batch 16]
       [--optimizer sgd|adamw] [--lr0 0.01] [--lrf 0.01] [--cos-lr] [--warmup-epochs 3]
       [--close-mosaic 10] [--patience 100] [--save-period 0] [--seed 0] [--aug low|medium|high|none]
       [--threads N] [--resume]

Writes DIR (default runs/student): config.json, weights/{last,best}.safetensors (resumable
checkpoints), weights/best.model.safetensors (the model for ed-predict/ed-eval),
results.csv, metrics.jsonl. Ctrl-C saves a checkpoint; --resume continues exactly.";

fn parse() -> Result<(StudentOptions, Option<usize>), String> {
    let mut it = std::env::args().skip(1);
    let mut tc = TrainConfig::default();
    let (mut train, mut val, mut images, mut out, mut config) = (None, None, None, None, None);
    let (mut scale, mut imgsz, mut aug, mut resume, mut threads) =
        ('n', 640u32, "medium".to_string(), false, None);
    while let Some(a) = it.next() {
        let mut v = || it.next().ok_or(format!("{a} needs a value"));
        macro_rules! num {
            () => {{
                let s = v()?;
                s.parse()
                    .map_err(|_| format!("{a} {s:?} is not a number"))?
            }};
        }
        match a.as_str() {
            "--train" => train = Some(PathBuf::from(v()?)),
            "--val" => val = Some(PathBuf::from(v()?)),
            "--images" => images = Some(PathBuf::from(v()?)),
            "--out" => out = Some(PathBuf::from(v()?)),
            "--config" => {
                let p = v()?;
                let s = std::fs::read_to_string(&p).map_err(|e| format!("{p}: {e}"))?;
                config = Some(serde_json::from_str(&s).map_err(|e| format!("{p}: {e}"))?);
            }
            "--scale" => {
                let s = v()?;
                scale = match s.as_str() {
                    "n" | "s" | "m" | "l" | "x" => s.chars().next().unwrap_or('n'),
                    _ => return Err(format!("--scale {s:?}: one of n, s, m, l, x")),
                }
            }
            "--imgsz" => imgsz = num!(),
            "--epochs" => tc.epochs = num!(),
            "--batch" => tc.batch = num!(),
            "--lr0" => tc.lr0 = num!(),
            "--lrf" => tc.lrf = num!(),
            "--cos-lr" => tc.cos_lr = true,
            "--warmup-epochs" => tc.warmup_epochs = num!(),
            "--close-mosaic" => tc.close_mosaic = num!(),
            "--patience" => tc.patience = num!(),
            "--save-period" => tc.save_period = num!(),
            "--seed" => tc.seed = num!(),
            "--threads" => threads = Some(num!()),
            "--optimizer" => {
                tc.optimizer = match v()?.as_str() {
                    "sgd" => OptimizerKind::sgd(),
                    "adamw" => OptimizerKind::adamw(),
                    o => return Err(format!("--optimizer {o:?}: sgd or adamw")),
                }
            }
            "--aug" => aug = v()?,
            "--resume" => resume = true,
            "-h" | "--help" => return Err(String::new()),
            o => return Err(format!("unknown argument {o:?}")),
        }
    }
    let augment = if aug == "none" {
        Vec::new()
    } else {
        plan(&[], &Environment::default(), &aug).map_err(|e| e.to_string())?
    };
    Ok((
        StudentOptions {
            train_json: train.ok_or("--train is required")?,
            val_json: val.ok_or("--val is required")?,
            images: images.ok_or("--images is required")?,
            out: out.unwrap_or_else(|| PathBuf::from("runs/student")),
            scale,
            config,
            imgsz,
            train: tc,
            gains: LossGains::default(),
            augment,
            resume,
        },
        threads,
    ))
}

fn main() -> ExitCode {
    let (o, threads) = match parse() {
        Ok(x) => x,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("ed-train-student: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    if let Some(n) = threads {
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global();
    }
    install_signal_handlers();
    edgedistill::backend::cpu::alloc::tune_allocator();
    match train_student(&o) {
        Ok(r) => {
            println!("{}", r.summary_text());
            if r.fit.status == FitStatus::Interrupted {
                println!("interrupted: continue with the same arguments and --resume");
                return ExitCode::from(130);
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ed-train-student: {e}");
            ExitCode::from(1)
        }
    }
}
