//! Grounding DINO (transformers' GroundingDinoForObjectDetection) parity: `ed-check` kind
//! grounding-dino on the shared fixture and the committed ones (other Swin depths, heads
//! and windows with padding, widths, query counts, five or three feature levels, a padded
//! batch of two prompts, GELU, per-layer box heads, old Swin weight names), and the
//! errors a bad checkpoint, config or prompt gets.
mod common;
use edgedistill::check::{Fixture, run_kind};
use edgedistill::io::StateDict;
use edgedistill::models::grounding_dino::{GroundingDino, GroundingDinoConfig, Inputs};
use edgedistill::{DType, Tensor};
use std::path::{Path, PathBuf};

fn committed(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn check(path: &Path, min_lines: usize) {
    let fx = Fixture::open(path).unwrap();
    let lines = run_kind(fx.kind(), &fx).unwrap();
    assert!(
        lines.len() >= min_lines,
        "{}: only {} lines",
        path.display(),
        lines.len()
    );
    for l in &lines {
        assert!(
            l.pass,
            "{}: {} failed: abs {:.3e} rel {:.3e} {:?}",
            path.display(),
            l.name,
            l.max_abs,
            l.max_rel,
            l.note
        );
    }
}

#[test]
fn shared_grounding_dino_fixture() {
    if let Some(p) = common::shared_or_skip("grounding-dino-visible.safetensors") {
        check(&p, 5);
    }
}

#[test]
fn committed_grounding_dino_fixtures() {
    // 12 outputs each: logits, boxes, hidden states, encoder states, two-stage tensors and
    // the per-layer intermediates.
    check(&committed("grounding-dino-pad5.safetensors"), 12);
    check(&committed("grounding-dino-legacy3.safetensors"), 12);
}

fn fixture_parts(name: &str) -> (GroundingDinoConfig, StateDict, Fixture) {
    let fx = Fixture::open(committed(name)).unwrap();
    let cfg = GroundingDinoConfig::from_json(&fx.config().unwrap()).unwrap();
    let sd = fx.state_dict("weights.");
    (cfg, sd, fx)
}

#[test]
fn bad_checkpoint_lists_every_problem() {
    let (cfg, sd, _) = fixture_parts("grounding-dino-pad5.safetensors");
    let mut tensors = sd.to_vec().unwrap();
    tensors.retain(|(n, _)| n != "model.decoder.layers.1.fc1.weight");
    for (n, t) in tensors.iter_mut() {
        if n == "model.enc_output.weight" {
            *t = Tensor::zeros([3, 3], DType::F32);
        }
    }
    tensors.push(("model.extra.weight".into(), Tensor::zeros([2], DType::F32)));
    let bad = StateDict::from_tensors(tensors);
    let err = GroundingDino::from_state_dict(&cfg, &bad, "ckpt.safetensors")
        .err()
        .expect("must fail")
        .to_string();
    for want in [
        "ckpt.safetensors",
        "model.decoder.layers.1.fc1.weight",
        "model.enc_output.weight",
        "model.extra.weight",
    ] {
        assert!(err.contains(want), "error should name {want}: {err}");
    }
}

#[test]
fn bad_configs_are_refused_up_front() {
    let (cfg, _, fx) = fixture_parts("grounding-dino-legacy3.safetensors");
    let mut v = fx.config().unwrap();
    v["decoder_attention_heads"] = serde_json::json!(5);
    let err = GroundingDinoConfig::from_json(&v)
        .err()
        .expect("5 heads over 32")
        .to_string();
    assert!(err.contains("decoder heads"), "{err}");
    let mut v = fx.config().unwrap();
    v["backbone_config"]["num_heads"] = serde_json::json!([2, 2]);
    let err = GroundingDinoConfig::from_json(&v)
        .err()
        .expect("heads per stage")
        .to_string();
    assert!(
        err.contains("backbone_config") && err.contains("num_heads"),
        "{err}"
    );
    let mut v = fx.config().unwrap();
    v["text_config"]["hidden_act"] = serde_json::json!("swish");
    let err = GroundingDinoConfig::from_json(&v)
        .err()
        .expect("unknown activation")
        .to_string();
    assert!(
        err.contains("text_config") && err.contains("swish"),
        "{err}"
    );
    assert_eq!(cfg.num_queries, 7);
}

#[test]
fn bad_inputs_get_clear_errors() {
    let (cfg, sd, fx) = fixture_parts("grounding-dino-legacy3.safetensors");
    let model = GroundingDino::from_state_dict(&cfg, &sd, "legacy3").unwrap();
    let px = fx.tensor("inputs.pixel_values").unwrap();
    let _g = edgedistill::no_grad();
    // A prompt longer than max_text_len (16 here).
    let long = Tensor::from_vec(vec![1040i64; 20], [1, 20]).unwrap();
    let err = model
        .forward(&Inputs {
            pixel_values: &px,
            pixel_mask: None,
            input_ids: &long,
            attention_mask: None,
            token_type_ids: None,
        })
        .err()
        .expect("too long")
        .to_string();
    assert!(
        err.contains("max_text_len 16") && err.contains("20 tokens"),
        "{err}"
    );
    // A token id outside the vocabulary.
    let ids = Tensor::from_vec(vec![101i64, 5000, 102], [1, 3]).unwrap();
    let err = model
        .forward(&Inputs {
            pixel_values: &px,
            pixel_mask: None,
            input_ids: &ids,
            attention_mask: None,
            token_type_ids: None,
        })
        .err()
        .expect("id 5000")
        .to_string();
    assert!(err.contains("input_ids holds 5000"), "{err}");
    // A pixel mask of the wrong size.
    let ids = Tensor::from_vec(vec![101i64, 1040, 1012, 102], [1, 4]).unwrap();
    let mask = Tensor::ones([1, 32, 32], DType::I64);
    let err = model
        .forward(&Inputs {
            pixel_values: &px,
            pixel_mask: Some(&mask),
            input_ids: &ids,
            attention_mask: None,
            token_type_ids: None,
        })
        .err()
        .expect("mask shape")
        .to_string();
    assert!(err.contains("pixel_mask"), "{err}");
}

#[test]
fn random_model_runs_and_is_deterministic() {
    let (cfg, _, fx) = fixture_parts("grounding-dino-legacy3.safetensors");
    let a = GroundingDino::random(&cfg, 3).unwrap();
    let b = GroundingDino::random(&cfg, 3).unwrap();
    let px = fx.tensor("inputs.pixel_values").unwrap();
    let ids = fx.tensor("inputs.input_ids").unwrap();
    let _g = edgedistill::no_grad();
    let inp = Inputs {
        pixel_values: &px,
        pixel_mask: None,
        input_ids: &ids,
        attention_mask: None,
        token_type_ids: None,
    };
    let (_, oa) = a.forward(&inp).unwrap();
    let (_, ob) = b.forward(&inp).unwrap();
    assert_eq!(oa.pred_boxes.dims(), [1, 7, 4]);
    assert_eq!(
        oa.pred_boxes.to_vec_f64().unwrap(),
        ob.pred_boxes.to_vec_f64().unwrap()
    );
    assert!(
        oa.pred_boxes
            .to_vec_f64()
            .unwrap()
            .iter()
            .all(|v| (0.0..=1.0).contains(v))
    );
}
