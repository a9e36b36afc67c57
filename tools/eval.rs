//! ed-eval: evaluate a COCO results file against COCO ground truth. Prints pycocotools'
//! summary (exactly its 12 lines per IoU type) and the ultralytics-style numbers, and
//! writes metrics.json, per_image.jsonl and a self-contained report.html. With `--model` it
//! first predicts the dataset's images with a model file (ultralytics val settings) and
//! evaluates that. See `--help`.
use edgedistill::data::Coco;
use edgedistill::data::classes::ClassMap;
use edgedistill::data::image::load_rgb;
use edgedistill::data::preprocess::grounding_dino::GroundingDinoResize;
use edgedistill::engine::runtime::load_detector_on;
use edgedistill::eval::coco_bridge::image_evals;
use edgedistill::eval::cocoeval::{CocoEvalResult, IouType, evaluate};
use edgedistill::eval::grounding_dino_eval::predict_grounding_dino;
use edgedistill::eval::metrics::{self, DetectionMetrics, EvalOptions, ImageEval};
use edgedistill::eval::plot::{ImageTile, Overlay, OverlayKind};
use edgedistill::eval::report::{
    ConfusionMatrix, CurveSet, NamedCurve, ReportInput, Table, write_report,
};
use edgedistill::eval::results::Results;
use edgedistill::eval::results_write::{predict_coco, write_results};
use edgedistill::io::atomic::write_atomic;
use edgedistill::io::{StateDict, apply_adapter, load_adapter};
use edgedistill::models::bert::BertTokenizer;
use edgedistill::models::config_json::read_config;
use edgedistill::models::grounding_dino::{
    ClassPrompt, GroundingDino, GroundingDinoConfig, Thresholds,
};
use edgedistill::models::yolov8::model_file::resolve_model_path;
use edgedistill::models::yolov8::postprocess::{Binarize, NmsConfig};
use edgedistill::{Error, Result};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const USAGE: &str = "usage: ed-eval --gt gt.json --results dt.json [--iou-type bbox|segm|both]
               [--out DIR] [--images DIR] [--metrics metrics.jsonl] [--tiles N]
       ed-eval --model DIR_OR_FILE --data val.json --images DIR [--conf 0.001] [--iou 0.7]
               [--max-det 300] [--batch 4] [--device cpu|cuda|cuda:N]
               [same options as above but --results]
       ed-eval --gdino DIR [--adapter DIR] --data val.json --images DIR [--gd-size 800]
               [--gd-max-size 1333] [--box-threshold 0] [--text-threshold 0] [--out DIR]

Evaluates COCO results against COCO ground truth: pycocotools' COCOeval (printed exactly as
pycocotools prints it) and ultralytics' P/R/F1/mAP with the confusion matrix. Writes
metrics.json, per_image.jsonl and report.html into DIR (default: <results>_eval beside the
results). --images DIR adds a grid of predictions over the first N images (default 12);
--metrics adds training curves from a metrics.jsonl. Default --iou-type: both when the
results carry masks, else bbox.

--model mode (--data is --gt) predicts every image of val.json (file_name relative to
--images; one that is missing or does not decode stops the run, naming it) with the model
file, run directory or engine file (ed-export), letterboxed square at the model's imgsz, NMS as ultralytics' val
(conf 0.001, iou 0.7, max_det 300), masks binarised by truncation as its validator, writes DIR/predictions.json and evaluates it. Default
DIR there: eval/ beside the model file. --device cuda runs an engine file on the GPU.

--gdino mode evaluates a Grounding DINO teacher (a transformers folder: config.json,
model.safetensors, vocab.txt), with a PEFT LoRA adapter folder when --adapter is given:
every image is prompted with val.json's class names (\"a. b. c.\"), each query gives its
best class scored by the max sigmoid over the class's tokens; predictions.json goes to
DIR (default eval/ in the adapter or model folder) and is evaluated (bbox).";

/// `--gdino` mode: the teacher folder, its adapter, resize and thresholds.
#[derive(Clone)]
struct Gdino {
    dir: PathBuf,
    adapter: Option<PathBuf>,
    resize: GroundingDinoResize,
    th: Thresholds,
}

struct Args {
    gdino: Option<Gdino>,
    gt: PathBuf,
    results: PathBuf,
    /// `--model` mode: the model and its NMS settings (results are then written, not read).
    model: Option<(PathBuf, NmsConfig, usize)>,
    device: edgedistill::Device,
    iou: Option<String>,
    out: Option<PathBuf>,
    images: Option<PathBuf>,
    metrics: Option<PathBuf>,
    tiles: usize,
}

