//! Runs the built `ed-check` binary: an unknown kind and a missing file both fail with a
//! message and the summary line; the `preprocess` fixture passes, and fails by name when a
//! copy is changed.
use edgedistill::io::{Safetensors, save_safetensors};
use edgedistill::{DType, Tensor};
use std::collections::BTreeMap;
use std::process::Command;

fn run(args: &[&std::path::Path]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ed-check"))
        .args(args)
        .output()
        .expect("run ed-check");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn unknown_kind_and_missing_file_fail() {
    let dir = std::env::temp_dir().join(format!("edgedistill-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let fx = dir.join("made-up.safetensors");
    let meta = BTreeMap::from([
        ("kind".to_string(), "made-up-kind".to_string()),
        (
            "tolerances".to_string(),
            r#"{"outputs.*": {"atol": 1e-4, "rtol": 1e-3}}"#.to_string(),
        ),
    ]);
    let t = Tensor::ones([2, 3], DType::F32);
    save_safetensors(&fx, &[("outputs.y".into(), t)], Some(&meta)).unwrap();

    let (code, text) = run(&[&fx]);
    assert_ne!(code, 0, "{text}");
    assert!(
        text.contains("unknown kind \"made-up-kind\"") && text.contains("made-up.safetensors"),
        "{text}"
    );
    assert_eq!(text.lines().last(), Some("0 passed, 1 failed"), "{text}");

    let missing = dir.join("no-such-fixture.safetensors");
    let (code, text) = run(&[&missing, &fx]);
    assert_ne!(code, 0, "{text}");
    assert!(text.contains("no-such-fixture.safetensors"), "{text}");
    assert_eq!(text.lines().last(), Some("0 passed, 2 failed"), "{text}");

    // A file that is not a fixture (no kind) names the file and the problem.
    let plain = dir.join("plain.safetensors");
    save_safetensors(&plain, &[("x".into(), Tensor::zeros(1, DType::F32))], None).unwrap();
    let (code, text) = run(&[&plain]);
    assert_ne!(code, 0);
    assert!(
        text.contains("plain.safetensors") && text.contains("kind"),
        "{text}"
    );

    let (code, _) = run(&[]);
    assert_eq!(code, 2, "no arguments is a usage error");
    let _ = std::fs::remove_dir_all(&dir);
}

const PREPROCESS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/preprocess-reference.safetensors"
);

fn temp_dir(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("edgedistill-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Every tensor of `src` (renamed by `rename`, dropped when it gives None) and its metadata
/// with `config` replaced, plus `extra`, written to `dst`.
fn rewrite(
    dst: &std::path::Path,
    rename: impl Fn(&str) -> Option<String>,
    config: Option<String>,
    extra: Vec<(String, Tensor)>,
) {
    let f = Safetensors::open(PREPROCESS).unwrap();
    let mut tensors: Vec<(String, Tensor)> = f
        .names()
        .into_iter()
        .filter_map(|n| Some((rename(n)?, f.tensor(n).unwrap())))
        .collect();
    tensors.extend(extra);
    let mut meta = f.metadata().clone();
    if let Some(c) = config {
        meta.insert("config".into(), c);
    }
    save_safetensors(dst, &tensors, Some(&meta)).unwrap();
}

fn outputs_in(path: &str) -> usize {
    let f = Safetensors::open(path).unwrap();
    f.names()
        .iter()
        .filter(|n| n.starts_with("outputs."))
        .count()
}

#[test]
fn preprocess_fixture_passes() {
    let (code, text) = run(&[std::path::Path::new(PREPROCESS)]);
    assert_eq!(code, 0, "{text}");
    let n = outputs_in(PREPROCESS);
    assert!(n >= 130, "{n} outputs");
    assert_eq!(
        text.lines().filter(|l| l.ends_with(" PASS")).count(),
        n,
        "{text}"
    );
    assert_eq!(
        text.lines().last(),
        Some(format!("{n} passed, 0 failed").as_str()),
        "{text}"
    );
}

#[test]
fn preprocess_fixture_with_one_changed_value_fails_on_that_tensor() {
    let dir = temp_dir("check-pre-corrupt");
    let bad = dir.join("corrupt.safetensors");
    let target = "outputs.sam.w37h53.96_96.pixel_values_rows";
    let f = Safetensors::open(PREPROCESS).unwrap();
    let t = f.tensor(target).unwrap();
    let mut v = t.to_vec::<f32>().unwrap();
    let mid = v.len() / 2;
    v[mid] += 0.5;
    let changed = Tensor::from_vec(v, t.dims().to_vec()).unwrap();
    rewrite(
        &bad,
        |n| (n != target).then(|| n.to_string()),
        None,
        vec![(target.to_string(), changed)],
    );

    let (code, text) = run(&[&bad]);
    assert_ne!(code, 0, "{text}");
    let fails: Vec<&str> = text.lines().filter(|l| l.contains(" FAIL")).collect();
    assert_eq!(fails.len(), 1, "{text}");
    assert!(
        fails[0].starts_with(&format!("{target} [3, 32, 96] max_abs=5.000e-1")),
        "{}",
        fails[0]
    );
    let n = outputs_in(PREPROCESS);
    assert_eq!(
        text.lines().last(),
        Some(format!("{} passed, 1 failed", n - 1).as_str()),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The checker follows `config`, not this file's names: a renamed subset passes, and an
/// output it cannot produce (unknown output, no case, unsupported param) fails by name.
#[test]
fn preprocess_checker_follows_config_and_fails_what_it_cannot_produce() {
    let dir = temp_dir("check-pre-config");
    let path = dir.join("renamed.safetensors");
    let (old_case, new_case) = ("letterbox.w37h53.48", "mine.first");
    let rename = |n: &str| {
        let n = n.replace("inputs.w37h53", "inputs.picture");
        if let Some(rest) = n.strip_prefix(&format!("outputs.{old_case}.")) {
            return Some(format!("outputs.{new_case}.{rest}"));
        }
        if let Some(rest) = n.strip_prefix(&format!("inputs.{old_case}.")) {
            return Some(format!("inputs.{new_case}.{rest}"));
        }
        // the same tensors again as a second case, which asks for a param we lack
        (n == "inputs.picture").then_some(n)
    };
    let f = Safetensors::open(PREPROCESS).unwrap();
    let extra = vec![
        (
            "outputs.mine.first.made_up".to_string(),
            Tensor::zeros(2, DType::F32),
        ),
        (
            "outputs.nobody.placement".to_string(),
            Tensor::zeros(8, DType::I64),
        ),
        (
            "outputs.mine.scaled.placement".to_string(),
            f.tensor(&format!("outputs.{old_case}.placement")).unwrap(),
        ),
    ];
    let config = serde_json::json!([
        {"name": new_case, "model": "letterbox", "image": "picture", "params": {"size": 48},
         "u8_row_stride": 1, "f32_row_stride": 3},
        {"name": "mine.scaled", "model": "letterbox", "image": "picture",
         "params": {"size": 48, "scaleup": false}},
    ]);
    rewrite(&path, rename, Some(config.to_string()), extra);

    let (code, text) = run(&[&path]);
    assert_ne!(code, 0, "{text}");
    let line = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no line for {name}:\n{text}"))
    };
    for k in [
        "placement",
        "u8_rows",
        "u8_checksum",
        "pixel_values_rows",
        "pixel_values_sums",
        "boxes",
    ] {
        assert!(
            line(&format!("outputs.{new_case}.{k}")).ends_with(" PASS"),
            "{text}"
        );
    }
    let made_up = line("outputs.mine.first.made_up");
    assert!(
        made_up.contains("FAIL") && made_up.contains("made_up"),
        "{made_up}"
    );
    let orphan = line("outputs.nobody.placement");
    assert!(
        orphan.contains("FAIL") && orphan.contains("no case"),
        "{orphan}"
    );
    let scaled = line("outputs.mine.scaled.placement");
    assert!(
        scaled.contains("FAIL") && scaled.contains("scaleup"),
        "{scaled}"
    );
    assert_eq!(text.lines().last(), Some("6 passed, 3 failed"), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}
