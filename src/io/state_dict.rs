//! `StateDict`: tensors by the reference implementation's names ("model.0.conv.weight"),
//! ordered. Entries from a safetensors file stay in the map until `get` copies them out.
use super::safetensors::Safetensors;
use crate::{DType, Error, Result, Shape, Tensor};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

#[derive(Clone, Debug)]
enum Entry {
    /// Tensor `key` of a mapped file, not yet copied.
    Lazy {
        file: Arc<Safetensors>,
        key: String,
    },
    Ready(Tensor),
}

#[derive(Clone, Debug, Default)]
pub struct StateDict {
    entries: BTreeMap<String, Entry>,
    /// Labels errors: the file the entries came from, or "state dict".
    source: String,
}

impl StateDict {
    pub fn new() -> Self {
        StateDict {
            entries: BTreeMap::new(),
            source: "state dict".into(),
        }
    }

    /// Every tensor of an open file, lazily.
    pub fn from_safetensors(file: Arc<Safetensors>) -> Self {
        let entries = file
            .names()
            .into_iter()
            .map(|k| {
                let e = Entry::Lazy {
                    file: file.clone(),
                    key: k.to_string(),
                };
                (k.to_string(), e)
            })
            .collect();
        StateDict {
            entries,
            source: file.path().to_string(),
        }
    }

    /// Open a safetensors file as a state dict.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Ok(Self::from_safetensors(Arc::new(Safetensors::open(path)?)))
    }

    /// From tensors in memory (e.g. `nn::state_dict_of`).
    pub fn from_tensors(tensors: impl IntoIterator<Item = (String, Tensor)>) -> Self {
        let mut sd = Self::new();
        for (k, t) in tensors {
            sd.insert(k, t);
        }
        sd
    }

    pub fn insert(&mut self, name: impl Into<String>, t: Tensor) {
        self.entries.insert(name.into(), Entry::Ready(t));
    }
    pub fn remove(&mut self, name: &str) -> bool {
        self.entries.remove(name).is_some()
    }
    pub fn contains(&self, name: &str) -> bool {
        self.entries.contains_key(name)
    }
    pub fn len(&self) -> usize {
        self.entries.len()
    }
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
    /// Names in sorted order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(|s| s.as_str())
    }
    /// Where the entries came from (file path or "state dict").
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Shape without copying any data.
    pub fn shape(&self, name: &str) -> Option<Shape> {
        match self.entries.get(name)? {
            Entry::Lazy { file, key } => file.info(key).map(|i| i.shape.clone()),
            Entry::Ready(t) => Some(t.shape().clone()),
        }
    }
    pub fn dtype(&self, name: &str) -> Option<DType> {
        match self.entries.get(name)? {
            Entry::Lazy { file, key } => file.info(key).map(|i| i.dtype),
            Entry::Ready(t) => Some(t.dtype()),
        }
    }

    /// The tensor called `name` (copied out of the file now if it is lazy).
    pub fn get(&self, name: &str) -> Result<Tensor> {
        match self.entries.get(name) {
            Some(Entry::Lazy { file, key }) => file.tensor(key),
            Some(Entry::Ready(t)) => Ok(t.clone()),
            None => Err(Error::Format {
                path: self.source.clone(),
                record: format!("tensor {name:?}"),
                msg: format!("missing from the state dict ({} entries)", self.len()),
            }),
        }
    }

    /// Entries whose name starts with `prefix`, names unchanged.
    pub fn filter_prefix(&self, prefix: &str) -> StateDict {
        StateDict {
            entries: self
                .entries
                .iter()
                .filter(|(k, _)| k.starts_with(prefix))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            source: self.source.clone(),
        }
    }

    /// Entries whose name starts with `prefix`, with the prefix removed
    /// (`weights.model.0.conv.weight` → `model.0.conv.weight` for prefix `weights.`).
    pub fn strip_prefix(&self, prefix: &str) -> StateDict {
        StateDict {
            entries: self
                .entries
                .iter()
                .filter_map(|(k, v)| Some((k.strip_prefix(prefix)?.to_string(), v.clone())))
                .collect(),
            source: self.source.clone(),
        }
    }

    /// Every entry materialised, in name order (for saving).
    pub fn to_vec(&self) -> Result<Vec<(String, Tensor)>> {
        self.names()
            .map(|k| Ok((k.to_string(), self.get(k)?)))
            .collect()
    }
}
