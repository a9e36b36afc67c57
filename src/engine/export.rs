//! `ed-export`'s work as a library call (ed-demo runs it too): load the trained model file,
//! capture its graph at the training size, write the engine and the ONNX model, and
//! report what was written.
use super::capture::capture_yolo;
use super::format::{EngineMeta, ModelInfo, PostprocessSpec, engine_bytes, write_engine};
use super::onnx::{OnnxOptions, OnnxOutputs, write_onnx};
use super::quantize::{QuantOptions, QuantReport, quantize_graph};
use crate::models::yolov8::load_model;
use crate::models::yolov8::model_file::resolve_model_path;
use crate::quant::{CalibCache, Method};
use crate::{Error, Result};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The numeric format of an engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precision {
    Fp32,
    /// INT8 convolutions (a calibration cache gives the activation ranges).
    Int8,
}

impl std::str::FromStr for Precision {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "fp32" => Ok(Precision::Fp32),
            "int8" => Ok(Precision::Int8),
            "fp16" => Err(
                "--precision fp16: fp16 engines need the CUDA runtime, not available in this build"
                    .into(),
            ),
            _ => Err(format!("--precision {s:?}: expected fp32 or int8")),
        }
    }
}

impl Precision {
    pub fn as_str(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Int8 => "int8",
        }
    }
}

/// Which outputs the ONNX models (`model.onnx`, `model_int8.onnx`) have.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OnnxOutputKind {
    /// `boxes`, `scores`, `class_ids`, `masks` (batch 1), with `ExportOptions::postprocess`'s
    /// settings ([`OnnxOutputs::Postprocessed`]).
    #[default]
    Postprocessed,
    /// The head's `pred` and `proto` (free batch), as ultralytics exports.
    Raw,
}

impl std::str::FromStr for OnnxOutputKind {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "postprocessed" => Ok(OnnxOutputKind::Postprocessed),
            "raw" => Ok(OnnxOutputKind::Raw),
            _ => Err(format!(
                "--onnx-outputs {s:?}: expected postprocessed or raw"
            )),
        }
    }
}

impl OnnxOutputKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OnnxOutputKind::Postprocessed => "postprocessed",
            OnnxOutputKind::Raw => "raw",
        }
    }
}

/// What to export.
#[derive(Clone, Debug)]
pub struct ExportOptions {
    pub engine: bool,
    pub onnx: bool,
    /// The ONNX models' outputs (default postprocessed).
    pub onnx_outputs: OnnxOutputKind,
    pub precision: Precision,
    /// Input side; 0 takes the model file's training size.
    pub imgsz: usize,
    pub postprocess: PostprocessSpec,
    /// Calibration cache (ed-calibrate); needed for INT8.
    pub calib: Option<PathBuf>,
    /// Calibration method to take from the cache; None: the cache's default.
    pub method: Option<Method>,
    pub quant: QuantOptions,
}

