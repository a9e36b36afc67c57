//! Shared test helpers: random inputs and tolerant comparison.
#![allow(dead_code)]
use edgedistill::Tensor;
use edgedistill::tensor::Rng;

pub fn randn(shape: &[usize], seed: u64) -> Tensor {
    Tensor::randn(shape.to_vec(), 0.0, 1.0, &mut Rng::new(seed))
}

/// Assert two f64 vectors agree within atol + rtol*|want|.
pub fn assert_close(got: &[f64], want: &[f64], atol: f64, rtol: f64, what: &str) {
    assert_eq!(
        got.len(),
        want.len(),
        "{what}: length {} vs {}",
        got.len(),
        want.len()
    );
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= atol + rtol * w.abs() || (g.is_nan() && w.is_nan()),
            "{what}: element {i}: got {g} want {w}"
        );
    }
}

/// Row-major multi-index of flat index `i` in `dims`.
pub fn unravel(mut i: usize, dims: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; dims.len()];
    for d in (0..dims.len()).rev() {
        idx[d] = i % dims[d];
        i /= dims[d];
    }
    idx
}

pub fn ravel(idx: &[usize], dims: &[usize]) -> usize {
    idx.iter().zip(dims).fold(0, |acc, (&i, &d)| acc * d + i)
}

pub fn randn64(shape: &[usize], seed: u64) -> Tensor {
    randn(shape, seed)
        .to_dtype(edgedistill::DType::F64)
        .unwrap()
}

pub fn vals(t: &Tensor) -> Vec<f64> {
    t.to_vec_f64().unwrap()
}

/// Assert |got − want| ≤ tol·(1 + |want|) element-wise.
pub fn assert_close_rel(got: &[f64], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tol * (1.0 + w.abs()),
            "element {i}: got {g}, want {w}"
        );
    }
}

/// A shared fixture file: $EDGEDISTILL_SHARED/fixtures/NAME, else ../shared (or
/// ../../shared from a worktree) next to the crate.
pub fn shared_file(name: &str) -> Option<std::path::PathBuf> {
    use std::path::{Path, PathBuf};
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut dirs: Vec<PathBuf> = std::env::var_os("EDGEDISTILL_SHARED")
        .map(PathBuf::from)
        .into_iter()
        .collect();
    dirs.push(root.join("../shared"));
    dirs.push(root.join("../../shared"));
    dirs.into_iter()
        .map(|d| d.join("fixtures").join(name))
        .find(|p| p.is_file())
}

/// [`shared_file`] for a test that needs it: `None` (the caller returns, a SKIP line is
/// printed) on a developer machine without `../shared`, a failure under `CI=true`.
pub fn shared_or_skip(name: &str) -> Option<std::path::PathBuf> {
    let found = shared_file(name);
    if found.is_none() {
        assert!(
            !std::env::var("CI").is_ok_and(|v| v == "true"),
            "fixture {name} not found (set EDGEDISTILL_SHARED)"
        );
        eprintln!("SKIP: {name} not found (set EDGEDISTILL_SHARED)");
    }
    found
}

/// The Python of `$EDGEDISTILL_PYTHON` (default `python3`) if it imports every module in
/// `modules`; else `None` with a SKIP line, or a failure under `CI=true`.
pub fn python_with(modules: &[&str]) -> Option<String> {
    let py = std::env::var("EDGEDISTILL_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = std::process::Command::new(&py)
        .arg("-c")
        .arg(format!("import {}", modules.join(", ")))
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            !std::env::var("CI").is_ok_and(|v| v == "true"),
            "{py} cannot import {modules:?} (set EDGEDISTILL_PYTHON)"
        );
        eprintln!("SKIP: {py} cannot import {modules:?} (set EDGEDISTILL_PYTHON)");
        return None;
    }
    Some(py)
}

/// Run `tools/reference/onnx_run.py MODEL INPUT OUT [extra...]` (onnx.checker, then
/// onnxruntime on the safetensors input, outputs saved to OUT) with Python `py`; panics
/// with its output when it fails, else returns stdout and stderr together.
#[allow(dead_code)]
pub fn onnx_run(
    py: &str,
    model: &std::path::Path,
    input: &std::path::Path,
    out: &std::path::Path,
    extra: &[&str],
) -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tools/reference/onnx_run.py");
    let o = std::process::Command::new(py)
        .arg(script)
        .args([model, input, out])
        .args(extra)
        .output()
        .unwrap_or_else(|e| panic!("{py} {script}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        o.status.success(),
        "onnx_run.py {} failed:\n{text}",
        model.display()
    );
    text
}

/// A tiny YOLOv8-seg (3 classes, width 0.25) captured at `s`², with batch statistics from
/// two random images so its folded BN is not the identity.
pub fn tiny_seg_graph(s: usize) -> edgedistill::engine::Graph {
    use edgedistill::models::yolov8::{YoloConfig, YoloModel};
    let mut raw = YoloConfig::yolov8('n', 3, true).unwrap().raw;
    raw["scales"] = serde_json::json!({"t": [0.33, 0.25, 1024]});
    raw["scale"] = serde_json::json!("t");
    let m = YoloModel::new(&YoloConfig::from_json(&raw).unwrap(), &mut Rng::new(5)).unwrap();
    {
        let _g = edgedistill::no_grad();
        m.forward_train(&Tensor::rand([2, 3, s, s], 0.0, 1.0, &mut Rng::new(3)))
            .unwrap();
    }
    edgedistill::engine::capture_yolo(&m, s).unwrap()
}
