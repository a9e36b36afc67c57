//! PEFT LoRA adapters on disk: adapter_config.json + adapter_model.safetensors with keys
//! `base_model.model.<module>.lora_A.weight` / `.lora_B.weight` (what `save_pretrained`
//! writes and `PeftModel.from_pretrained` reads), and copying them into a model's LoraLinears.
use super::StateDict;
use super::atomic::write_atomic;
use super::safetensors::save_safetensors;
use crate::nn::{LoraConfig, Module};
use crate::{DType, Error, Result, Shape, Tensor};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

pub const CONFIG_FILE: &str = "adapter_config.json";
pub const WEIGHTS_FILE: &str = "adapter_model.safetensors";
const PREFIX: &str = "base_model.model.";
const A: &str = ".lora_A.weight";
const B: &str = ".lora_B.weight";

pub struct Adapter {
    pub config: LoraConfig,
    /// Keys without PEFT's "base_model.model." prefix: "<module>.lora_A.weight".
    pub tensors: StateDict,
    /// The file (or label) the tensors came from, for error messages.
    pub origin: String,
}

/// `<module>` and whether it is A, for an (unprefixed) adapter key. A LoRA layer at the
/// model's root has keys "lora_A.weight" (module "").
fn split_key(key: &str) -> Option<(&str, bool)> {
    for (suffix, is_a) in [(A, true), (B, false)] {
        if let Some(head) = key.strip_suffix(suffix) {
            return Some((head, is_a));
        }
        if key == &suffix[1..] {
            return Some(("", is_a));
        }
    }
    None
}

fn bad(origin: &str, key: &str, msg: String) -> Error {
    Error::Format {
        path: origin.to_string(),
        record: format!("tensor {key:?}"),
        msg,
    }
}

fn bad_module(origin: &str, module: &str, msg: String) -> Error {
    Error::Format {
        path: origin.to_string(),
        record: format!("module {module:?}"),
        msg,
    }
}

/// Every key is a LoRA Linear tensor of a targeted module, A and B come in pairs, and their
/// shapes agree with each other and with the config's rank for the module.
fn check_tensors(cfg: &LoraConfig, t: &StateDict, origin: &str) -> Result<()> {
    let mut shapes: BTreeMap<&str, [Option<Shape>; 2]> = BTreeMap::new();
    for key in t.names() {
        let (module, is_a) = split_key(key).ok_or_else(|| {
            bad(
                origin,
                key,
                "not a LoRA Linear tensor (<module>.lora_A.weight or <module>.lora_B.weight)"
                    .into(),
            )
        })?;
        if !cfg.targets.matches(module)? {
            return Err(bad(
                origin,
                key,
                format!(
                    "module {module:?} is not in the config's target_modules {}",
                    cfg.targets
                ),
            ));
        }
        shapes.entry(module).or_default()[usize::from(!is_a)] = t.shape(key);
    }
    if shapes.is_empty() {
        return Err(Error::Format {
            path: origin.to_string(),
            record: "tensors".into(),
            msg: "the adapter holds no LoRA tensors".into(),
        });
    }
    for (module, [a, b]) in shapes {
        let r = cfg.rank_for(module)?;
        let (Some(a), Some(b)) = (a, b) else {
            return Err(bad_module(
                origin,
                module,
                "has only one of lora_A.weight / lora_B.weight".into(),
            ));
        };
        if a.rank() != 2 || b.rank() != 2 || a.dims()[0] != r || b.dims()[1] != r {
            return Err(bad_module(
                origin,
                module,
                format!(
                    "lora_A {a} and lora_B {b} do not fit rank r={r} (want A [r, in], B [out, r])"
                ),
            ));
        }
    }
    Ok(())
}

impl Adapter {
    /// From an adapter_config.json value and tensors keyed as PEFT saves them (with the
    /// "base_model.model." prefix). `origin` labels errors.
    pub fn from_parts(
        config_json: &serde_json::Value,
        tensors: StateDict,
        origin: &str,
    ) -> Result<Adapter> {
        let config = LoraConfig::from_peft_json(config_json, origin)?;
        Self::from_config(config, tensors, origin)
    }

    fn from_config(config: LoraConfig, tensors: StateDict, origin: &str) -> Result<Adapter> {
        if let Some(k) = tensors.names().find(|k| !k.starts_with(PREFIX)) {
            return Err(bad(
                origin,
                k,
                format!("key does not start with {PREFIX:?}"),
            ));
        }
        let tensors = tensors.strip_prefix(PREFIX);
        check_tensors(&config, &tensors, origin)?;
        Ok(Adapter {
            config,
            tensors,
            origin: origin.to_string(),
        })
    }

    /// Module names the adapter holds, sorted.
    pub fn modules(&self) -> Vec<String> {
        let set: BTreeSet<&str> = self
            .tensors
            .names()
            .filter_map(|k| split_key(k).map(|m| m.0))
            .collect();
        set.into_iter().map(str::to_string).collect()
    }
}

