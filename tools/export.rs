//! ed-export: a trained model file → the single-file engine and an ONNX model. See `--help`.
use edgedistill::engine::export::{ExportOptions, default_out_dir, export};
use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "usage: ed-export --model DIR_OR_FILE [--format engine,onnx] [--precision fp32]
                 [--out DIR] [--imgsz S] [--conf 0.25] [--iou 0.7] [--max-det 300]

Captures the trained student (model file or run directory; BN folded) at its training size
(or --imgsz) and writes, into DIR (default: optimized/ in the run directory):
  model_fp32.engine    the engine file (spec: docs/ENGINE.md): ed-predict, ed-eval and
                       ed-bench take it as --model
  model.onnx           ONNX opset 17, input `images` [batch, 3, S, S], outputs `pred`
                       [batch, 4+nc+nm, anchors] and `proto` (seg), as ultralytics exports
  export_summary.json  sizes, parameter and op counts
--conf/--iou/--max-det are the engine's postprocess defaults. INT8 and fp16 engines are not
available in this build.";

fn parse() -> Result<(PathBuf, Option<PathBuf>, ExportOptions), String> {
    let mut it = std::env::args().skip(1);
    let (mut model, mut out) = (None, None);
    let mut o = ExportOptions::default();
    fn num<T: std::str::FromStr>(f: &str, v: &str) -> Result<T, String> {
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
            "--imgsz" => o.imgsz = num(&a, &val()?)?,
            "--conf" => o.postprocess.conf = num(&a, &val()?)?,
            "--iou" => o.postprocess.iou = num(&a, &val()?)?,
            "--max-det" => o.postprocess.max_det = num(&a, &val()?)?,
            "-h" | "--help" => return Err(String::new()),
            x => return Err(format!("unknown argument {x:?}")),
        }
    }
    Ok((model.ok_or("--model is required")?, out, o))
}

fn main() -> ExitCode {
    let (model, out, opts) = match parse() {
        Ok(v) => v,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("ed-export: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let out = out.unwrap_or_else(|| default_out_dir(&model));
    match export(&model, &out, &opts) {
        Ok(s) => {
            let ops: usize = s.ops.values().sum();
            println!(
                "exported {} ({} parameters, {ops} ops, input {}x{}) in {:.2}s",
                s.model.display(),
                s.params,
                s.imgsz,
                s.imgsz,
                s.seconds
            );
            for f in [&s.engine, &s.onnx].into_iter().flatten() {
                println!("  {} ({:.2} MB)", f.path.display(), f.bytes as f64 / 1e6);
            }
            println!("  {}", out.join("export_summary.json").display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ed-export: {e}");
            ExitCode::from(1)
        }
    }
}
