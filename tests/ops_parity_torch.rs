//! Op parity with PyTorch: tests/fixtures/ops-torch.safetensors (made by
//! tools/reference/make_ops_fixture.py with torch 2.15, float64) holds 35 cases of inputs,
//! torch outputs and torch gradients; every one must match ours to the fixture's tolerance.
use edgedistill::check::{Fixture, check_files};

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/ops-torch.safetensors"
);

#[test]
fn every_op_case_matches_torch_forward_and_backward() {
    let fx = Fixture::open(FIXTURE).unwrap();
    assert_eq!(fx.kind(), "ops");
    let lines = edgedistill::check::run_kind("ops", &fx).unwrap();
    let failed: Vec<String> = lines
        .iter()
        .filter(|l| !l.pass)
        .map(|l| l.to_string())
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} tensors differ from torch:\n{}",
        failed.len(),
        lines.len(),
        failed.join("\n")
    );
    // every output and every stored gradient was compared
    let outputs = fx.names_with_prefix("outputs.").len();
    let grads = fx.names_with_prefix("grads.").len();
    assert_eq!(lines.len(), outputs + grads);
    assert!(
        outputs >= 33 && grads >= 40,
        "{outputs} outputs, {grads} grads"
    );
}

#[test]
fn ed_check_reports_the_ops_fixture() {
    let mut out = Vec::new();
    let sum = check_files(&[FIXTURE], &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert_eq!(sum.failed, 0, "{text}");
    assert!(
        text.trim_end()
            .ends_with(&format!("{} passed, 0 failed", sum.passed)),
        "{text}"
    );
}