/// Read `dir`/adapter_config.json and `dir`/adapter_model.safetensors.
pub fn load_adapter(dir: impl AsRef<Path>) -> Result<Adapter> {
    let dir = dir.as_ref();
    let cfg_path = dir.join(CONFIG_FILE);
    let text = std::fs::read_to_string(&cfg_path).map_err(|source| Error::Io {
        path: cfg_path.clone(),
        source,
    })?;
    let cfg_name = cfg_path.display().to_string();
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::Format {
        path: cfg_name.clone(),
        record: format!("line {}", e.line()),
        msg: format!("not valid JSON: {e}"),
    })?;
    let config = LoraConfig::from_peft_json(&v, &cfg_name)?;
    let w_path = dir.join(WEIGHTS_FILE);
    if !w_path.exists() && dir.join("adapter_model.bin").exists() {
        return Err(Error::msg(format!(
            "{}: only adapter_model.bin (a pickle) is present; save the adapter with \
             safe_serialization=True to get {WEIGHTS_FILE}",
            dir.display()
        )));
    }
    let tensors = StateDict::open(&w_path)?;
    Adapter::from_config(config, tensors, &w_path.display().to_string())
}

/// The model's LoRA parameters by name: `<module>.lora_A.weight` / `.lora_B.weight`.
fn lora_params(model: &dyn Module) -> Vec<(String, Tensor)> {
    model
        .named_parameters()
        .into_iter()
        .filter(|(n, _)| split_key(n).is_some())
        .collect()
}

/// Write `model`'s LoRA tensors (f32, PEFT keys) and `cfg` as a PEFT adapter in `dir`, each
/// file via temp + rename. The tensors are checked against `cfg` first, so the adapter we
/// write is one we (and PEFT) can load.
pub fn save_adapter(
    dir: impl AsRef<Path>,
    cfg: &LoraConfig,
    model: &dyn Module,
    base_model_class: &str,
    parent_library: &str,
) -> Result<()> {
    let dir = dir.as_ref();
    cfg.validate()?;
    let tensors = lora_params(model)
        .into_iter()
        .map(|(n, t)| Ok((n, t.detach().to_dtype(DType::F32)?.contiguous()?)))
        .collect::<Result<Vec<_>>>()?;
    check_tensors(
        cfg,
        &StateDict::from_tensors(tensors.clone()),
        "model being saved",
    )?;
    std::fs::create_dir_all(dir).map_err(|source| Error::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let tensors: Vec<(String, Tensor)> = tensors
        .into_iter()
        .map(|(n, t)| (format!("{PREFIX}{n}"), t))
        .collect();
    let meta = BTreeMap::from([("format".to_string(), "pt".to_string())]);
    save_safetensors(dir.join(WEIGHTS_FILE), &tensors, Some(&meta))?;
    let json = cfg.to_peft_json(base_model_class, parent_library);
    write_atomic(&dir.join(CONFIG_FILE), |w| {
        serde_json::to_writer_pretty(&mut *w, &json).map_err(|e| Error::msg(e.to_string()))?;
        w.write_all(b"\n").map_err(|e| Error::msg(e.to_string()))
    })
}

/// Copy every adapter tensor into the model parameter of the same name; returns how many.
/// The adapter must cover exactly the model's LoRA layers with matching shapes; nothing is
/// changed unless all fit. The model must be unmerged, and built with the adapter's config
/// (`LoraPlan::new(adapter.config.clone(), ..)`): scales are not visible through `Module`.
pub fn apply_adapter(model: &dyn Module, adapter: &Adapter) -> Result<usize> {
    let params: BTreeMap<String, Tensor> = lora_params(model).into_iter().collect();
    let origin = &adapter.origin;
    let mut todo = Vec::new();
    for key in adapter.tensors.names() {
        let Some(p) = params.get(key) else {
            let module = split_key(key).map_or(key, |m| m.0);
            return Err(bad(
                origin,
                key,
                format!("module {module:?} is not a LoRA layer of the model"),
            ));
        };
        let shape = adapter.tensors.shape(key).expect("listed key");
        if &shape != p.shape() {
            return Err(bad(
                origin,
                key,
                format!("shape {shape} in the adapter, {} in the model", p.shape()),
            ));
        }
        todo.push((key, p));
    }
    let missing: Vec<&str> = params
        .keys()
        .map(String::as_str)
        .filter(|k| !adapter.tensors.contains(k))
        .collect();
    if !missing.is_empty() {
        return Err(Error::Format {
            path: origin.clone(),
            record: "tensors".into(),
            msg: format!(
                "the model has LoRA layers the adapter lacks: {}",
                missing.join(", ")
            ),
        });
    }
    let _g = crate::no_grad();
    for (key, p) in &todo {
        p.assign(&adapter.tensors.get(key)?)
            .map_err(|e| e.context(format!("{origin}: {key}")))?;
    }
    Ok(todo.len())
}
