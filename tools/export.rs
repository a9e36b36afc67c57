//! ed-export: a trained model file → the single-file engine and an ONNX model. See `--help`.
use edgedistill::data::Coco;
use edgedistill::engine::Engine;
use edgedistill::engine::export::{ExportOptions, default_out_dir, export};
use edgedistill::eval::evaluate_detector;
use edgedistill::models::yolov8::Predictor;
use edgedistill::{Error, Result};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const USAGE: &str =
    "usage: ed-export --model DIR_OR_FILE [--format engine,onnx] [--precision fp32|int8]
                 [--calib CACHE] [--method entropy|percentile|minmax] [--keep-fp32 PATTERNS]
                 [--out DIR] [--imgsz S] [--conf 0.25] [--iou 0.7] [--max-det 300]
                 [--onnx-outputs postprocessed|raw] [--data val.json --images DIR]

Captures the trained student (model file or run directory; BN folded) at its training size
(or --imgsz) and writes, into DIR (default: optimized/ in the run directory):
  model_fp32.engine / model_int8.engine   the engine file (spec: docs/ENGINE.md); ed-predict,
                       ed-eval and ed-bench take it as --model
  model.onnx           ONNX opset 17. --onnx-outputs postprocessed (default): input `images`
                       [1, 3, S, S], outputs `boxes` [K, 4] (x1 y1 x2 y2, letterboxed input
                       pixels), `scores` [K], `class_ids` [K] int64, `masks` [K, S, S] bool
                       (seg): NMS and masks in the graph with --conf/--iou/--max-det.
                       --onnx-outputs raw: input [batch, 3, S, S], outputs `pred`
                       [batch, 4+nc+nm, anchors] and `proto` (seg), as ultralytics exports
  model_int8.onnx      (int8) the same with QuantizeLinear/DequantizeLinear pairs (QDQ)
  export_summary_<precision>.json   sizes, layers in INT8, op counts, accuracy
--precision int8 needs --calib (ed-calibrate's cache); --method picks the calibrator
(default: the cache's); --keep-fp32 is a comma list of node-name patterns (* wildcard)
kept in f32 (default: the head's last convs and the last prototype conv). With --data and
--images the exported engine and the fp32 model are evaluated (COCOeval) on that split and
the accuracy delta is printed and added to the summary. --conf/--iou/--max-det are the
engine's postprocess defaults (and the postprocessed ONNX models' fixed settings).";

struct Cli {
    model: PathBuf,
    out: Option<PathBuf>,
    opts: ExportOptions,
    /// Validation split to measure the accuracy delta on.
    eval: Option<(PathBuf, PathBuf)>,
}

fn parse() -> std::result::Result<Cli, String> {
    let mut it = std::env::args().skip(1);
    let (mut model, mut out, mut data, mut images) = (None, None, None, None);
    let mut o = ExportOptions::default();
    fn num<T: std::str::FromStr>(f: &str, v: &str) -> std::result::Result<T, String> {
        v.parse()
            .map_err(|_| format!("{f} {v:?} is not a valid number"))
    }
    while let Some(a) = it.next() {
        let mut val = || it.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--model" => model = Some(PathBuf::from(val()?)),
            "--out" => out = Some(PathBuf::from(val()?)),
            "--format" => {
                let v = val()?;
                (o.engine, o.onnx) = (false, false);
                for f in v.split(',') {
                    match f.trim() {
                        "engine" => o.engine = true,
                        "onnx" => o.onnx = true,
                        x => return Err(format!("--format: unknown format {x:?} (engine, onnx)")),
                    }
                }
            }
            "--precision" => o.precision = val()?.parse()?,
            "--calib" => o.calib = Some(PathBuf::from(val()?)),
            "--method" => o.method = Some(val()?.parse()?),
            "--keep-fp32" => {
                o.quant.keep_fp32 = val()?
                    .split(',')
                    .map(|p| p.trim().to_string())
                    .filter(|p| !p.is_empty())
                    .collect()
            }
            "--data" => data = Some(PathBuf::from(val()?)),
            "--images" => images = Some(PathBuf::from(val()?)),
            "--imgsz" => o.imgsz = num(&a, &val()?)?,
            "--conf" => o.postprocess.conf = num(&a, &val()?)?,
            "--iou" => o.postprocess.iou = num(&a, &val()?)?,
            "--max-det" => o.postprocess.max_det = num(&a, &val()?)?,
            "--onnx-outputs" => o.onnx_outputs = val()?.parse()?,
            "-h" | "--help" => return Err(String::new()),
            x => return Err(format!("unknown argument {x:?}")),
        }
    }
    let eval = match (data, images) {
        (Some(d), Some(i)) => Some((d, i)),
        (None, None) => None,
        _ => return Err("--data and --images go together".into()),
    };
    Ok(Cli {
        model: model.ok_or("--model is required")?,
        out,
        opts: o,
        eval,
    })
}

fn main() -> ExitCode {
    let cli = match parse() {
        Ok(v) => v,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("ed-export: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ed-export: {e}");
            ExitCode::from(1)
        }
    }
}

