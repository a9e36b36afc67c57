//! The ultralytics model yaml (as a JSON dict) and what `parse_model` makes of it: every
//! layer with its concrete channel counts, repeats and arguments, plus the head strides.
//! Only the YOLOv8 layer set is accepted (Conv, C2f, SPPF, nn.Upsample, Concat, Detect,
//! Segment); anything else is an error naming the layer.
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

/// A layer with ultralytics' concrete arguments (after width/depth scaling).
#[derive(Clone, Debug, PartialEq)]
pub enum LayerKind {
    /// Conv(c1, c2, k, s, p, g, d) + BN + SiLU.
    Conv {
        c1: usize,
        c2: usize,
        k: usize,
        s: usize,
        p: usize,
        g: usize,
        d: usize,
    },
    C2f {
        c1: usize,
        c2: usize,
        n: usize,
        shortcut: bool,
        g: usize,
        e: f64,
    },
    /// `cv1_act`: legacy yaml rows (≤ 2 args) give SPPF's cv1 a SiLU, as parse_model does.
    Sppf {
        c1: usize,
        c2: usize,
        k: usize,
        n: usize,
        shortcut: bool,
        cv1_act: bool,
    },
    /// Nearest-neighbour upsampling by an integer factor.
    Upsample { scale: usize },
    /// Concatenation along channels.
    Concat,
    /// Detect (nm = 0) or Segment head over the input channels `ch`.
    Head {
        nc: usize,
        ch: Vec<usize>,
        nm: usize,
        npr: usize,
    },
}

/// A resolved layer: absolute source indices (`None` = the image) and what it is.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerPlan {
    pub from: Vec<Option<usize>>,
    pub kind: LayerKind,
}

fn bad(msg: impl Into<String>) -> Error {
    Error::Format {
        path: "model config".into(),
        record: "yaml dict".into(),
        msg: msg.into(),
    }
}

fn bad_layer(i: usize, msg: impl Into<String>) -> Error {
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

fn as_usize(v: &Value, what: &str) -> Result<usize> {
    v.as_u64()
        .or_else(|| {
            v.as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= 0.0)
                .map(|f| f as u64)
        })
        .map(|u| u as usize)
        .ok_or_else(|| bad(format!("{what}: expected a non-negative integer, got {v}")))
}

