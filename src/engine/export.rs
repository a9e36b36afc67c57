//! `ed-export`'s work as a library call (ed-demo runs it too): load the trained model file,
//! capture its graph at the training size, write the engine and the ONNX model, and
//! report what was written.
use super::capture::capture_yolo;
use super::format::{EngineMeta, ModelInfo, PostprocessSpec, write_engine};
use super::onnx::{OnnxOptions, write_onnx};
use crate::models::yolov8::load_model;
use crate::models::yolov8::model_file::resolve_model_path;
use crate::{Error, Result};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The numeric format of an engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precision {
    Fp32,
}

impl std::str::FromStr for Precision {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "fp32" => Ok(Precision::Fp32),
            "int8" | "fp16" => Err(format!(
                "--precision {s}: not available yet (this build exports fp32 engines; INT8 calibration is still to come)"
            )),
            _ => Err(format!("--precision {s:?}: expected fp32")),
        }
    }
}

/// What to export.
#[derive(Clone, Debug)]
pub struct ExportOptions {
    pub engine: bool,
    pub onnx: bool,
    pub precision: Precision,
    /// Input side; 0 takes the model file's training size.
    pub imgsz: usize,
    pub postprocess: PostprocessSpec,
}

impl Default for ExportOptions {
    fn default() -> Self {
        ExportOptions {
            engine: true,
            onnx: true,
            precision: Precision::Fp32,
            imgsz: 0,
            postprocess: PostprocessSpec {
                conf: 0.25,
                iou: 0.7,
                max_det: 300,
                mask_threshold: 0.5,
            },
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct ExportedFile {
    pub path: PathBuf,
    pub bytes: u64,
}

/// What `export` wrote (also written as `export_summary.json`).
#[derive(Clone, Debug, Serialize)]
pub struct ExportSummary {
    pub model: PathBuf,
    pub imgsz: usize,
    pub precision: String,
    pub params: usize,
    /// Node count by op kind.
    pub ops: BTreeMap<String, usize>,
    pub engine: Option<ExportedFile>,
    pub onnx: Option<ExportedFile>,
    pub seconds: f64,
}

/// Default output folder: `optimized/` in the model's run directory (the folder above
/// `weights/`), else beside the model file.
pub fn default_out_dir(model: &Path) -> PathBuf {
    let file = resolve_model_path(model).unwrap_or_else(|_| model.to_path_buf());
    let parent = file.parent().unwrap_or(Path::new("."));
    let run = if parent.file_name().is_some_and(|n| n == "weights") {
        parent.parent().unwrap_or(parent)
    } else {
        parent
    };
    run.join("optimized")
}

/// Export `model` (a model file or run directory) into `out`.
pub fn export(model: &Path, out: &Path, opts: &ExportOptions) -> Result<ExportSummary> {
    let t0 = std::time::Instant::now();
    let path = resolve_model_path(model)?;
    let (m, meta) = load_model(&path)?;
    let imgsz = if opts.imgsz == 0 {
        meta.imgsz as usize
    } else {
        opts.imgsz
    };
    let graph = capture_yolo(&m, imgsz).map_err(|e| e.context(path.display().to_string()))?;
    std::fs::create_dir_all(out).map_err(|source| Error::Io {
        path: out.to_path_buf(),
        source,
    })?;
    let mut ops = BTreeMap::new();
    for n in &graph.nodes {
        *ops.entry(n.op.kind().to_string()).or_insert(0) += 1;
    }
    let engine = if opts.engine {
        let p = out.join("model_fp32.engine");
        let em = EngineMeta {
            model: ModelInfo {
                family: "yolov8".into(),
                task: if m.is_seg() { "segment" } else { "detect" }.into(),
                nc: m.nc(),
                nm: m.nm(),
                reg_max: m.reg_max(),
                config: meta.config.clone(),
            },
            names: meta.names.clone(),
            category_ids: meta.category_ids.clone(),
            postprocess: opts.postprocess.clone(),
        };
        let bytes = write_engine(&p, &graph, &em)?;
        Some(ExportedFile { path: p, bytes })
    } else {
        None
    };
    let onnx = if opts.onnx {
        let p = out.join("model.onnx");
        let doc = format!(
            "edgedistill YOLOv8 from {}; classes: {}",
            path.display(),
            meta.names.join(", ")
        );
        write_onnx(
            &p,
            &graph,
            &OnnxOptions {
                doc,
                ..Default::default()
            },
        )?;
        let bytes = std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
        Some(ExportedFile { path: p, bytes })
    } else {
        None
    };
    let summary = ExportSummary {
        model: path,
        imgsz,
        precision: match opts.precision {
            Precision::Fp32 => "fp32".into(),
        },
        params: graph.num_params(),
        ops,
        engine,
        onnx,
        seconds: t0.elapsed().as_secs_f64(),
    };
    let json = serde_json::to_vec_pretty(&summary).map_err(|e| Error::msg(e.to_string()))?;
    let sp = out.join("export_summary.json");
    crate::io::atomic::write_atomic(&sp, |w| {
        w.write_all(&json).map_err(|source| Error::Io {
            path: sp.clone(),
            source,
        })
    })?;
    Ok(summary)
}
