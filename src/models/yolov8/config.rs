//! The ultralytics model yaml (as a JSON dict): scales, layer rows, and the stock
//! yolov8 / yolov8-seg configs. `plan.rs` turns it into concrete layers.
use crate::{Error, Result};
use serde_json::Value;

/// One row `[from, repeats, module, args]` of the yaml's backbone or head.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerSpec {
    /// Source layer indices as written (-1 = previous layer).
    pub from: Vec<i64>,
    pub repeats: usize,
    pub module: String,
    pub args: Vec<Value>,
}

/// A parsed ultralytics YOLO model config.
#[derive(Clone, Debug, PartialEq)]
pub struct YoloConfig {
    /// The dict as given (kept for saving next to the weights).
    pub raw: Value,
    pub nc: usize,
    /// The scale used (`scale` key, else the first of `scales`, as ultralytics assumes).
    pub scale: Option<String>,
    pub depth: f64,
    pub width: f64,
    pub max_channels: f64,
    pub channels: usize,
    pub reg_max: usize,
    /// Backbone rows followed by head rows.
    pub layers: Vec<LayerSpec>,
}

pub(crate) fn bad(msg: impl Into<String>) -> Error {
    Error::Format {
        path: "model config".into(),
        record: "yaml dict".into(),
        msg: msg.into(),
    }
}

pub(crate) fn bad_layer(i: usize, msg: impl Into<String>) -> Error {
    Error::Format {
        path: "model config".into(),
        record: format!("layer {i}"),
        msg: msg.into(),
    }
}

/// ultralytics `make_divisible`: the smallest multiple of `d` ≥ x.
pub fn make_divisible(x: f64, d: usize) -> usize {
    ((x / d as f64).ceil() * d as f64) as usize
}

pub(crate) fn as_usize(v: &Value, what: &str) -> Result<usize> {
    v.as_u64()
        .or_else(|| {
            v.as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= 0.0)
                .map(|f| f as u64)
        })
        .map(|u| u as usize)
        .ok_or_else(|| bad(format!("{what}: expected a non-negative integer, got {v}")))
}

pub(crate) fn as_f64(v: &Value, what: &str) -> Result<f64> {
    v.as_f64()
        .ok_or_else(|| bad(format!("{what}: expected a number, got {v}")))
}

impl YoloConfig {
    /// Parse the model yaml as a JSON dict (nc, scales, scale, backbone, head, channels,
    /// reg_max, depth_multiple/width_multiple without scales).
    pub fn from_json(raw: &Value) -> Result<Self> {
        let d = raw
            .as_object()
            .ok_or_else(|| bad("config is not a JSON object"))?;
        let nc = as_usize(d.get("nc").ok_or_else(|| bad("no \"nc\""))?, "nc")?;
        if nc == 0 {
            return Err(bad("nc must be at least 1"));
        }
        if let Some(a) = d.get("activation").filter(|a| !a.is_null())
            && a.as_str().map(|s| s.replace(' ', "")) != Some("nn.SiLU()".into())
        {
            return Err(bad(format!(
                "activation {a} is not supported (only nn.SiLU())"
            )));
        }
        if d.get("end2end").and_then(Value::as_bool) == Some(true) {
            return Err(bad("end2end heads are not supported"));
        }
        let get_f = |k: &str| d.get(k).map(|v| as_f64(v, k)).transpose();
        let (mut depth, mut width) = (
            get_f("depth_multiple")?.unwrap_or(1.0),
            get_f("width_multiple")?.unwrap_or(1.0),
        );
        let mut max_channels = f64::INFINITY;
        let mut scale = d.get("scale").and_then(Value::as_str).map(str::to_string);
        if let Some(scales) = d.get("scales").filter(|s| !s.is_null()) {
            let scales = scales
                .as_object()
                .ok_or_else(|| bad("scales is not a dict"))?;
            let key = match &scale {
                Some(s) => s.clone(),
                None => scales
                    .keys()
                    .next()
                    .cloned()
                    .ok_or_else(|| bad("scales is empty"))?,
            };
            let row = scales
                .get(&key)
                .and_then(Value::as_array)
                .filter(|r| r.len() == 3)
                .ok_or_else(|| {
                    bad(format!(
                        "scales has no [depth, width, max_channels] row for scale {key:?}"
                    ))
                })?;
            depth = as_f64(&row[0], "depth")?;
            width = as_f64(&row[1], "width")?;
            max_channels = as_f64(&row[2], "max_channels")?;
            scale = Some(key);
        }
        let channels = d
            .get("channels")
            .map(|v| as_usize(v, "channels"))
            .transpose()?
            .unwrap_or(3);
        let reg_max = d
            .get("reg_max")
            .map(|v| as_usize(v, "reg_max"))
            .transpose()?
            .unwrap_or(16);
        if reg_max == 0 || channels == 0 {
            return Err(bad("reg_max and channels must be at least 1"));
        }
        let mut layers = Vec::new();
        for part in ["backbone", "head"] {
            let rows = d
                .get(part)
                .and_then(Value::as_array)
                .ok_or_else(|| bad(format!("no \"{part}\" layer list")))?;
            for row in rows {
                layers.push(parse_row(layers.len(), row)?);
            }
        }
        Ok(YoloConfig {
            raw: raw.clone(),
            nc,
            scale,
            depth,
            width,
            max_channels,
            channels,
            reg_max,
            layers,
        })
    }

