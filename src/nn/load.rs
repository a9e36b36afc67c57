//! Loading a state dict into a module tree, checking every name and shape first so a bad
//! checkpoint changes nothing.
use super::Module;
use crate::io::StateDict;
use crate::{Error, Result, Tensor};
use std::collections::HashSet;

/// What `load_state_dict` did. With `strict`, `missing` and `unexpected` are always empty.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LoadReport {
    pub loaded: usize,
    /// Names the module has and the state dict lacks (left unchanged).
    pub missing: Vec<String>,
    /// Names the state dict has and the module lacks (ignored).
    pub unexpected: Vec<String>,
    /// `num_batches_tracked` buffers absent from the state dict, kept as they were (torch
    /// accepts their absence for state dicts without version metadata, as in safetensors).
    pub defaulted: Vec<String>,
}

/// torch's BatchNorm tolerates a missing counter; nothing else is optional.
fn optional(name: &str) -> bool {
    name == "num_batches_tracked" || name.ends_with(".num_batches_tracked")
}

/// Copy `sd` into `module`'s parameters and buffers in place (converting dtype).
/// Any shape mismatch is an error; with `strict`, so is any missing or unexpected name.
/// Errors list every offending name (`Error::Load`) and leave the module untouched.
pub fn load_state_dict(module: &dyn Module, sd: &StateDict, strict: bool) -> Result<LoadReport> {
    let mut targets: Vec<(String, Tensor)> = Vec::new();
    module.visit_state("", &mut |n, t| targets.push((n.to_string(), t.clone())));
    let mut report = LoadReport::default();
    let mut mismatched = Vec::new();
    let mut to_load = Vec::new();
    for (name, t) in &targets {
        match sd.shape(name) {
            None if optional(name) => report.defaulted.push(name.clone()),
            None => report.missing.push(name.clone()),
            Some(s) if &s != t.shape() => {
                mismatched.push(format!("{name} (model {}, state dict {s})", t.shape()))
            }
            Some(_) => to_load.push((name, t)),
        }
    }
    let known: HashSet<&str> = targets.iter().map(|(k, _)| k.as_str()).collect();
    report.unexpected = sd
        .names()
        .filter(|n| !known.contains(n))
        .map(str::to_string)
        .collect();
    if !mismatched.is_empty()
        || (strict && !(report.missing.is_empty() && report.unexpected.is_empty()))
    {
        return Err(Error::Load {
            missing: report.missing,
            unexpected: report.unexpected,
            mismatched,
        });
    }
    let _g = crate::no_grad();
    for (name, t) in to_load {
        t.assign(&sd.get(name)?)
            .map_err(|e| e.context(format!("loading {name}")))?;
        report.loaded += 1;
    }
    Ok(report)
}