fn run(cli: &Cli) -> Result<()> {
    edgedistill::backend::cpu::alloc::tune_allocator();
    let out = cli
        .out
        .clone()
        .unwrap_or_else(|| default_out_dir(&cli.model));
    let s = export(&cli.model, &out, &cli.opts)?;
    let ops: usize = s.ops.values().sum();
    println!(
        "exported {} ({} parameters, {ops} ops, input {}x{}, {}) in {:.2}s",
        s.model.display(),
        s.params,
        s.imgsz,
        s.imgsz,
        s.precision,
        s.seconds
    );
    if let Some(q) = &s.int8 {
        println!(
            "  INT8: {} convs, {} kept in f32 ({}), {} calibration from {} images",
            q.layers.int8_layers.len(),
            q.layers.fp32_layers.len(),
            q.layers.fp32_layers.join(", "),
            q.method,
            q.calib_images
        );
    }
    for f in [&s.engine, &s.onnx, &s.onnx_int8].into_iter().flatten() {
        println!("  {} ({:.2} MB)", f.path.display(), f.bytes as f64 / 1e6);
    }
    if s.onnx.is_some() {
        println!("  ONNX outputs: {}", s.onnx_outputs);
    }
    if let Some(e) = &s.engine {
        println!(
            "  engine size {:.3}x the fp32 engine ({:.2} MB)",
            e.bytes as f64 / s.fp32_engine_bytes as f64,
            s.fp32_engine_bytes as f64 / 1e6
        );
    }
    let summary_path = out.join(format!("export_summary_{}.json", s.precision));
    if let (Some((data, images)), Some(e)) = (&cli.eval, &s.engine) {
        let acc = accuracy(&s.model, &e.path, data, images, &out)?;
        println!("{}", acc.text);
        let mut v: serde_json::Value =
            serde_json::to_value(&s).map_err(|e| Error::msg(e.to_string()))?;
        v["accuracy"] = acc.json;
        write_json(&summary_path, &v)?;
    }
    println!("  {}", summary_path.display());
    Ok(())
}

struct Accuracy {
    text: String,
    json: serde_json::Value,
}

/// COCOeval of the model file and of the engine on the same split, and their difference.
fn accuracy(
    model: &Path,
    engine: &Path,
    data: &Path,
    images: &Path,
    out: &Path,
) -> Result<Accuracy> {
    let gt = Coco::read_strict(data)?;
    let name = data.display().to_string();
    let mut base = Predictor::load(model)?;
    let (fb, _) = evaluate_detector(&mut base, &gt, &name, images, &out.join("eval_model"))?;
    let stem = engine
        .file_stem()
        .map_or("engine".into(), |s| s.to_string_lossy().into_owned());
    let mut eng = Engine::load(engine)?;
    let (fe, _) = evaluate_detector(
        &mut eng,
        &gt,
        &name,
        images,
        &out.join(format!("eval_{stem}")),
    )?;
    let d = |a: Option<f64>, b: Option<f64>| a.zip(b).map(|(a, b)| (a - b) * 100.0);
    let text = format!(
        "  accuracy on {name} (COCOeval AP50): model box {:.4} mask {}, engine box {:.4} mask {}; delta {:+.2} / {} points",
        fb.bbox_ap50,
        fb.segm_ap50.map_or("-".into(), |v| format!("{v:.4}")),
        fe.bbox_ap50,
        fe.segm_ap50.map_or("-".into(), |v| format!("{v:.4}")),
        (fe.bbox_ap50 - fb.bbox_ap50) * 100.0,
        d(fe.segm_ap50, fb.segm_ap50).map_or("-".into(), |v| format!("{v:+.2}")),
    );
    let json = serde_json::json!({"data": name, "model": fb, "engine": fe,
        "delta_points": {"bbox_ap50": (fe.bbox_ap50 - fb.bbox_ap50) * 100.0, "segm_ap50": d(fe.segm_ap50, fb.segm_ap50)}});
    Ok(Accuracy { text, json })
}

fn write_json(path: &Path, v: &serde_json::Value) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(v).map_err(|e| Error::msg(e.to_string()))?;
    edgedistill::io::atomic::write_atomic(path, |w| {
        w.write_all(&bytes).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })
    })
}
