//! LoRA hyper-parameters and module targeting with PEFT's semantics (peft 0.21.2
//! `LoraConfig`, `check_target_module_exists`, `get_pattern_key`), read from and written to
//! PEFT's adapter_config.json.
use crate::io::regex::Regex;
use crate::{Error, Result};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::fmt;

/// Which modules get an adapter, by full dotted module name.
#[derive(Clone, Debug, PartialEq)]
pub enum TargetModules {
    /// A string: `re.fullmatch(pattern, name)`.
    Regex(String),
    /// A list: `name == entry` or `name.endswith("." + entry)`.
    Names(Vec<String>),
}

impl TargetModules {
    pub fn matches(&self, module: &str) -> Result<bool> {
        Ok(match self {
            TargetModules::Regex(p) => Regex::new(p)?.full_match(module),
            TargetModules::Names(v) => v.iter().any(|t| {
                module == t
                    || module
                        .strip_suffix(t.as_str())
                        .is_some_and(|h| h.ends_with('.'))
            }),
        })
    }
    fn validate(&self) -> Result<()> {
        match self {
            // PEFT expands "all-linear" from the model's own output layer; we cannot know it.
            TargetModules::Regex(p) if p == "all-linear" => Err(Error::msg(
                "target_modules \"all-linear\" is not supported: name the modules explicitly",
            )),
            TargetModules::Regex(p) => Regex::new(p).map(|_| ()),
            TargetModules::Names(v) if v.is_empty() => {
                Err(Error::msg("target_modules is an empty list"))
            }
            TargetModules::Names(_) => Ok(()),
        }
    }
}

impl fmt::Display for TargetModules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TargetModules::Regex(p) => write!(f, "{p}"),
            TargetModules::Names(v) => write!(f, "{v:?}"),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct LoraConfig {
    pub r: usize,
    pub alpha: f64,
    pub dropout: f64,
    pub targets: TargetModules,
    /// Only "none" is supported (PEFT's default).
    pub bias: String,
    pub use_rslora: bool,
    /// Per-module overrides, keyed by PEFT pattern (`(.*\.)?(key)` must match the name).
    pub rank_pattern: BTreeMap<String, usize>,
    pub alpha_pattern: BTreeMap<String, f64>,
}

/// The value of the pattern key matching `module`, else `default`. PEFT takes the first
/// matching key in dict order; JSON key order is not kept here, so several matching keys
/// with different values are an error rather than a guess.
fn pattern_value<T: Copy + PartialEq + fmt::Debug>(
    what: &str,
    map: &BTreeMap<String, T>,
    module: &str,
    default: T,
) -> Result<T> {
    let mut found: Option<(&str, T)> = None;
    for (k, &v) in map {
        // re.match(rf"(.*\.)?({key})$", name); module names hold no newline.
        if Regex::new(&format!(r"(.*\.)?({k})"))
            .map_err(|e| e.context(format!("{what} key {k:?}")))?
            .full_match(module)
        {
            match found {
                Some((k0, v0)) if v0 != v => {
                    return Err(Error::msg(format!(
                        "{what}: keys {k0:?} ({v0:?}) and {k:?} ({v:?}) both match module {module:?}; \
                         PEFT would take whichever comes first in the file, so make them disjoint"
                    )));
                }
                None => found = Some((k, v)),
                _ => {}
            }
        }
    }
    Ok(found.map_or(default, |(_, v)| v))
}

impl LoraConfig {
    /// PEFT's defaults otherwise: bias "none", no rsLoRA, no per-module patterns.
    pub fn new(r: usize, alpha: f64, dropout: f64, targets: TargetModules) -> Self {
        LoraConfig {
            r,
            alpha,
            dropout,
            targets,
            bias: "none".into(),
            use_rslora: false,
            rank_pattern: BTreeMap::new(),
            alpha_pattern: BTreeMap::new(),
        }
    }

