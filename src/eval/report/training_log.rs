//! metrics.jsonl → training curves. One JSON object per line (an epoch or step), nested
//! objects flattened with `/`. Bad lines are skipped and *reported* (`file:line: why`) so a
//! run that crashed mid-write still gets a report, and the page says what was left out.
use crate::eval::plot::{LineChart, Series};
use crate::{Error, Result};
use serde_json::{Map, Value};
use std::path::Path;

/// Keys that can serve as the x axis, in order of preference.
const X_KEYS: [&str; 2] = ["epoch", "step"];
/// First path components that name a split: `train/box_loss` and `val/box_loss` share a chart.
const SPLITS: [&str; 5] = ["train", "val", "valid", "validation", "test"];

/// The numeric series of a metrics.jsonl file, against `x_key`.
#[derive(Clone, Debug, Default)]
pub struct TrainingLog {
    /// "epoch", "step", or "line" (the line number) when neither is present.
    pub x_key: String,
    /// `(key, x, y)` in first-seen key order; `null` values are NaN (a gap in the line).
    pub series: Vec<(String, Vec<f64>, Vec<f64>)>,
    /// Lines that were skipped, as `file:line: reason`.
    pub problems: Vec<String>,
    /// Keys whose values are not numbers (strings, booleans, arrays): not plotted.
    pub non_numeric_keys: Vec<String>,
    /// Lines that contributed points.
    pub records: usize,
}

impl TrainingLog {
    /// Read `path`; `Ok(None)` when it does not exist. Other I/O failures are errors.
    pub fn read(path: &Path) -> Result<Option<TrainingLog>> {
        match std::fs::read(path) {
            Ok(bytes) => Ok(Some(Self::parse(
                &String::from_utf8_lossy(&bytes),
                &path.display().to_string(),
            ))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(Error::Io {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// Parse the text of a metrics.jsonl; `name` is used in problem messages.
    pub fn parse(text: &str, name: &str) -> TrainingLog {
        let mut log = TrainingLog::default();
        let mut rows: Vec<(usize, Map<String, Value>)> = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line_no = i + 1;
            if line.trim().is_empty() {
                continue; // blank lines carry nothing (a trailing newline, a separator)
            }
            match serde_json::from_str::<Value>(line) {
                Ok(Value::Object(obj)) => {
                    let mut flat = Map::new();
                    flatten("", Value::Object(obj), &mut flat);
                    rows.push((line_no, flat));
                }
                Ok(other) => log.problems.push(format!(
                    "{name}:{line_no}: expected a JSON object, found {}",
                    kind(&other)
                )),
                Err(e) => log
                    .problems
                    .push(format!("{name}:{line_no}: not valid JSON ({e})")),
            }
        }
        let has = |k: &str| {
            rows.iter()
                .any(|(_, r)| r.get(k).is_some_and(Value::is_number))
        };
        log.x_key = X_KEYS
            .iter()
            .find(|k| has(k))
            .map_or("line".to_string(), |k| k.to_string());

        for (line_no, row) in rows {
            let x = if log.x_key == "line" {
                line_no as f64
            } else {
                match row.get(&log.x_key).and_then(Value::as_f64) {
                    Some(x) => x,
                    None => {
                        log.problems.push(format!(
                            "{name}:{line_no}: no numeric \"{}\" (the x axis of this file)",
                            log.x_key
                        ));
                        continue;
                    }
                }
            };
            log.records += 1;
            for (key, value) in row {
                if X_KEYS.contains(&key.as_str()) {
                    continue;
                }
                let y = match value {
                    Value::Number(v) => v.as_f64().unwrap_or(f64::NAN),
                    Value::Null => f64::NAN,
                    _ => {
                        if !log.non_numeric_keys.contains(&key) {
                            log.non_numeric_keys.push(key);
                        }
                        continue;
                    }
                };
                match log.series.iter_mut().find(|(k, _, _)| *k == key) {
                    Some((_, xs, ys)) => {
                        xs.push(x);
                        ys.push(y);
                    }
                    None => log.series.push((key, vec![x], vec![y])),
                }
            }
        }
        log
    }

    /// One chart per group: `train/X` and `val/X` together (chart "X"), other `P/…` keys by
    /// prefix `P`, a key without `/` alone.
    pub fn charts(&self, width: f64, height: f64) -> Vec<LineChart> {
        let mut charts: Vec<LineChart> = Vec::new();
        for (key, xs, ys) in &self.series {
            let (group, label) = group_of(key);
            let i = match charts.iter().position(|c| c.title == group) {
                Some(i) => i,
                None => {
                    let mut c = LineChart::new(group.clone(), self.x_key.clone(), group);
                    c.width = width;
                    c.height = height;
                    charts.push(c);
                    charts.len() - 1
                }
            };
            let mut s = Series::new(label, xs.clone(), ys.clone());
            s.color = Some(split_color(key));
            charts[i].series.push(s);
        }
        charts
    }
}

/// `(chart, legend label)` for a key.
fn group_of(key: &str) -> (String, String) {
    match key.split_once('/') {
        Some((p, rest)) if SPLITS.contains(&p) => (rest.to_string(), p.to_string()),
        Some((p, rest)) => (p.to_string(), rest.to_string()),
        None => (key.to_string(), key.to_string()),
    }
}

/// Train blue, val orange, test green on every chart; other keys by a stable hash.
fn split_color(key: &str) -> String {
    use crate::eval::plot::LINE_COLORS;
    let i = match key.split_once('/').map(|(p, _)| p) {
        Some("train") => 0,
        Some("val" | "valid" | "validation") => 1,
        Some("test") => 2,
        _ => {
            3 + key
                .bytes()
                .fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(b as usize))
                % 7
        }
    };
    LINE_COLORS[i].to_string()
}

fn flatten(prefix: &str, v: Value, out: &mut Map<String, Value>) {
    match v {
        Value::Object(obj) => {
            for (k, v) in obj {
                let key = if prefix.is_empty() {
                    k
                } else {
                    format!("{prefix}/{k}")
                };
                flatten(&key, v, out);
            }
        }
        v => {
            out.insert(prefix.to_string(), v);
        }
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
