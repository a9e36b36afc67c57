//! SAM (transformers' SamModel) parity: `ed-check` kinds sam / sam-lora on the shared
//! fixtures and the committed ones of other sizes, windows (with padding), global layers,
//! box counts, seeds and weight names; the mask postprocessing against transformers'
//! post_process_masks; and the errors a bad checkpoint or prompt gets.
mod common;
use edgedistill::check::{Fixture, run_kind};
use edgedistill::data::preprocess::Placement;
use edgedistill::io::StateDict;
use edgedistill::models::sam::postprocess::{post_process_masks, upscale_masks};
use edgedistill::models::sam::{Prompts, SamConfig, SamModel};
use edgedistill::nn::Module;
use edgedistill::{DType, Tensor};
use std::path::{Path, PathBuf};

fn committed(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn check(path: &Path) {
    let fx = Fixture::open(path).unwrap();
    let lines = run_kind(fx.kind(), &fx).unwrap();
    assert!(
        lines.len() >= 2,
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
fn shared_sam_fixture() {
    if let Some(p) = common::shared_or_skip("sam-visible.safetensors") {
        check(&p);
    }
}

#[test]
fn shared_sam_lora_fixture() {
    if let Some(p) = common::shared_or_skip("sam-lora-visible.safetensors") {
        check(&p);
    }
}

#[test]
fn committed_sam_lora_fixtures() {
    // target_modules as a list ["q_proj", "v_proj"] with r 2, alpha 6; rsLoRA r 4 on the
    // vision encoder's qkv/proj, the decoder's out_proj, hypernetwork MLPs and IoU head.
    for f in [
        "sam-lora-list-r2.safetensors",
        "sam-lora-rslora.safetensors",
    ] {
        check(&committed(f));
    }
}

#[test]
fn committed_sam_fixtures() {
    // 96² input, patch 8, window 5 over a 12×12 grid (padding), 3 layers, global [2],
    // batch 2 × 3 boxes; window 4, no global layer, 4 heads, 1 box; official
    // segment-anything names mapped on load.
    for f in [
        "sam-win3-pad.safetensors",
        "sam-noglobal-1box.safetensors",
        "sam-official-names.safetensors",
    ] {
        check(&committed(f));
    }
}

#[test]
fn postprocess_matches_transformers() {
    let fx = edgedistill::io::Safetensors::open(committed("sam-postprocess.safetensors")).unwrap();
    let cases: serde_json::Value =
        serde_json::from_str(fx.metadata().get("cases").unwrap()).unwrap();
    for (i, c) in cases.as_array().unwrap().iter().enumerate() {
        let g = |k: &str, j: usize| c[k][j].as_u64().unwrap() as u32;
        let pad = c["pad"].as_u64().unwrap() as u32;
        let p = Placement {
            orig_h: g("orig", 0),
            orig_w: g("orig", 1),
            new_h: g("reshaped", 0),
            new_w: g("reshaped", 1),
            left: 0,
            top: 0,
            input_w: pad,
            input_h: pad,
        };
        let low = fx.tensor(&format!("case{i}.low_res")).unwrap();
        if let Ok(want) = fx.tensor(&format!("case{i}.logits")) {
            let got = upscale_masks(&low, &p).unwrap();
            assert_eq!(got.dims(), want.dims());
            common::assert_close(
                &common::vals(&got),
                &common::vals(&want),
                1e-4,
                1e-4,
                "logits",
            );
        }
        let want = fx
            .tensor(&format!("case{i}.masks"))
            .unwrap()
            .to_vec::<u8>()
            .unwrap();
        let got = post_process_masks(&low, &p, 0.0)
            .unwrap()
            .to_vec::<u8>()
            .unwrap();
        let differ = got.iter().zip(&want).filter(|(a, b)| a != b).count();
        // Only pixels whose logit is within f32 rounding of 0 may flip.
        assert!(
            differ * 10_000 <= want.len(),
            "case {i}: {differ} of {} differ",
            want.len()
        );
    }
}

fn tiny() -> (SamConfig, StateDict) {
    let fx = Fixture::open(committed("sam-noglobal-1box.safetensors")).unwrap();
    (
        SamConfig::from_json(&fx.config().unwrap()).unwrap(),
        fx.state_dict("weights."),
    )
}

#[test]
fn bad_checkpoints_name_every_problem() {
    let (cfg, sd) = tiny();
    let mut bad = StateDict::new();
    for n in sd.names() {
        if n == "mask_decoder.iou_token.weight" {
            continue; // missing
        }
        let t = sd.get(n).unwrap();
        let t = if n == "vision_encoder.neck.conv1.weight" {
            Tensor::zeros([3, 3], DType::F32) // mis-shaped
        } else {
            t
        };
        bad.insert(n, t);
    }
    bad.insert("mask_decoder.extra.weight", Tensor::zeros([2], DType::F32));
    let e = SamModel::from_state_dict(&cfg, &bad, "bad.safetensors")
        .err()
        .expect("a broken checkpoint must not load")
        .to_string();
    for want in [
        "bad.safetensors",
        "mask_decoder.iou_token.weight",
        "vision_encoder.neck.conv1.weight",
        "[3, 3]",
        "mask_decoder.extra.weight",
    ] {
        assert!(e.contains(want), "error lacks {want:?}: {e}");
    }
}

#[test]
fn bad_config_and_prompts_are_errors() {
    let (cfg, sd) = tiny();
    let mut v = serde_json::to_value(serde_json::json!({
        "vision_config": {"hidden_size": 30, "num_attention_heads": 4}
    }))
    .unwrap();
    let e = SamConfig::from_json(&v).unwrap_err().to_string();
    assert!(e.contains("not divisible by 4 heads"), "{e}");
    v["vision_config"]["hidden_act"] = "swish".into();
    assert!(
        SamConfig::from_json(&v)
            .unwrap_err()
            .to_string()
            .contains("swish")
    );

    let model = SamModel::from_state_dict(&cfg, &sd, "tiny").unwrap();
    let s = cfg.vision.image_size;
    let e = model
        .image_embeddings(&Tensor::zeros([1, 3, s + 8, s], DType::F32))
        .unwrap_err()
        .to_string();
    assert!(e.contains("pixel_values"), "{e}");
    let emb = model
        .image_embeddings(&Tensor::zeros([1, 3, s, s], DType::F32))
        .unwrap();
    let boxes = Tensor::zeros([1, 2, 3], DType::F32);
    let e = model
        .decode(
            &emb,
            &Prompts {
                boxes: Some(&boxes),
                ..Default::default()
            },
            true,
        )
        .err()
        .expect("a [1, 2, 3] box tensor must be refused")
        .to_string();
    assert!(e.contains("boxes") && e.contains("[1, nb, 4]"), "{e}");
}

/// Our backward through the prompt encoder and mask decoder against PyTorch's on the
/// shared fixture's weights: d/dθ [Σ pred_masks·R + Σ iou·R2] for every decoder weight.
#[test]
fn decoder_gradients_match_torch() {
    let Some(shared) = common::shared_or_skip("sam-visible.safetensors") else {
        return;
    };
    let base = Fixture::open(&shared).unwrap();
    let cfg = SamConfig::from_json(&base.config().unwrap()).unwrap();
    let model =
        SamModel::from_state_dict(&cfg, &base.state_dict("weights."), "sam-visible").unwrap();
    let fx =
        edgedistill::io::Safetensors::open(committed("sam-decoder-grads.safetensors")).unwrap();
    let emb = fx.tensor("inputs.image_embeddings").unwrap();
    let boxes = fx.tensor("inputs.input_boxes").unwrap();
    let out = model
        .decode(
            &emb,
            &Prompts {
                boxes: Some(&boxes),
                ..Default::default()
            },
            false,
        )
        .unwrap();
    let loss = out
        .masks
        .mul(&fx.tensor("inputs.r").unwrap())
        .unwrap()
        .sum_all()
        .unwrap()
        .add(
            &out.iou_scores
                .mul(&fx.tensor("inputs.r2").unwrap())
                .unwrap()
                .sum_all()
                .unwrap(),
        )
        .unwrap();
    let want = fx.tensor("outputs.loss").unwrap().to_vec_f64().unwrap()[0];
    assert!((loss.to_scalar_f64().unwrap() - want).abs() < 1e-3 * want.abs().max(1.0));
    loss.backward().unwrap();
    let params: std::collections::HashMap<String, Tensor> =
        model.named_parameters().into_iter().collect();
    let mut checked = 0;
    for name in fx
        .names()
        .into_iter()
        .filter(|n| n.starts_with("grads."))
        .map(str::to_string)
    {
        let p = &params[&name["grads.".len()..]];
        let g = p.grad().unwrap_or_else(|| panic!("{name}: no gradient"));
        let r = fx.tensor(&name).unwrap().to_vec_f64().unwrap();
        let scale = r.iter().fold(0f64, |m, v| m.max(v.abs()));
        let got = g.to_vec_f64().unwrap();
        let err = got
            .iter()
            .zip(&r)
            .fold(0f64, |m, (a, b)| m.max((a - b).abs()));
        assert!(
            err <= 1e-4 + 1e-4 * scale,
            "{name}: max |Δ| {err:.3e}, largest |ref| {scale:.3e}"
        );
        checked += 1;
    }
    assert!(checked > 100, "{checked} gradients checked");
}
