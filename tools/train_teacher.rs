//! ed-train-teacher: fine-tune the teachers the dataset calls for. Boxes (always) →
//! Grounding DINO with LoRA on the decoder, prompted with the class names (`--gdino`);
//! masks on every annotation → SAM with LoRA on the mask decoder, box prompts from the
//! ground truth (`--sam`); both when both are given. Writes PEFT adapters (which PEFT's
//! `PeftModel.from_pretrained` loads onto transformers' models), resumable checkpoints,
//! results.csv and metrics.jsonl.
use edgedistill::data::Coco;
use edgedistill::data::dataset::Dataset;
use edgedistill::models::bert::BertTokenizer;
use edgedistill::models::grounding_dino::{ClassPrompt, GroundingDino, GroundingDinoConfig};
use edgedistill::models::sam::{SamConfig, SamModel};
use edgedistill::nn::TargetModules;
use edgedistill::train::gd_teacher::{
    GdOptions, GdTune, default_lora as gd_default_lora, train_grounding_dino,
};
use edgedistill::train::sam_teacher::{TeacherOptions, Tune, train_teacher};
use edgedistill::train::{FitStatus, install_signal_handlers};
use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str =
    "usage: ed-train-teacher --train train.json --val val.json --images DIR [--gdino DIR] [--sam SAM]
       [--out runs/teacher] [--epochs 10] [--batch 1] [--lr0 1e-4] [--lrf 0.01]
       [--warmup-epochs 1] [--clip 0.1] [--lora-r 8] [--lora-alpha 16] [--lora-dropout 0.05]
       [--targets REGEX | --target-names a,b,c] [--full-decoder] [--prompts 16]
       [--jitter 0.1] [--max-jitter-px 20] [--cache DIR] [--seed 0] [--threads N] [--resume]

GDINO is a transformers Grounding DINO folder (config.json, model.safetensors, vocab.txt,
e.g. IDEA-Research/grounding-dino-tiny); it trains LoRA r 16 / alpha 32 / dropout 0.1 on the
decoder's attention projections into OUT/grounding_dino_lora/ (adapter_config.json +
adapter_model.safetensors, weights/, results.csv, metrics.jsonl, encoder_cache/), with
[--gd-size 800] [--gd-max-size 1333] setting the resize.
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
    sam: Option<PathBuf>,
    sam_config: Option<PathBuf>,
    gdino: Option<PathBuf>,
    gd: GdOptions,
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
    let mut gdino = None;
    let mut gd = GdOptions::default();
    let mut gd_lora = gd_default_lora();
    let (mut r, mut alpha, mut dropout, mut targets) = (None, None, None, None);
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
            "--lora-r" => r = Some(num!()),
            "--lora-alpha" => alpha = Some(num!()),
            "--lora-dropout" => dropout = Some(num!()),
            "--targets" => targets = Some(TargetModules::Regex(v()?)),
            "--target-names" => {
                targets = Some(TargetModules::Names(
                    v()?.split(',').map(|s| s.trim().to_string()).collect(),
                ))
            }
            "--gdino" => gdino = Some(PathBuf::from(v()?)),
            "--gd-size" => gd.resize.shortest_edge = num!(),
            "--gd-max-size" => gd.resize.longest_edge = num!(),
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
    // LoRA flags apply to both teachers; each keeps its own defaults otherwise.
    for l in [&mut lora, &mut gd_lora] {
        if let Some(x) = r {
            l.r = x;
        }
        if let Some(x) = alpha {
            l.alpha = x;
        }
        if let Some(x) = dropout {
            l.dropout = x;
        }
        if let Some(x) = &targets {
            l.targets = x.clone();
        }
    }
    let mut gtrain = gd.train.clone();
    gtrain.epochs = o.train.epochs;
    gtrain.batch = o.train.batch;
    gtrain.nbs = o.train.batch;
    gtrain.lr0 = o.train.lr0;
    gtrain.lrf = o.train.lrf;
    gtrain.warmup_epochs = o.train.warmup_epochs;
    gtrain.max_grad_norm = o.train.max_grad_norm;
    gtrain.seed = o.train.seed;
    gd.train = gtrain;
    gd.tune = GdTune::Lora(gd_lora);
    gd.lora_seed = o.train.seed;
    gd.resume = o.resume;
    o.tune = if full {
        Tune::FullDecoder
    } else {
        Tune::Lora(lora)
    };
    Ok(Args {
        train: train.ok_or("--train is required")?,
        val: val.ok_or("--val is required")?,
        images: images.ok_or("--images is required")?,
        sam,
        sam_config,
        gdino,
        gd,
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
    let sam = a.sam.as_ref().expect("checked by run");
    let (cfg_path, weights) = if sam.is_dir() {
        (sam.join("config.json"), sam.join("model.safetensors"))
    } else {
        let c = a
            .sam_config
            .clone()
            .unwrap_or_else(|| sam.with_file_name("config.json"));
        (c, sam.clone())
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
    let want_sam = tr.with_masks && a.sam.is_some();
    if a.gdino.is_none() && !want_sam {
        return Err(edgedistill::Error::msg(if tr.with_masks {
            "give --gdino DIR (boxes → Grounding DINO) and/or --sam SAM (masks → SAM)".to_string()
        } else {
            format!(
                "{}: not every annotation has a mask, so the teacher is Grounding DINO: give \
                 --gdino DIR (config.json, model.safetensors, vocab.txt)",
                a.train.display()
            )
        }));
    }
    if let Some(dir) = &a.gdino {
        let status = run_gdino(a, dir, (&tr, &tc), (&va, &vc))?;
        if status == FitStatus::Interrupted || !want_sam {
            return Ok(status);
        }
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

fn run_gdino(
    a: &Args,
    dir: &std::path::Path,
    train: (&Dataset, &Coco),
    val: (&Dataset, &Coco),
) -> edgedistill::Result<FitStatus> {
    let GdTune::Lora(lora) = &a.gd.tune else {
        unreachable!("the tool trains LoRA adapters")
    };
    let cfg_path = dir.join("config.json");
    let v = edgedistill::models::config_json::read_config(&cfg_path)?;
    let cfg = GroundingDinoConfig::from_json(&v)
        .map_err(|e| e.context(cfg_path.display().to_string()))?;
    let w = dir.join("model.safetensors");
    let sd = edgedistill::io::StateDict::open(&w)?;
    let (model, _) = GroundingDino::from_state_dict_lora(
        &cfg,
        &sd,
        &w.display().to_string(),
        Some((lora.clone(), a.gd.lora_seed)),
    )?;
    let tok = BertTokenizer::from_vocab_file(dir.join("vocab.txt"))?;
    let prompt = ClassPrompt::new(&tok, &train.0.classes.names, cfg.max_text_len)
        .map_err(|e| e.context(a.train.display().to_string()))?;
    println!("Grounding DINO prompt: {:?}", prompt.text);
    let out = a.out.join("grounding_dino_lora");
    let r = train_grounding_dino(&model, prompt, train, val, &a.images, &out, &a.gd)?;
    println!("{}", r.params);
    println!(
        "Grounding DINO validation box mAP50: {:.4} before, {:.4} best ({} epochs, {:?})",
        r.map50_before, r.map50_best, r.fit.epochs_completed, r.fit.status
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
