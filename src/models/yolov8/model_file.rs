//! The student's inference file: one safetensors holding the weights under ultralytics'
//! names and, in its metadata, what is needed to use them — the model config (ultralytics
//! yaml as JSON), the class names and the training image size. `ed-predict`, `ed-eval
//! --model` and the exporters read it; `tools/reference/yolo_to_safetensors.py` writes the
//! same layout from an ultralytics `.pt`.
use super::{YoloConfig, YoloModel};
use crate::io::StateDict;
use crate::io::safetensors::{Safetensors, save_safetensors};
use crate::nn::state_dict_of;
use crate::{Error, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Metadata `format` value of a model file.
pub const FORMAT: &str = "edgedistill-yolov8";

/// What a model file says about its model besides the weights.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelMeta {
    /// The ultralytics model config (yaml as a dict), `nc` included.
    pub config: serde_json::Value,
    /// Class names, index = class id of the model's output.
    pub names: Vec<String>,
    /// COCO category id of each class (same order as `names`), for results JSON.
    pub category_ids: Vec<u64>,
    /// Square input side the model was trained at.
    pub imgsz: u32,
}

/// Write `model` (its current weights; pass the EMA-swapped model for the trained one)
/// and `meta` to `path`, atomically.
pub fn save_model(path: &Path, model: &YoloModel, meta: &ModelMeta) -> Result<()> {
    let mut md = BTreeMap::new();
    md.insert("format".to_string(), FORMAT.to_string());
    md.insert("config".to_string(), meta.config.to_string());
    md.insert(
        "names".to_string(),
        serde_json::json!(meta.names).to_string(),
    );
    md.insert(
        "category_ids".to_string(),
        serde_json::json!(meta.category_ids).to_string(),
    );
    md.insert("imgsz".to_string(), meta.imgsz.to_string());
    save_safetensors(path, &state_dict_of(model), Some(&md))
}

/// `path` itself when it is a file; for a directory, the first of `model.safetensors`,
/// `weights/best.model.safetensors`, `weights/last.model.safetensors` that exists.
pub fn resolve_model_path(path: &Path) -> Result<PathBuf> {
    if path.is_file() {
        return Ok(path.to_path_buf());
    }
    let tried = [
        "model.safetensors",
        "weights/best.model.safetensors",
        "weights/last.model.safetensors",
    ];
    for t in tried {
        let p = path.join(t);
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(Error::Format {
        path: path.display().to_string(),
        record: "model".into(),
        msg: format!("no model file here (looked for {})", tried.join(", ")),
    })
}

/// Read a model file (or a run directory, see [`resolve_model_path`]): the model built from
/// its config with every weight checked against the config's shapes.
pub fn load_model(path: &Path) -> Result<(YoloModel, ModelMeta)> {
    let path = resolve_model_path(path)?;
    let file = Arc::new(Safetensors::open(&path)?);
    let name = path.display().to_string();
    let md = file.metadata().clone();
    let bad = |record: &str, msg: String| Error::Format {
        path: name.clone(),
        record: record.to_string(),
        msg,
    };
    let get = |k: &str| {
        md.get(k)
            .ok_or_else(|| bad("metadata", format!("no {k:?} entry: not a model file written by edgedistill or yolo_to_safetensors.py")))
    };
    let config: serde_json::Value =
        serde_json::from_str(get("config")?).map_err(|e| bad("metadata config", e.to_string()))?;
    let cfg = YoloConfig::from_json(&config).map_err(|e| bad("metadata config", e.to_string()))?;
    let names: Vec<String> = match md.get("names") {
        Some(s) => serde_json::from_str(s).map_err(|e| bad("metadata names", e.to_string()))?,
        None => (0..cfg.nc).map(|i| format!("class{i}")).collect(),
    };
    if names.len() != cfg.nc {
        return Err(bad(
            "metadata names",
            format!("{} names for nc {}", names.len(), cfg.nc),
        ));
    }
    let category_ids: Vec<u64> = match md.get("category_ids") {
        Some(s) => {
            serde_json::from_str(s).map_err(|e| bad("metadata category_ids", e.to_string()))?
        }
        None => (1..=cfg.nc as u64).collect(),
    };
    if category_ids.len() != cfg.nc {
        return Err(bad(
            "metadata category_ids",
            format!("{} ids for nc {}", category_ids.len(), cfg.nc),
        ));
    }
    let imgsz = match md.get("imgsz") {
        Some(s) => s
            .parse()
            .map_err(|_| bad("metadata imgsz", format!("{s:?} is not a size")))?,
        None => 640,
    };
    let model = YoloModel::from_state_dict(&cfg, &StateDict::from_safetensors(file))
        .map_err(|e| bad("weights", e.to_string()))?;
    Ok((
        model,
        ModelMeta {
            config,
            names,
            category_ids,
            imgsz,
        },
    ))
}
