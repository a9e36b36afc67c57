//! Parity checking (`ed-check`): open a fixture, run the checker for its `kind`, compare
//! every produced tensor with the reference. The kind registry is `run_kind`, one match;
//! model checkers join it as the models arrive.
pub mod coco_eval;
pub mod compare;
pub mod fixture;
pub mod grounding_dino;
mod grounding_dino_tokens;
pub mod ops;
pub mod preprocess;
pub mod sam;
pub mod sam_lora;
pub mod tolerance;
pub mod yolov8;
pub mod yolov8_postprocess;

pub use compare::{CheckLine, compare_tensors, compare_values};
pub use fixture::Fixture;
pub use tolerance::{Tolerance, Tolerances};

use crate::{Error, Result};
use std::io::Write;
use std::path::Path;

/// Kinds with a checker (the arms of `run_kind`).
pub const KNOWN_KINDS: &[&str] = &[
    "coco-eval",
    "grounding-dino",
    "ops",
    "preprocess",
    "sam",
    "sam-lora",
    "yolov8-postprocess",
    "yolov8-detect",
    "yolov8-seg",
];

/// Run the checker for `kind` on `fx`: one line per compared tensor.
pub fn run_kind(kind: &str, fx: &Fixture) -> Result<Vec<CheckLine>> {
    match kind {
        "coco-eval" => coco_eval::check(fx),
        "grounding-dino" => grounding_dino::check(fx),
        "ops" => ops::check(fx),
        "preprocess" => preprocess::check(fx),
        "sam" | "sam-lora" => sam::check(fx),
        "yolov8-seg" | "yolov8-detect" => yolov8::check(fx),
        "yolov8-postprocess" => yolov8_postprocess::check(fx),
        _ => {
            let known = if KNOWN_KINDS.is_empty() {
                "none".to_string()
            } else {
                KNOWN_KINDS.join(", ")
            };
            Err(Error::msg(format!(
                "unknown kind {kind:?}: no checker for this kind yet (known: {known})"
            )))
        }
    }
}

/// Totals over every file checked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub passed: usize,
    pub failed: usize,
}

/// Check one file, writing its lines to `out`. An unreadable file or unknown kind prints an
/// error line naming the file and counts as one failure.
pub fn check_file(path: &Path, out: &mut dyn Write, sum: &mut Summary) -> std::io::Result<()> {
    let lines = Fixture::open(path).and_then(|fx| run_kind(fx.kind(), &fx));
    match lines {
        Ok(lines) => {
            for l in lines {
                writeln!(out, "{l}")?;
                if l.pass {
                    sum.passed += 1;
                } else {
                    sum.failed += 1;
                }
            }
        }
        Err(e) => {
            // Io/Format errors already start with the path; others get it here.
            let msg = e.to_string();
            let p = path.display().to_string();
            if msg.starts_with(&p) {
                writeln!(out, "ERROR {msg}")?;
            } else {
                writeln!(out, "ERROR {p}: {msg}")?;
            }
            sum.failed += 1;
        }
    }
    Ok(())
}

/// Check every file and print the summary line `N passed, M failed`.
pub fn check_files(paths: &[impl AsRef<Path>], out: &mut dyn Write) -> std::io::Result<Summary> {
    let mut sum = Summary::default();
    for p in paths {
        check_file(p.as_ref(), out, &mut sum)?;
    }
    writeln!(out, "{} passed, {} failed", sum.passed, sum.failed)?;
    Ok(sum)
}