fn parse_args() -> std::result::Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let (mut gt, mut results, mut iou, mut out, mut images, mut metrics, mut tiles) =
        (None, None, None, None, None, None, 12);
    let (mut model, mut batch) = (None::<PathBuf>, 4usize);
    let mut device = edgedistill::Device::Cpu;
    let (mut gdino, mut adapter) = (None::<PathBuf>, None::<PathBuf>);
    let mut resize = GroundingDinoResize::default();
    let mut th = Thresholds {
        box_threshold: 0.0,
        text_threshold: 0.0,
    };
    // ultralytics' validator settings.
    let mut nms = NmsConfig {
        conf: 0.001,
        ..NmsConfig::default()
    };
    fn num<T: std::str::FromStr>(flag: &str, v: &str) -> std::result::Result<T, String> {
        v.parse()
            .map_err(|_| format!("{flag} {v:?} is not a valid number"))
    }
    while let Some(a) = it.next() {
        let mut val = || it.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--gt" | "--data" => gt = Some(PathBuf::from(val()?)),
            "--model" => model = Some(PathBuf::from(val()?)),
            "--gdino" => gdino = Some(PathBuf::from(val()?)),
            "--adapter" => adapter = Some(PathBuf::from(val()?)),
            "--gd-size" => resize.shortest_edge = num(&a, &val()?)?,
            "--gd-max-size" => resize.longest_edge = num(&a, &val()?)?,
            "--box-threshold" => th.box_threshold = num(&a, &val()?)?,
            "--text-threshold" => th.text_threshold = num(&a, &val()?)?,
            "--conf" => nms.conf = num(&a, &val()?)?,
            "--iou" => nms.iou = num(&a, &val()?)?,
            "--max-det" => nms.max_det = num(&a, &val()?)?,
            "--batch" => batch = num::<usize>(&a, &val()?)?.max(1),
            "--device" => device = val()?.parse()?,
            "--results" => results = Some(PathBuf::from(val()?)),
            "--iou-type" => iou = Some(val()?),
            "--out" => out = Some(PathBuf::from(val()?)),
            "--images" => images = Some(PathBuf::from(val()?)),
            "--metrics" => metrics = Some(PathBuf::from(val()?)),
            "--tiles" => {
                let v = val()?;
                tiles = v
                    .parse()
                    .map_err(|_| format!("--tiles {v:?} is not a whole number"))?;
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let gt = gt.ok_or("--gt (or --data) is required")?;
    let gdino = gdino.map(|dir| Gdino {
        dir,
        adapter,
        resize,
        th,
    });
    if gdino.is_some() && (model.is_some() || results.is_some() || images.is_none()) {
        return Err("--gdino needs --images and excludes --model and --results".into());
    }
    let (results, model) = match model {
        None if gdino.is_some() => (PathBuf::new(), None),
        None => (results.ok_or("--results (or --model) is required")?, None),
        Some(m) => {
            if results.is_some() {
                return Err("--model and --results exclude each other".into());
            }
            if images.is_none() {
                return Err("--model needs --images".into());
            }
            // Filled in by `predict_dataset` once the output directory is known.
            (PathBuf::new(), Some((m, nms, batch)))
        }
    };
    Ok(Args {
        gdino,
        gt,
        results,
        model,
        device,
        iou,
        out,
        images,
        metrics,
        tiles,
    })
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("ed-eval: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let mut args = args;
    if let Err(e) = predict_dataset(&mut args) {
        eprintln!("ed-eval: {e}");
        return ExitCode::from(1);
    }
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ed-eval: {e}");
            ExitCode::from(1)
        }
    }
}

const STAT_NAMES: [&str; 12] = [
    "AP",
    "AP50",
    "AP75",
    "AP_small",
    "AP_medium",
    "AP_large",
    "AR1",
    "AR10",
    "AR100",
    "AR_small",
    "AR_medium",
    "AR_large",
];

