//! ed-train-teacher: fine-tune the teacher the dataset calls for. Masks on every annotation
//! → SAM with LoRA on the mask decoder (box prompts from the ground truth); boxes only →
//! Grounding DINO (not built yet: issue 9). Writes the PEFT adapter (`OUT/adapter`, which
//! PEFT's `PeftModel.from_pretrained` loads onto transformers' SamModel), resumable
//! checkpoints, results.csv and metrics.jsonl.
use edgedistill::data::Coco;
use edgedistill::data::dataset::Dataset;
use edgedistill::models::sam::{SamConfig, SamModel};
use edgedistill::nn::TargetModules;
use edgedistill::train::sam_teacher::{TeacherOptions, Tune, train_teacher};
use edgedistill::train::{FitStatus, install_signal_handlers};
use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str =
    "usage: ed-train-teacher --train train.json --val val.json --images DIR --sam SAM
       [--out runs/teacher] [--epochs 10] [--batch 1] [--lr0 1e-4] [--lrf 0.01]
       [--warmup-epochs 1] [--clip 0.1] [--lora-r 8] [--lora-alpha 16] [--lora-dropout 0.05]
       [--targets REGEX | --target-names a,b,c] [--full-decoder] [--prompts 16]
       [--jitter 0.1] [--max-jitter-px 20] [--cache DIR] [--seed 0] [--threads N] [--resume]

SAM is a transformers checkpoint folder (config.json + model.safetensors), or a
.safetensors file (transformers' or segment-anything's names, converted once with
tools/reference/sam_pth_to_safetensors.py) with --sam-config config.json beside it.
Writes OUT: adapter/ (adapter_config.json + adapter_model.safetensors, PEFT's format),
weights/{last,best}.safetensors (resumable), results.csv, metrics.jsonl, embeddings/
(the frozen image encoder's output per image, reused by later epochs and runs).";

struct Args {
    train: PathBuf,
    val: PathBuf,
    images: PathBuf,
    sam: PathBuf,
    sam_config: Option<PathBuf>,
    out: PathBuf,
    opts: TeacherOptions,
    threads: Option<usize>,
}

fn parse() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let mut o = TeacherOptions::default();
    let mut lora = edgedistill::train::sam_teacher::default_lora();
    let (mut train, mut val, mut images, mut sam, mut sam_config, mut out) =
        (None, None, None, None, None, None);
    let (mut full, mut threads) = (false, None);
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
            "--sam" => sam = Some(PathBuf::from(v()?)),
            "--sam-config" => sam_config = Some(PathBuf::from(v()?)),
            "--out" => out = Some(PathBuf::from(v()?)),
            "--epochs" => o.train.epochs = num!(),
            "--batch" => o.train.batch = num!(),
            "--lr0" => o.train.lr0 = num!(),
            "--lrf" => o.train.lrf = num!(),
            "--warmup-epochs" => o.train.warmup_epochs = num!(),
            "--clip" => o.train.max_grad_norm = num!(),
            "--seed" => o.train.seed = num!(),
            "--lora-r" => lora.r = num!(),
            "--lora-alpha" => lora.alpha = num!(),
            "--lora-dropout" => lora.dropout = num!(),
            "--targets" => lora.targets = TargetModules::Regex(v()?),
            "--target-names" => {
                lora.targets =
                    TargetModules::Names(v()?.split(',').map(|s| s.trim().to_string()).collect())
            }
            "--full-decoder" => full = true,
            "--prompts" => o.prompts_per_image = num!(),
            "--jitter" => o.jitter = num!(),
            "--max-jitter-px" => o.max_jitter_px = num!(),
            "--cache" => o.cache_dir = Some(PathBuf::from(v()?)),
            "--threads" => threads = Some(num!()),
            "--resume" => o.resume = true,
            "-h" | "--help" => return Err(String::new()),
            x => return Err(format!("unknown argument {x:?}")),
        }
    }
    o.train.nbs = o.train.batch;
    o.lora_seed = o.train.seed;
    o.tune = if full {
        Tune::FullDecoder
    } else {
        Tune::Lora(lora)
    };
    Ok(Args {
        train: train.ok_or("--train is required")?,
        val: val.ok_or("--val is required")?,
        images: images.ok_or("--images is required")?,
        sam: sam.ok_or("--sam is required")?,
        sam_config,
        out: out.unwrap_or_else(|| PathBuf::from("runs/teacher")),
        opts: o,
        threads,
    })
}

fn load_sam(a: &Args) -> edgedistill::Result<SamModel> {
    let lora = match &a.opts.tune {
        Tune::Lora(l) => Some((l.clone(), a.opts.lora_seed)),
        Tune::FullDecoder => None,
    };
    let (cfg_path, weights) = if a.sam.is_dir() {
        (a.sam.join("config.json"), a.sam.join("model.safetensors"))
    } else {
        let c = a
            .sam_config
            .clone()
            .unwrap_or_else(|| a.sam.with_file_name("config.json"));
        (c, a.sam.clone())
    };
    let text = std::fs::read_to_string(&cfg_path).map_err(|e| edgedistill::Error::Io {
        path: cfg_path.clone(),
        source: e,
    })?;
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| edgedistill::Error::Format {
            path: cfg_path.display().to_string(),
            record: format!("line {}", e.line()),
            msg: e.to_string(),
        })?;
    let cfg = SamConfig::from_json(&v).map_err(|e| e.context(cfg_path.display().to_string()))?;
    let sd = edgedistill::io::StateDict::open(&weights)?;
    Ok(SamModel::from_state_dict_lora(&cfg, &sd, &weights.display().to_string(), lora)?.0)
}

fn run(a: &Args) -> edgedistill::Result<FitStatus> {
    let read = |p: &PathBuf| -> edgedistill::Result<(Coco, Dataset)> {
        let c = Coco::read_strict(p)?;
        let d = Dataset::from_coco(&c, &a.images, &p.display().to_string())?;
        Ok((c, d))
    };
    let (tc, tr) = read(&a.train)?;
    let (vc, va) = read(&a.val)?;
    if !tr.with_masks {
        return Err(edgedistill::Error::msg(format!(
            "{}: not every annotation has a mask, so the teacher is Grounding DINO (boxes → \
             LoRA on text-prompted detection), which is not built yet (issue 9); SAM needs masks",
            a.train.display()
        )));
    }
    let model = load_sam(a)?;
    let r = train_teacher(&model, (&tr, &tc), (&va, &vc), &a.images, &a.out, &a.opts)?;
    println!("{}", r.params);
    println!(
        "validation mask IoU: {:.4} before, {:.4} best ({} epochs, {:?})",
        r.miou_before, r.miou_best, r.fit.epochs_completed, r.fit.status
    );
    println!("saved: {}", r.saved.display());
    Ok(r.fit.status)
}

fn main() -> ExitCode {
    let a = match parse() {
        Ok(x) => x,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("ed-train-teacher: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    if let Some(n) = a.threads {
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global();
    }
    install_signal_handlers();
    edgedistill::backend::cpu::alloc::tune_allocator();
    match run(&a) {
        Ok(FitStatus::Interrupted) => {
            println!("interrupted: continue with the same arguments and --resume");
            ExitCode::from(130)
        }
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ed-train-teacher: {e}");
            ExitCode::from(1)
        }
    }
}
