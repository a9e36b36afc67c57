//! Runs the built `ed-check` binary: an unknown kind and a missing file both fail with a
//! message and the summary line.
use edgedistill::io::save_safetensors;
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