fn as_f64(v: &Value, what: &str) -> Result<f64> {
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
        if let Some(a) = d.get("activation").filter(|a| !a.is_null()) {
            if a.as_str().map(|s| s.replace(' ', "")) != Some("nn.SiLU()".into()) {
                return Err(bad(format!(
                    "activation {a} is not supported (only nn.SiLU())"
                )));
            }
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

    /// A string argument resolved as parse_model does: a name it knows ("nc", "reg_max"),
    /// a top-level numeric key of the dict ("nm", "npr"), or a literal ("None", "2").
    fn resolve_arg(&self, v: &Value) -> Value {
        let Some(s) = v.as_str() else {
            return v.clone();
        };
        match s {
            "nc" => return Value::from(self.nc),
            "reg_max" => return Value::from(self.reg_max),
            "None" => return Value::Null,
            "True" => return Value::Bool(true),
            "False" => return Value::Bool(false),
            _ => {}
        }
        if let Some(n) = self.raw.get(s).filter(|n| n.is_number()) {
            return n.clone();
        }
        serde_json::from_str::<Value>(s)
            .ok()
            .filter(Value::is_number)
            .unwrap_or_else(|| v.clone())
    }

    /// Output channels scaled as parse_model: make_divisible(min(c, max_channels)·width, 8).
    fn scale_ch(&self, c: usize) -> usize {
        make_divisible((c as f64).min(self.max_channels) * self.width, 8)
    }

    /// Every layer resolved (parse_model's channel/repeat arithmetic) and the head strides,
    /// found by propagating a 256×256 input's size as ultralytics' dummy forward does.
    pub fn plan(&self) -> Result<(Vec<LayerPlan>, Vec<f32>)> {
        let mut ch: Vec<usize> = Vec::new(); // output channels per layer
        let mut hw: Vec<(usize, usize)> = Vec::new(); // output size per layer at 256×256
        let mut plans = Vec::new();
        let mut strides = Vec::new();
        let last = self
            .layers
            .len()
            .checked_sub(1)
            .ok_or_else(|| bad("no layers"))?;
        for (i, spec) in self.layers.iter().enumerate() {
            let from: Vec<Option<usize>> = spec
                .from
                .iter()
                .map(|&f| {
                    if f == -1 {
                        Ok(i.checked_sub(1))
                    } else {
                        let j = if f < 0 { i as i64 + f } else { f };
                        if j < 0 || j >= i as i64 {
                            Err(bad_layer(
                                i,
                                format!("'from' index {f} does not name an earlier layer"),
                            ))
                        } else {
                            Ok(Some(j as usize))
                        }
                    }
                })
                .collect::<Result<_>>()?;
            let src_ch = |f: &Option<usize>| f.map_or(self.channels, |j| ch[j]);
            let src_hw = |f: &Option<usize>| f.map_or((256, 256), |j| hw[j]);
            let args: Vec<Value> = spec.args.iter().map(|a| self.resolve_arg(a)).collect();
            let arg = |k: usize| args.get(k).filter(|v| !v.is_null());
            let uarg = |k: usize, default: usize, what: &str| -> Result<usize> {
                arg(k).map_or(Ok(default), |v| {
                    as_usize(v, what).map_err(|e| bad_layer(i, e.to_string()))
                })
            };
            let barg = |k: usize, default: bool| {
                arg(k).map_or(default, |v| v.as_bool().unwrap_or(default))
            };
            let single = || -> Result<Option<usize>> {
                match from.as_slice() {
                    [f] => Ok(*f),
                    _ => Err(bad_layer(
                        i,
                        format!("{} takes one input, got {:?}", spec.module, spec.from),
                    )),
                }
            };
            let n = if spec.repeats > 1 {
                ((spec.repeats as f64 * self.depth).round_ties_even() as usize).max(1)
            } else {
                spec.repeats
            };
            let is_head = matches!(spec.module.as_str(), "Detect" | "Segment");
            if is_head != (i == last) {
                return Err(bad_layer(
                    i,
                    format!(
                        "{}: the last layer (and only it) must be Detect or Segment",
                        spec.module
                    ),
                ));
            }
            if n != 1 && spec.module != "C2f" {
                return Err(bad_layer(
                    i,
                    format!("{} repeated {n} times is not supported", spec.module),
                ));
            }
            let conv_out = |(h, w): (usize, usize), k: usize, s: usize, p: usize, d: usize| {
                let ek = d * (k - 1) + 1;
                (
                    (h + 2 * p).saturating_sub(ek) / s + 1,
                    (w + 2 * p).saturating_sub(ek) / s + 1,
                )
            };
            let (kind, c2, size) = match spec.module.as_str() {
                "Conv" => {
                    let f = single()?;
                    let c2 = self.scale_ch(uarg(0, 0, "c2")?);
                    let (k, s, g, d) = (
                        uarg(1, 1, "k")?,
                        uarg(2, 1, "s")?,
                        uarg(4, 1, "g")?,
                        uarg(5, 1, "d")?,
                    );
                    if k == 0 || s == 0 || g == 0 || d == 0 {
                        return Err(bad_layer(
                            i,
                            "Conv kernel, stride, groups and dilation must be positive",
                        ));
                    }
                    let p = uarg(3, (d * (k - 1) + 1) / 2, "p")?;
                    if arg(6).is_some_and(|a| a.as_bool() != Some(true)) {
                        return Err(bad_layer(
                            i,
                            "Conv with a non-default activation is not supported",
                        ));
                    }
                    let size = conv_out(src_hw(&f), k, s, p, d);
                    (
                        LayerKind::Conv {
                            c1: src_ch(&f),
                            c2,
                            k,
                            s,
                            p,
                            g,
                            d,
                        },
                        c2,
                        size,
                    )
                }
                "C2f" => {
                    let f = single()?;
                    let c2 = self.scale_ch(uarg(0, 0, "c2")?);
                    let e = arg(3).map_or(Ok(0.5), |v| as_f64(v, "e"))?;
                    let kind = LayerKind::C2f {
                        c1: src_ch(&f),
                        c2,
                        n,
                        shortcut: barg(1, false),
                        g: uarg(2, 1, "g")?,
                        e,
                    };
                    (kind, c2, src_hw(&f))
                }
                "SPPF" => {
                    let f = single()?;
                    let c2 = self.scale_ch(uarg(0, 0, "c2")?);
                    let (k, rep) = (uarg(1, 5, "k")?, uarg(2, 3, "n")?);
                    if k % 2 == 0 {
                        return Err(bad_layer(i, format!("SPPF kernel {k} must be odd")));
                    }
                    let kind = LayerKind::Sppf {
                        c1: src_ch(&f),
                        c2,
                        k,
                        n: rep,
                        shortcut: barg(3, false),
                        cv1_act: args.len() <= 2,
                    };
                    (kind, c2, src_hw(&f))
                }
                "nn.Upsample" => {
                    let f = single()?;
                    let mode = args.get(2).and_then(Value::as_str).unwrap_or("nearest");
                    if mode != "nearest" || arg(0).is_some() {
                        return Err(bad_layer(
                            i,
                            "only nn.Upsample(None, k, 'nearest') is supported",
                        ));
                    }
                    let scale = uarg(1, 0, "scale_factor")?;
                    if scale == 0 {
                        return Err(bad_layer(i, "upsample scale must be positive"));
                    }
                    let (h, w) = src_hw(&f);
                    (
                        LayerKind::Upsample { scale },
                        src_ch(&f),
                        (h * scale, w * scale),
                    )
                }
                "Concat" => {
                    if uarg(0, 1, "dimension")? != 1 || from.is_empty() {
                        return Err(bad_layer(
                            i,
                            "only Concat along dimension 1 of at least one input is supported",
                        ));
                    }
                    let size = src_hw(&from[0]);
                    if let Some(f) = from.iter().find(|f| src_hw(f) != size) {
                        return Err(bad_layer(
                            i,
                            format!("Concat inputs differ in size ({size:?} vs {:?})", src_hw(f)),
                        ));
                    }
                    (LayerKind::Concat, from.iter().map(src_ch).sum(), size)
                }
                "Detect" | "Segment" => {
                    let nc = uarg(0, self.nc, "nc")?;
                    let seg = spec.module == "Segment";
                    let nm = if seg { uarg(1, 32, "nm")? } else { 0 };
                    let npr = if seg {
                        self.scale_ch(uarg(2, 256, "npr")?)
                    } else {
                        0
                    };
                    if nc == 0 || (seg && nm == 0) || from.is_empty() {
                        return Err(bad_layer(
                            i,
                            "head needs nc ≥ 1, nm ≥ 1 and at least one input",
                        ));
                    }
                    strides = from.iter().map(|f| 256.0 / src_hw(f).0 as f32).collect();
                    (
                        LayerKind::Head {
                            nc,
                            ch: from.iter().map(src_ch).collect(),
                            nm,
                            npr,
                        },
                        0,
                        (0, 0),
                    )
                }
                m => {
                    return Err(bad_layer(
                        i,
                        format!("module {m:?} is not a YOLOv8 layer we build"),
                    ));
                }
            };
            plans.push(LayerPlan { from, kind });
            ch.push(c2);
            hw.push(size);
        }
        Ok((plans, strides))
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