impl Default for ExportOptions {
    fn default() -> Self {
        ExportOptions {
            engine: true,
            onnx: true,
            onnx_outputs: OnnxOutputKind::default(),
            precision: Precision::Fp32,
            imgsz: 0,
            postprocess: PostprocessSpec {
                conf: 0.25,
                iou: 0.7,
                max_det: 300,
                mask_threshold: 0.5,
            },
            calib: None,
            method: None,
            quant: QuantOptions::default(),
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct ExportedFile {
    pub path: PathBuf,
    pub bytes: u64,
}

/// What `export` wrote (also written as `export_summary_<precision>.json`).
#[derive(Clone, Debug, Serialize)]
pub struct ExportSummary {
    pub model: PathBuf,
    pub imgsz: usize,
    pub precision: String,
    pub params: usize,
    /// Node count by op kind.
    pub ops: BTreeMap<String, usize>,
    pub engine: Option<ExportedFile>,
    /// The fp32 ONNX model (always written with `onnx`).
    pub onnx: Option<ExportedFile>,
    /// `postprocessed` or `raw`: the ONNX models' outputs.
    pub onnx_outputs: String,
    /// The QDQ ONNX model (INT8 exports).
    pub onnx_int8: Option<ExportedFile>,
    /// Size of the fp32 engine of the same model (for the INT8 size ratio).
    pub fp32_engine_bytes: u64,
    pub int8: Option<Int8Summary>,
    pub seconds: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Int8Summary {
    pub calib: PathBuf,
    pub method: String,
    pub calib_images: usize,
    pub layers: QuantReport,
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
    let fp32_engine_bytes = engine_bytes(&graph, &em)?.len() as u64;
    // The graph the engine runs: as captured, or quantized with the cache's ranges.
    let (run_graph, int8) = match opts.precision {
        Precision::Fp32 => (graph.clone(), None),
        Precision::Int8 => {
            let cp = opts.calib.clone().ok_or_else(|| {
                Error::msg("--precision int8 needs --calib CACHE (written by ed-calibrate)")
            })?;
            let cache = CalibCache::read(&cp)?;
            let method = match opts.method {
                Some(m) => m,
                None => cache
                    .method
                    .parse()
                    .map_err(|e: String| Error::msg(format!("{}: method: {e}", cp.display())))?,
            };
            let amax = |v: &str| cache.amax(v, method);
            let (q, report) = quantize_graph(&graph, &amax, &opts.quant)?;
            let summary = Int8Summary {
                calib: cp,
                method: method.to_string(),
                calib_images: cache.num_images,
                layers: report,
            };
            (q, Some(summary))
        }
    };
    let tag = opts.precision.as_str();
    let write = |name: &str, f: &dyn Fn(&Path) -> Result<()>| -> Result<ExportedFile> {
        let p = out.join(name);
        f(&p)?;
        let bytes = std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
        Ok(ExportedFile { path: p, bytes })
    };
    let engine = if opts.engine {
        let name = format!("model_{tag}.engine");
        Some(write(&name, &|p| {
            write_engine(p, &run_graph, &em).map(|_| ())
        })?)
    } else {
        None
    };
    let doc = format!(
        "edgedistill YOLOv8 from {}; classes: {}",
        path.display(),
        meta.names.join(", ")
    );
    let outputs = match opts.onnx_outputs {
        OnnxOutputKind::Postprocessed => OnnxOutputs::postprocessed(&opts.postprocess),
        OnnxOutputKind::Raw => OnnxOutputs::Raw,
    };
    let oo = OnnxOptions {
        doc,
        outputs,
        ..Default::default()
    };
    let onnx = if opts.onnx {
        Some(write("model.onnx", &|p| write_onnx(p, &graph, &oo))?)
    } else {
        None
    };
    let onnx_int8 = if opts.onnx && int8.is_some() {
        Some(write("model_int8.onnx", &|p| {
            write_onnx(p, &run_graph, &oo)
        })?)
    } else {
        None
    };
    let mut ops = BTreeMap::new();
    for n in &run_graph.nodes {
        *ops.entry(n.op.kind().to_string()).or_insert(0) += 1;
    }
    let summary = ExportSummary {
        model: path,
        imgsz,
        precision: tag.into(),
        params: graph.num_params(),
        ops,
        engine,
        onnx,
        onnx_outputs: opts.onnx_outputs.as_str().into(),
        onnx_int8,
        fp32_engine_bytes,
        int8,
        seconds: t0.elapsed().as_secs_f64(),
    };
    let json = serde_json::to_vec_pretty(&summary).map_err(|e| Error::msg(e.to_string()))?;
    let sp = out.join(format!("export_summary_{tag}.json"));
    crate::io::atomic::write_atomic(&sp, |w| {
        w.write_all(&json).map_err(|source| Error::Io {
            path: sp.clone(),
            source,
        })
    })?;
    Ok(summary)
}