fn run(args: &Args) -> Result<()> {
    let gt_name = args.gt.display().to_string();
    let dt_name = args.results.display().to_string();
    let gt = Coco::read_strict(&args.gt)?;
    let dt = Results::read(&args.results, &gt)?;
    let has_masks = !dt.detections.is_empty() && dt.detections.iter().all(|d| d.mask.is_some());
    let types: Vec<IouType> = match args.iou.as_deref() {
        None if has_masks => vec![IouType::Bbox, IouType::Segm],
        None => vec![IouType::Bbox],
        Some("both") => vec![IouType::Bbox, IouType::Segm],
        Some(s) => vec![IouType::parse(s)?],
    };
    let segm = types.contains(&IouType::Segm);
    if segm {
        dt.masks_for("segm evaluation")?;
    }

    let mut coco_json = serde_json::Map::new();
    let mut coco_results: Vec<(IouType, CocoEvalResult)> = Vec::new();
    for &t in &types {
        let r = evaluate(&gt, &dt, t)?;
        println!("COCOeval iouType={}", t.as_str());
        print!("{}", r.summary_text());
        coco_json.insert(t.as_str().into(), coco_to_json(&r));
        coco_results.push((t, r));
    }

    let (images, classes) = image_evals(&gt, &dt, &dt_name, segm)?;
    let mut ev = metrics::evaluate(&images, classes.len(), &EvalOptions::default())?;
    add_losses(args, &gt, &mut ev)?;
    print_ultralytics("B", &ev.boxes);
    if let Some(m) = &ev.masks {
        print_ultralytics("M", m);
    }

    let out = args.out.clone().unwrap_or_else(|| {
        let stem = args
            .results
            .file_stem()
            .map_or("results".into(), |s| s.to_string_lossy().into_owned());
        args.results.with_file_name(format!("{stem}_eval"))
    });
    std::fs::create_dir_all(&out).map_err(|source| Error::Io {
        path: out.clone(),
        source,
    })?;
    let metrics_json = json!({
        "gt": gt_name,
        "results": dt_name,
        "coco": coco_json,
        "ultralytics": ev,
    });
    let bytes = serde_json::to_vec_pretty(&metrics_json).map_err(|e| Error::msg(e.to_string()))?;
    let mpath = out.join("metrics.json");
    write_atomic(&mpath, |w| {
        w.write_all(&bytes).map_err(|source| Error::Io {
            path: mpath.clone(),
            source,
        })
    })?;
    metrics::write_jsonl(&out.join("per_image.jsonl"), &ev.per_image)?;

    let tiles = match &args.images {
        Some(dir) => tiles(&gt, &images, &classes, dir, args.tiles)?,
        None => Vec::new(),
    };
    let report = report_input(args, &coco_results, &ev, &classes, tiles);
    let rendered = write_report(&out.join("report.html"), &report)?;
    for p in &rendered.problems {
        eprintln!("ed-eval: report: {p}");
    }
    println!(
        "wrote {}/{{metrics.json, per_image.jsonl, report.html}}",
        out.display()
    );
    Ok(())
}

fn coco_to_json(r: &CocoEvalResult) -> Value {
    let stats: serde_json::Map<String, Value> = STAT_NAMES
        .iter()
        .zip(r.stats)
        .map(|(n, v)| (n.to_string(), json!(v)))
        .collect();
    let per_class: Vec<Value> = r
        .per_class_ap
        .iter()
        .map(|c| json!({"category_id": c.category_id, "AP": c.ap, "AP50": c.ap50}))
        .collect();
    json!({"stats": stats, "per_class": per_class})
}

fn print_ultralytics(tag: &str, m: &DetectionMetrics) {
    println!(
        "ultralytics ({tag}): P {:.4}  R {:.4}  mAP50 {:.4}  mAP50-95 {:.4}  (best mean-F1 confidence {:.3})",
        m.mp, m.mr, m.map50, m.map, m.best_conf
    );
}