    /// The stock ultralytics yolov8-seg.yaml (`seg`) or yolov8.yaml at `scale` (n s m l x)
    /// with `nc` classes.
    pub fn yolov8(scale: char, nc: usize, seg: bool) -> Result<Self> {
        if !"nsmlx".contains(scale) {
            return Err(bad(format!(
                "unknown YOLOv8 scale {scale:?} (n, s, m, l or x)"
            )));
        }
        let head_row = if seg {
            serde_json::json!([[15, 18, 21], 1, "Segment", ["nc", 32, 256]])
        } else {
            serde_json::json!([[15, 18, 21], 1, "Detect", ["nc"]])
        };
        let raw = serde_json::json!({
            "nc": nc,
            "scales": {
                "n": [0.33, 0.25, 1024], "s": [0.33, 0.50, 1024], "m": [0.67, 0.75, 768],
                "l": [1.00, 1.00, 512], "x": [1.00, 1.25, 512]
            },
            "scale": scale.to_string(),
            "backbone": [
                [-1, 1, "Conv", [64, 3, 2]], [-1, 1, "Conv", [128, 3, 2]],
                [-1, 3, "C2f", [128, true]], [-1, 1, "Conv", [256, 3, 2]],
                [-1, 6, "C2f", [256, true]], [-1, 1, "Conv", [512, 3, 2]],
                [-1, 6, "C2f", [512, true]], [-1, 1, "Conv", [1024, 3, 2]],
                [-1, 3, "C2f", [1024, true]], [-1, 1, "SPPF", [1024, 5]]
            ],
            "head": [
                [-1, 1, "nn.Upsample", [null, 2, "nearest"]], [[-1, 6], 1, "Concat", [1]],
                [-1, 3, "C2f", [512]],
                [-1, 1, "nn.Upsample", [null, 2, "nearest"]], [[-1, 4], 1, "Concat", [1]],
                [-1, 3, "C2f", [256]],
                [-1, 1, "Conv", [256, 3, 2]], [[-1, 12], 1, "Concat", [1]],
                [-1, 3, "C2f", [512]],
                [-1, 1, "Conv", [512, 3, 2]], [[-1, 9], 1, "Concat", [1]],
                [-1, 3, "C2f", [1024]],
                head_row
            ]
        });
        Self::from_json(&raw)
    }
}

fn parse_row(i: usize, row: &Value) -> Result<LayerSpec> {
    let r = row.as_array().filter(|r| r.len() == 4).ok_or_else(|| {
        bad_layer(
            i,
            format!("expected [from, repeats, module, args], got {row}"),
        )
    })?;
    let one = |v: &Value| {
        v.as_i64()
            .ok_or_else(|| bad_layer(i, format!("'from' {v} is not an integer")))
    };
    let from = match &r[0] {
        Value::Array(a) => a.iter().map(one).collect::<Result<_>>()?,
        v => vec![one(v)?],
    };
    let repeats = as_usize(&r[1], "repeats").map_err(|e| bad_layer(i, e.to_string()))?;
    let module = r[2]
        .as_str()
        .ok_or_else(|| bad_layer(i, "module is not a string"))?
        .to_string();
    let args = r[3]
        .as_array()
        .cloned()
        .ok_or_else(|| bad_layer(i, "args is not a list"))?;
    Ok(LayerSpec {
        from,
        repeats,
        module,
        args,
    })
}