    /// The rank PEFT gives `module` (rank_pattern, else r).
    pub fn rank_for(&self, module: &str) -> Result<usize> {
        pattern_value("rank_pattern", &self.rank_pattern, module, self.r)
    }
    pub fn alpha_for(&self, module: &str) -> Result<f64> {
        pattern_value("alpha_pattern", &self.alpha_pattern, module, self.alpha)
    }
    /// PEFT's `scaling`: alpha/r, or alpha/√r with rsLoRA, per module.
    pub fn scale_for(&self, module: &str) -> Result<f64> {
        let (r, alpha) = (self.rank_for(module)? as f64, self.alpha_for(module)?);
        Ok(if self.use_rslora {
            alpha / r.sqrt()
        } else {
            alpha / r
        })
    }

    /// Everything we cannot honour exactly is refused here, with the field named.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::msg(format!("LoRA config: {m}")));
        if self.r == 0 || self.rank_pattern.values().any(|&r| r == 0) {
            return bad("r (and every rank_pattern value) must be ≥ 1".into());
        }
        if !self.alpha.is_finite() || self.alpha_pattern.values().any(|a| !a.is_finite()) {
            return bad(format!("lora_alpha {} is not finite", self.alpha));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return bad(format!("lora_dropout {} is not in [0, 1)", self.dropout));
        }
        if self.bias != "none" {
            return bad(format!(
                "bias {:?} is not supported (only \"none\")",
                self.bias
            ));
        }
        self.targets
            .validate()
            .map_err(|e| e.context("LoRA config: target_modules"))?;
        let keys = (self.rank_pattern.keys().map(|k| ("rank_pattern", k)))
            .chain(self.alpha_pattern.keys().map(|k| ("alpha_pattern", k)));
        for (field, k) in keys {
            Regex::new(&format!(r"(.*\.)?({k})"))
                .map_err(|e| e.context(format!("LoRA config: {field} key {k:?}")))?;
        }
        Ok(())
    }

    /// Read a PEFT adapter_config.json. Missing optional fields take PEFT's defaults;
    /// features that change the math (DoRA, bias, fan_in_fan_out, ...) are refused. Errors
    /// name `origin` and the field.
    pub fn from_peft_json(v: &Value, origin: &str) -> Result<Self> {
        let err = |field: &str, msg: String| Error::Format {
            path: origin.to_string(),
            record: format!("field {field:?}"),
            msg,
        };
        let obj = v
            .as_object()
            .ok_or_else(|| err("<root>", "adapter config is not a JSON object".into()))?;
        let get = |k: &str| obj.get(k).filter(|x| !x.is_null());
        match get("peft_type").and_then(Value::as_str) {
            Some("LORA") => {}
            Some(t) => {
                return Err(err(
                    "peft_type",
                    format!("{t:?}: only \"LORA\" adapters are supported"),
                ));
            }
            None => return Err(err("peft_type", "missing (expected \"LORA\")".into())),
        }
        // Set to anything but off/empty, these change the layer's math or file layout.
        for k in [
            "use_dora",
            "fan_in_fan_out",
            "lora_bias",
            "use_qalora",
            "layers_to_transform",
            "modules_to_save",
            "exclude_modules",
            "target_parameters",
            "trainable_token_indices",
            "layer_replication",
            "alora_invocation_tokens",
            "arrow_config",
            "use_bdlora",
            "kasa_config",
            "monteclora_config",
            "velora_config",
            "megatron_config",
        ] {
            let on = match get(k) {
                None | Some(Value::Bool(false)) => false,
                Some(Value::Array(a)) => !a.is_empty(),
                Some(Value::Object(o)) => !o.is_empty(),
                Some(_) => true,
            };
            if on {
                return Err(err(k, format!("{} is not supported", get(k).expect("set"))));
            }
        }
        let uint = |k: &str, x: &Value| -> Result<usize> {
            x.as_u64()
                .map(|n| n as usize)
                .ok_or_else(|| err(k, format!("{x} is not a non-negative integer")))
        };
        let num = |k: &str, x: &Value| -> Result<f64> {
            x.as_f64()
                .ok_or_else(|| err(k, format!("{x} is not a number")))
        };
        let r = get("r").map_or(Ok(8), |x| uint("r", x))?;
        let alpha = get("lora_alpha").map_or(Ok(8.0), |x| num("lora_alpha", x))?;
        let dropout = get("lora_dropout").map_or(Ok(0.0), |x| num("lora_dropout", x))?;
        let targets = match get("target_modules") {
            Some(Value::String(s)) => TargetModules::Regex(s.clone()),
            Some(Value::Array(a)) => TargetModules::Names(
                a.iter()
                    .map(|x| {
                        x.as_str().map(str::to_string).ok_or_else(|| {
                            err("target_modules", format!("entry {x} is not a string"))
                        })
                    })
                    .collect::<Result<_>>()?,
            ),
            Some(x) => {
                return Err(err(
                    "target_modules",
                    format!("{x} is not a string or list"),
                ));
            }
            None => {
                return Err(err(
                    "target_modules",
                    "missing: PEFT infers it from the model type; name the modules explicitly"
                        .into(),
                ));
            }
        };
        let bias = match get("bias") {
            None => "none".to_string(),
            Some(x) => x
                .as_str()
                .ok_or_else(|| err("bias", format!("{x} is not a string")))?
                .to_string(),
        };
        let use_rslora = match get("use_rslora") {
            None => false,
            Some(x) => x
                .as_bool()
                .ok_or_else(|| err("use_rslora", format!("{x} is not a boolean")))?,
        };
        let map = |k: &str| -> Result<Vec<(String, Value)>> {
            match get(k) {
                None => Ok(Vec::new()),
                Some(Value::Object(o)) => {
                    Ok(o.iter().map(|(a, b)| (a.clone(), b.clone())).collect())
                }
                Some(x) => Err(err(k, format!("{x} is not an object"))),
            }
        };
        let rank_pattern = map("rank_pattern")?
            .into_iter()
            .map(|(k, x)| Ok((k, uint("rank_pattern", &x)?)))
            .collect::<Result<_>>()?;
        let alpha_pattern = map("alpha_pattern")?
            .into_iter()
            .map(|(k, x)| Ok((k, num("alpha_pattern", &x)?)))
            .collect::<Result<_>>()?;
        let cfg = LoraConfig {
            r,
            alpha,
            dropout,
            targets,
            bias,
            use_rslora,
            rank_pattern,
            alpha_pattern,
        };
        cfg.validate().map_err(|e| e.context(origin.to_string()))?;
        Ok(cfg)
    }

    /// An adapter_config.json that peft 0.21.2's `PeftModel.from_pretrained` loads.
    pub fn to_peft_json(&self, base_model_class: &str, parent_library: &str) -> Value {
        // PEFT writes integral alphas as ints; keep that so the file diffs cleanly.
        let num = |a: f64| {
            if a.fract() == 0.0 && a.abs() < 1e15 {
                json!(a as i64)
            } else {
                json!(a)
            }
        };
        let targets = match &self.targets {
            TargetModules::Regex(p) => json!(p),
            TargetModules::Names(v) => json!(v),
        };
        let alpha_pattern: serde_json::Map<String, Value> = self
            .alpha_pattern
            .iter()
            .map(|(k, &a)| (k.clone(), num(a)))
            .collect();
        json!({
            "peft_type": "LORA",
            "r": self.r,
            "lora_alpha": num(self.alpha),
            "target_modules": targets,
            "lora_dropout": self.dropout,
            "bias": self.bias,
            "fan_in_fan_out": false,
            "inference_mode": true,
            "init_lora_weights": true,
            "use_rslora": self.use_rslora,
            "use_dora": false,
            "lora_bias": false,
            "use_qalora": false,
            "modules_to_save": null,
            "exclude_modules": null,
            "target_parameters": null,
            "trainable_token_indices": null,
            "layer_replication": null,
            "rank_pattern": self.rank_pattern,
            "alpha_pattern": alpha_pattern,
            "task_type": null,
            "base_model_name_or_path": null,
            "revision": null,
            "layers_to_transform": null,
            "layers_pattern": null,
            "auto_mapping": {
                "base_model_class": base_model_class,
                "parent_library": parent_library,
            },
            "peft_version": "0.21.2",
        })
    }
}