fn report_input(
    args: &Args,
    coco: &[(IouType, CocoEvalResult)],
    ev: &metrics::Evaluation,
    classes: &ClassMap,
    predictions: Vec<ImageTile>,
) -> ReportInput {
    let mut stats = Vec::new();
    let mut tables = Vec::new();
    for (t, r) in coco {
        for (n, v) in STAT_NAMES.iter().zip(r.stats).take(3) {
            stats.push((format!("COCO {} {n}", t.as_str()), v));
        }
        tables.push(Table {
            title: format!("Per-class AP, COCOeval {}", t.as_str()),
            columns: vec!["AP50-95".into(), "AP50".into()],
            rows: r
                .per_class_ap
                .iter()
                .map(|c| {
                    let name = classes
                        .index(c.category_id)
                        .map_or("?", |i| classes.name(i));
                    (name.to_string(), vec![c.ap, c.ap50])
                })
                .collect(),
        });
    }
    let mut curves = Vec::new();
    for (tag, task, m) in [
        ("B", "box", Some(&ev.boxes)),
        ("M", "mask", ev.masks.as_ref()),
    ] {
        let Some(m) = m else { continue };
        stats.extend([
            (format!("precision({tag})"), m.mp),
            (format!("recall({tag})"), m.mr),
            (format!("mAP50({tag})"), m.map50),
            (format!("mAP50-95({tag})"), m.map),
        ]);
        let named = |rows: &[Vec<f64>]| -> Vec<NamedCurve> {
            m.classes
                .iter()
                .zip(rows)
                .map(|(&c, y)| NamedCurve {
                    name: classes.name(c).to_string(),
                    y: y.clone(),
                })
                .collect()
        };
        curves.push(CurveSet::precision_recall(
            task,
            m.curves.px.clone(),
            named(&m.curves.pr),
            m.map50,
        ));
        curves.push(CurveSet::f1_confidence(
            task,
            m.curves.px.clone(),
            named(&m.curves.f1),
        ));
        tables.push(Table {
            title: format!("Per-class, ultralytics ({task})"),
            columns: vec![
                "P".into(),
                "R".into(),
                "AP50".into(),
                "AP50-95".into(),
                "instances".into(),
            ],
            rows: m
                .classes
                .iter()
                .enumerate()
                .map(|(i, &c)| {
                    let n = ev.nt_per_class.get(c).copied().unwrap_or(0) as f64;
                    (
                        classes.name(c).to_string(),
                        vec![m.p[i], m.r[i], m.ap50[i], m.ap50_95[i], n],
                    )
                })
                .collect(),
        });
    }
    let nc = ev.confusion.nc;
    let mut names: Vec<String> = (0..nc).map(|c| classes.name(c).to_string()).collect();
    names.push("background".into());
    let counts = (0..=nc)
        .map(|p| (0..=nc).map(|t| ev.confusion.get(p, t)).collect())
        .collect();
    ReportInput {
        title: format!("{} on {}", args.results.display(), args.gt.display()),
        stats,
        tables,
        curves,
        confusion: vec![ConfusionMatrix {
            title: "Confusion matrix (box)".into(),
            names,
            counts,
        }],
        metrics_jsonl: args.metrics.clone(),
        predictions,
        config: Some(json!({
            "gt": args.gt.display().to_string(),
            "results": args.results.display().to_string(),
            "iou_type": args.iou.clone().unwrap_or_else(|| "auto".into()),
            "images": args.images.as_ref().map(|p| p.display().to_string()),
            "model": args.model.as_ref().map(|(m, nms, _)| json!({
                "path": m.display().to_string(),
                "conf": nms.conf,
                "iou": nms.iou,
                "max_det": nms.max_det,
            })),
        })),
        ..ReportInput::default()
    }
}

/// The first `n` ground-truth images with their boxes, masks and predictions above 0.25.
fn tiles(
    gt: &Coco,
    images: &[ImageEval],
    classes: &ClassMap,
    dir: &Path,
    n: usize,
) -> Result<Vec<ImageTile>> {
    let mut gt_images: Vec<_> = gt.images.iter().collect();
    gt_images.sort_by_key(|im| im.id);
    let mut out = Vec::new();
    for (im, ev) in gt_images.iter().zip(images).take(n) {
        let image = load_rgb(dir.join(&im.file_name))?;
        let xywh = |b: [f64; 4]| [b[0], b[1], b[2] - b[0], b[3] - b[1]];
        let mut overlays: Vec<Overlay> = ev
            .gt
            .iter()
            .map(|g| Overlay {
                kind: OverlayKind::Truth,
                class: g.class,
                label: classes.name(g.class).to_string(),
                score: None,
                bbox: xywh(g.bbox),
                mask: g.mask.as_ref().map(|m| m.to_gray()),
            })
            .collect();
        overlays.extend(ev.pred.iter().filter(|p| p.score >= 0.25).map(|p| Overlay {
            kind: OverlayKind::Prediction,
            class: p.class,
            label: classes.name(p.class).to_string(),
            score: Some(p.score),
            bbox: xywh(p.bbox),
            mask: p.mask.as_ref().map(|m| m.to_gray()),
        }));
        out.push(ImageTile {
            name: ev.name.clone(),
            image,
            overlays,
        });
    }
    Ok(out)
}

