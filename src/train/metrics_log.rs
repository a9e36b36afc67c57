//! Per-epoch metrics: `results.csv` (header from the first row's keys, columns in a stable
//! order) and `metrics.jsonl` (one JSON object per epoch, keys in the same order). Both
//! are rewritten atomically after every epoch, so a crash leaves the previous version.
//! A resumed run reloads `results.csv`, dropping rows past the checkpoint's epoch.
use crate::io::atomic::write_atomic;
use crate::{Error, Result};
use std::path::{Path, PathBuf};

/// The two log files of one run directory.
pub struct MetricsLog {
    dir: PathBuf,
    columns: Vec<String>,
    rows: Vec<Vec<f64>>,
}

impl MetricsLog {
    /// A fresh, empty log in `dir` (files are written on the first `append`).
    pub fn new(dir: &Path) -> Self {
        MetricsLog {
            dir: dir.to_path_buf(),
            columns: Vec::new(),
            rows: Vec::new(),
        }
    }

    /// Reload `dir/results.csv` keeping the first `rows` rows (those the checkpoint being
    /// resumed had written). A missing file with `rows == 0` is a fresh log.
    pub fn resume(dir: &Path, rows: usize) -> Result<Self> {
        let mut log = MetricsLog::new(dir);
        let path = log.csv_path();
        if rows == 0 && !path.exists() {
            return Ok(log);
        }
        let text = std::fs::read_to_string(&path).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
        let bad = |line: usize, msg: String| Error::Format {
            path: path.display().to_string(),
            record: format!("line {line}"),
            msg,
        };
        let mut lines = text.lines();
        let header = lines.next().ok_or_else(|| bad(1, "empty file".into()))?;
        log.columns = header.split(',').map(str::to_string).collect();
        for (i, line) in lines.take(rows).enumerate() {
            let row = line
                .split(',')
                .map(|v| v.trim().parse::<f64>())
                .collect::<std::result::Result<Vec<f64>, _>>()
                .map_err(|e| bad(i + 2, format!("not a number: {e}")))?;
            if row.len() != log.columns.len() {
                return Err(bad(
                    i + 2,
                    format!("{} values for {} columns", row.len(), log.columns.len()),
                ));
            }
            log.rows.push(row);
        }
        if log.rows.len() < rows {
            return Err(bad(
                log.rows.len() + 2,
                format!("has {} rows, the checkpoint expects {rows}", log.rows.len()),
            ));
        }
        Ok(log)
    }

    pub fn csv_path(&self) -> PathBuf {
        self.dir.join("results.csv")
    }
    pub fn jsonl_path(&self) -> PathBuf {
        self.dir.join("metrics.jsonl")
    }
    /// Rows so far.
    pub fn len(&self) -> usize {
        self.rows.len()
    }
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
    /// Column names (fixed by the first row).
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// Add one epoch's row and rewrite both files. The first row fixes the columns; a later
    /// row must have exactly those keys (in any order).
    pub fn append(&mut self, row: &[(String, f64)]) -> Result<()> {
        if self.columns.is_empty() {
            if let Some((k, _)) = row.iter().find(|(k, _)| k.contains([',', '\n', '"'])) {
                return Err(Error::msg(format!(
                    "metrics column {k:?} contains a comma, quote or newline"
                )));
            }
            self.columns = row.iter().map(|(k, _)| k.clone()).collect();
        }
        let mut vals = Vec::with_capacity(self.columns.len());
        for c in &self.columns {
            let v = row.iter().find(|(k, _)| k == c).ok_or_else(|| {
                Error::msg(format!(
                    "metrics row has no {c:?} (columns fixed by the first row)"
                ))
            })?;
            vals.push(v.1);
        }
        if row.len() != self.columns.len() {
            return Err(Error::msg(format!(
                "metrics row has {} keys, the log has {} columns: {:?}",
                row.len(),
                self.columns.len(),
                row.iter().map(|(k, _)| k).collect::<Vec<_>>()
            )));
        }
        self.rows.push(vals);
        self.write()
    }

    fn write(&self) -> Result<()> {
        let (cols, rows) = (&self.columns, &self.rows);
        write_atomic(&self.csv_path(), |w| {
            let io = |e: std::io::Error| Error::msg(format!("write failed: {e}"));
            writeln!(w, "{}", cols.join(",")).map_err(io)?;
            for r in rows {
                let s: Vec<String> = r.iter().map(|v| format!("{v}")).collect();
                writeln!(w, "{}", s.join(",")).map_err(io)?;
            }
            Ok(())
        })?;
        write_atomic(&self.jsonl_path(), |w| {
            let io = |e: std::io::Error| Error::msg(format!("write failed: {e}"));
            for r in rows {
                let fields: Vec<String> = cols
                    .iter()
                    .zip(r)
                    .map(|(k, v)| {
                        let v = serde_json::Number::from_f64(*v)
                            .map_or("null".to_string(), |n| n.to_string());
                        format!("{}:{v}", serde_json::Value::from(k.as_str()))
                    })
                    .collect();
                writeln!(w, "{{{}}}", fields.join(",")).map_err(io)?;
            }
            Ok(())
        })
    }
}
