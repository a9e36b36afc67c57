//! What ultralytics `parse_model` makes of a config: every layer with its concrete channel
//! counts, repeats and arguments, plus the head strides. Only the YOLOv8 layer set is
//! accepted (Conv, C2f, SPPF, nn.Upsample, Concat, Detect, Segment); anything else is an
//! error naming the layer.
use super::config::{YoloConfig, as_f64, as_usize, bad, bad_layer, make_divisible};
use crate::Result;
use serde_json::Value;

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

impl YoloConfig {
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
                    let p = uarg(3, (d * (k - 1)).div_ceil(2), "p")?;
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
