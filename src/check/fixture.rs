//! A parity fixture (see shared FIXTURES.md): one safetensors file with `weights.*`,
//! `adapter.*`, `inputs.*`, `outputs.*`, `grads.*` tensors and `kind`, `config`,
//! `tolerances` metadata.
use super::compare::{CheckLine, compare_tensors};
use super::tolerance::{Tolerance, Tolerances};
use crate::io::{Safetensors, StateDict};
use crate::{Error, Result, Tensor};
use std::path::Path;
use std::sync::Arc;

pub struct Fixture {
    file: Arc<Safetensors>,
    kind: String,
    tolerances: Tolerances,
}

impl Fixture {
    /// Open and check the metadata every fixture must have (`kind`; `tolerances` if present
    /// must parse). Errors name the file.
    pub fn open(path: impl AsRef<Path>) -> Result<Fixture> {
        Self::from_safetensors(Safetensors::open(path)?)
    }

    pub fn from_safetensors(file: Safetensors) -> Result<Fixture> {
        let kind = file
            .metadata()
            .get("kind")
            .cloned()
            .ok_or_else(|| Error::Format {
                path: file.path().to_string(),
                record: "metadata".into(),
                msg: "no \"kind\" entry: not a parity fixture".into(),
            })?;
        let tolerances = match file.metadata().get("tolerances") {
            Some(j) => Tolerances::from_json(file.path(), j)?,
            None => Tolerances::default(),
        };
        Ok(Fixture {
            file: Arc::new(file),
            kind,
            tolerances,
        })
    }

    pub fn path(&self) -> &str {
        self.file.path()
    }
    pub fn kind(&self) -> &str {
        &self.kind
    }
    pub fn file(&self) -> &Safetensors {
        &self.file
    }
    /// A metadata string (`reference`, `notes`, `prompt`, ...).
    pub fn meta(&self, key: &str) -> Option<&str> {
        self.file.metadata().get(key).map(|s| s.as_str())
    }
    /// A metadata entry parsed as JSON (`config`, `adapter_config`, `gt`, ...).
    pub fn meta_json(&self, key: &str) -> Result<serde_json::Value> {
        let s = self
            .meta(key)
            .ok_or_else(|| self.err("metadata", format!("no {key:?} entry")))?;
        serde_json::from_str(s)
            .map_err(|e| self.err(&format!("metadata {key:?}"), format!("bad JSON: {e}")))
    }
    /// The reference's config (`config` metadata) as JSON.
    pub fn config(&self) -> Result<serde_json::Value> {
        self.meta_json("config")
    }
    pub fn tolerances(&self) -> &Tolerances {
        &self.tolerances
    }
    pub fn tolerance(&self, name: &str) -> Tolerance {
        self.tolerances.get(name)
    }
    pub fn tensor(&self, name: &str) -> Result<Tensor> {
        self.file.tensor(name)
    }
    /// Full names starting with `prefix` ("outputs."), sorted.
    pub fn names_with_prefix(&self, prefix: &str) -> Vec<String> {
        self.file
            .names()
            .into_iter()
            .filter(|n| n.starts_with(prefix))
            .map(str::to_string)
            .collect()
    }
    /// Tensors under `prefix` with the prefix removed, lazily: `state_dict("weights.")`.
    pub fn state_dict(&self, prefix: &str) -> StateDict {
        StateDict::from_safetensors(self.file.clone()).strip_prefix(prefix)
    }

    /// Compare our value for fixture tensor `name` with the reference, under the most
    /// specific tolerance. An unreadable or absent reference is a failed line.
    pub fn compare(&self, name: &str, ours: &Tensor) -> CheckLine {
        let fail = |why: String| CheckLine::failed(name, ours.shape().clone(), why);
        match self.tensor(name) {
            Ok(r) => compare_tensors(name, ours, &r, self.tolerance(name))
                .unwrap_or_else(|e| fail(e.to_string())),
            Err(e) => fail(e.to_string()),
        }
    }

    /// `lines` plus a failed line for every `outputs.*` tensor not in `produced`: a
    /// reference output our code did not compute is a failure, not a skip.
    pub fn with_unproduced(
        &self,
        mut lines: Vec<CheckLine>,
        produced: &[String],
    ) -> Vec<CheckLine> {
        for name in self.names_with_prefix("outputs.") {
            if !produced.contains(&name) {
                let shape = self.file.info(&name).map_or_else(
                    || crate::Shape::from(Vec::<usize>::new()),
                    |i| i.shape.clone(),
                );
                lines.push(CheckLine::failed(
                    &name,
                    shape,
                    "not produced by this model",
                ));
            }
        }
        lines
    }

    fn err(&self, record: &str, msg: String) -> Error {
        Error::Format {
            path: self.path().to_string(),
            record: record.to_string(),
            msg,
        }
    }
}