/// `--model` mode: each image's loss components (box, seg, cls, dfl; ultralytics'
/// validation loss split by image) into its per-image record. An engine holds only the
/// inference graph, so engine runs carry no losses.
fn add_losses(args: &Args, gt: &Coco, ev: &mut metrics::Evaluation) -> Result<()> {
    let (Some((model, _, _)), Some(dir)) = (&args.model, &args.images) else {
        return Ok(());
    };
    if edgedistill::engine::runtime::is_engine_file(model) {
        return Ok(());
    }
    let (model, meta) = edgedistill::models::yolov8::load_model(model)?;
    let ds =
        edgedistill::data::dataset::Dataset::from_coco(gt, dir, &args.gt.display().to_string())?;
    let losses = edgedistill::train::yolo_val::per_image_losses(
        &model,
        std::sync::Arc::new(ds),
        meta.imgsz,
        &edgedistill::models::yolov8::LossGains::default(),
    )?;
    // image_evals lists the ground-truth images in ascending id, as per_image does.
    let mut ids: Vec<u64> = gt.images.iter().map(|im| im.id).collect();
    ids.sort_unstable();
    for (rec, id) in ev.per_image.iter_mut().zip(&ids) {
        rec.loss = losses.get(id).cloned();
    }
    Ok(())
}

/// `--model` mode: predict every image of the ground truth (sorted by id) with the model,
/// write OUT/predictions.json and point `args` at it. Nothing to do without `--model`.
/// `--gdino` mode: predict the dataset with the teacher and point `args` at the results.
fn predict_gdino(args: &mut Args, g: &Gdino) -> Result<()> {
    let images = args
        .images
        .clone()
        .ok_or_else(|| Error::msg("--gdino needs --images"))?;
    let gt = Coco::read_strict(&args.gt)?;
    let cfg_path = g.dir.join("config.json");
    let cfg = GroundingDinoConfig::from_json(&read_config(&cfg_path)?)
        .map_err(|e| e.context(cfg_path.display().to_string()))?;
    let w = g.dir.join("model.safetensors");
    let sd = StateDict::open(&w)?;
    let model = match &g.adapter {
        None => GroundingDino::from_state_dict(&cfg, &sd, &w.display().to_string())?,
        Some(a) => {
            let adapter = load_adapter(a)?;
            // The adapter's A/B replace the plan's init, so the seed does not matter.
            let (m, _) = GroundingDino::from_state_dict_lora(
                &cfg,
                &sd,
                &w.display().to_string(),
                Some((adapter.config.clone(), 0)),
            )?;
            apply_adapter(&m, &adapter)?;
            m
        }
    };
    let tok = BertTokenizer::from_vocab_file(g.dir.join("vocab.txt"))?;
    let prompt = ClassPrompt::new(&tok, &ClassMap::from_coco(&gt).names, cfg.max_text_len)
        .map_err(|e| e.context(args.gt.display().to_string()))?;
    println!("prompt: {:?}", prompt.text);
    let records = predict_grounding_dino(&model, &prompt, &gt, &images, &g.resize, g.th)?;
    let out = args.out.clone().unwrap_or_else(|| {
        g.adapter
            .clone()
            .unwrap_or_else(|| g.dir.clone())
            .join("eval")
    });
    std::fs::create_dir_all(&out).map_err(|source| Error::Io {
        path: out.clone(),
        source,
    })?;
    let path = out.join("predictions.json");
    write_results(&path, &records)?;
    println!(
        "predicted {} images: {} detections -> {}",
        gt.images.len(),
        records.len(),
        path.display()
    );
    args.out = Some(out);
    args.results = path;
    args.iou = Some("bbox".into());
    Ok(())
}

fn predict_dataset(args: &mut Args) -> Result<()> {
    if let Some(g) = args.gdino.clone() {
        return predict_gdino(args, &g);
    }
    let Some((model, nms, batch)) = args.model.clone() else {
        return Ok(());
    };
    let dir = args
        .images
        .clone()
        .ok_or_else(|| Error::msg("--model needs --images"))?;
    let gt = Coco::read_strict(&args.gt)?;
    let model_path = resolve_model_path(&model)?;
    // Masks binarised by truncation, as ultralytics' segment validator's `scale_preds`
    // does before writing its COCO JSON.
    let mut predictor = load_detector_on(&model_path, args.device)?;
    predictor.configure(nms, Binarize::Truncate);
    let out = args.out.clone().unwrap_or_else(|| {
        model_path
            .parent()
            .map_or_else(|| PathBuf::from("eval"), |p| p.join("eval"))
    });
    std::fs::create_dir_all(&out).map_err(|source| Error::Io {
        path: out.clone(),
        source,
    })?;
    let records = predict_coco(
        predictor.as_ref(),
        &gt,
        &args.gt.display().to_string(),
        &dir,
        batch,
    )?;
    let path = out.join("predictions.json");
    write_results(&path, &records)?;
    println!(
        "predicted {} images with {}: {} detections -> {}",
        gt.images.len(),
        model_path.display(),
        records.len(),
        path.display()
    );
    args.out = Some(out);
    args.results = path;
    Ok(())
}
