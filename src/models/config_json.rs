//! Reading a transformers config dict (config.json, or a fixture's `config`): typed getters
//! that fall back to transformers' default when a key is absent or null, and name the model,
//! the sub-config and the key when a value has the wrong type.
use crate::{Error, Result};
use serde_json::Value;

#[derive(Clone, Copy)]
pub struct Obj<'a> {
    pub v: &'a Value,
    /// "Grounding DINO config: backbone_config" — the prefix of every message.
    pub name: &'a str,
}

impl<'a> Obj<'a> {
    pub fn new(v: &'a Value, name: &'a str) -> Obj<'a> {
        Obj { v, name }
    }
    pub fn get(&self, k: &str) -> Option<&'a Value> {
        self.v.get(k).filter(|x| !x.is_null())
    }
    fn bad(&self, k: &str, x: &Value, what: &str) -> Error {
        Error::msg(format!("{}: {k} = {x} is not {what}", self.name))
    }
    /// The sub-object `k` (an empty one when absent, so every key takes its default).
    pub fn sub(&self, k: &str) -> Result<Value> {
        match self.get(k) {
            None => Ok(Value::Object(Default::default())),
            Some(x) if x.is_object() => Ok(x.clone()),
            Some(x) => Err(self.bad(k, x, "an object")),
        }
    }
    pub fn usize(&self, k: &str, default: usize) -> Result<usize> {
        match self.get(k) {
            None => Ok(default),
            Some(x) => x
                .as_u64()
                .map(|u| u as usize)
                .ok_or_else(|| self.bad(k, x, "a count")),
        }
    }
    pub fn f64(&self, k: &str, default: f64) -> Result<f64> {
        match self.get(k) {
            None => Ok(default),
            Some(x) => x.as_f64().ok_or_else(|| self.bad(k, x, "a number")),
        }
    }
    pub fn bool(&self, k: &str, default: bool) -> Result<bool> {
        match self.get(k) {
            None => Ok(default),
            Some(x) => x.as_bool().ok_or_else(|| self.bad(k, x, "a bool")),
        }
    }
    pub fn str(&self, k: &str, default: &'a str) -> Result<&'a str> {
        match self.get(k) {
            None => Ok(default),
            Some(x) => x.as_str().ok_or_else(|| self.bad(k, x, "a string")),
        }
    }
    pub fn usizes(&self, k: &str, default: &[usize]) -> Result<Vec<usize>> {
        match self.get(k) {
            None => Ok(default.to_vec()),
            Some(Value::Array(a)) => a
                .iter()
                .map(|x| {
                    x.as_u64()
                        .map(|u| u as usize)
                        .ok_or_else(|| self.bad(k, x, "a list of counts"))
                })
                .collect(),
            Some(x) => Err(self.bad(k, x, "a list")),
        }
    }
    pub fn strs(&self, k: &str) -> Result<Option<Vec<String>>> {
        match self.get(k) {
            None => Ok(None),
            Some(Value::Array(a)) => a
                .iter()
                .map(|x| {
                    x.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| self.bad(k, x, "a list of names"))
                })
                .collect::<Result<Vec<_>>>()
                .map(Some),
            Some(x) => Err(self.bad(k, x, "a list")),
        }
    }
}

/// Read `dir/config.json` as JSON, errors naming the file.
pub fn read_config(path: &std::path::Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::Io {
        path: path.to_path_buf(),
        source: e,
    })?;
    serde_json::from_str(&text).map_err(|e| Error::Format {
        path: path.display().to_string(),
        record: "config".into(),
        msg: e.to_string(),
    })
}

/// An activation transformers names in a config (ACT2FN), for the ones these models use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Act {
    Gelu,
    GeluTanh,
    Relu,
}

impl Act {
    pub fn parse(o: &Obj, k: &str, default: &str) -> Result<Act> {
        match o.str(k, default)? {
            "gelu" => Ok(Act::Gelu),
            "gelu_new" | "gelu_pytorch_tanh" => Ok(Act::GeluTanh),
            "relu" => Ok(Act::Relu),
            other => Err(Error::msg(format!(
                "{}: {k} = {other:?} is not supported (gelu, gelu_new, gelu_pytorch_tanh, relu)",
                o.name
            ))),
        }
    }
    pub fn apply(self, x: &crate::Tensor) -> Result<crate::Tensor> {
        match self {
            Act::Gelu => x.gelu(),
            Act::GeluTanh => x.gelu_tanh(),
            Act::Relu => x.relu(),
        }
    }
}
