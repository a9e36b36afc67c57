//! YOLOv8 postprocess against ultralytics 8.4.190 through the `yolov8-postprocess` checker:
//! the shared visible fixture and three committed ones (agnostic NMS with many tied scores;
//! a class filter with `max_nms` below the candidate count, non-square input, nm = 8; the
//! mapping to a 110×70 original image).
//! Plus: wrong shapes are errors, a changed reference fails, and the predictor chain maps
//! to original pixels.
mod common;

use edgedistill::check::{Fixture, run_kind, yolov8_postprocess};
use edgedistill::data::preprocess::Letterbox;
use edgedistill::models::yolov8::postprocess::{
    Binarize, NmsConfig, non_max_suppression, predict_segment, process_mask,
};
use edgedistill::{DType, Tensor};
use std::path::{Path, PathBuf};

fn local(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn check_all_pass(path: &Path, n_outputs: usize) {
    let fx = Fixture::open(path).unwrap();
    assert_eq!(fx.kind(), "yolov8-postprocess");
    let lines = run_kind(fx.kind(), &fx).unwrap();
    assert_eq!(lines.len(), n_outputs, "{lines:?}");
    for l in &lines {
        assert!(l.pass, "{}: {l}", path.display());
    }
    // The fixture has detections, so the masks line compared something.
    let masks = lines.iter().find(|l| l.name == "outputs.masks").unwrap();
    assert!(masks.shape.dims()[0] > 0);
}

#[test]
fn shared_visible_fixture_passes() {
    let Some(p) = common::shared_or_skip("yolov8-postprocess-visible.safetensors") else {
        return;
    };
    check_all_pass(&p, 4);
}

#[test]
fn committed_fixtures_pass() {
    check_all_pass(&local("yolov8-postprocess-agnostic-ties.safetensors"), 4);
    check_all_pass(&local("yolov8-postprocess-classes-maxnms.safetensors"), 4);
    // Also maps to a 110×70 original: boxes, val's `.byte()` masks and `> 0.5` masks.
    check_all_pass(&local("yolov8-postprocess-orig.safetensors"), 7);
}

#[test]
fn tied_scores_keep_the_reference_order() {
    // The agnostic fixture's scores are multiples of 1/16: many rows tie, and their order
    // is torch's introsort order, not anchor order. Rows must match exactly.
    let fx = Fixture::open(local("yolov8-postprocess-agnostic-ties.safetensors")).unwrap();
    let scores = fx.tensor("outputs.scores").unwrap().to_vec_f32().unwrap();
    let ties = scores.windows(2).filter(|w| w[0] == w[1]).count();
    assert!(ties >= 5, "fixture should have tied scores, has {ties}");
    let cfg: yolov8_postprocess::PostprocessConfig =
        serde_json::from_value(fx.config().unwrap()).unwrap();
    let pred = fx.tensor("inputs.pred").unwrap();
    let d = &non_max_suppression(&pred, cfg.nc, &cfg.nms()).unwrap()[0];
    let want = fx.tensor("outputs.boxes").unwrap().to_vec_f32().unwrap();
    let got: Vec<f32> = d.boxes.iter().flatten().copied().collect();
    assert_eq!(got, want);
}

#[test]
fn changed_reference_fails_by_name() {
    let src = local("yolov8-postprocess-classes-maxnms.safetensors");
    let fx = Fixture::open(&src).unwrap();
    let mut tensors: Vec<(String, Tensor)> = fx
        .names_with_prefix("")
        .into_iter()
        .map(|n| {
            let t = fx.tensor(&n).unwrap();
            (n, t)
        })
        .collect();
    // Flip one mask pixel.
    let m = tensors
        .iter_mut()
        .find(|(n, _)| n == "outputs.masks")
        .unwrap();
    let dims = m.1.dims().to_vec();
    let mut v = m.1.to_vec::<u8>().unwrap();
    v[dims[1] * dims[2] / 2 + dims[2] / 2] ^= 1;
    m.1 = Tensor::from_vec(v, dims).unwrap();
    let meta = fx.file().metadata().clone();
    let out = std::env::temp_dir().join(format!("ed-ypost-{}.safetensors", std::process::id()));
    edgedistill::io::save_safetensors(&out, &tensors, Some(&meta)).unwrap();
    let fx2 = Fixture::open(&out).unwrap();
    let lines = run_kind("yolov8-postprocess", &fx2).unwrap();
    let _ = std::fs::remove_file(&out);
    let bad: Vec<&str> = lines
        .iter()
        .filter(|l| !l.pass)
        .map(|l| l.name.as_str())
        .collect();
    assert_eq!(bad, vec!["outputs.masks"]);
}

#[test]
fn wrong_shapes_are_errors() {
    let cfg: yolov8_postprocess::PostprocessConfig = serde_json::from_str(
        r#"{"nc": 3, "nm": 4, "conf_thres": 0.25, "iou_thres": 0.7, "max_det": 10,
            "agnostic": false, "imgsz": [32, 32]}"#,
    )
    .unwrap();
    let pred = Tensor::zeros([1, 11, 20], DType::F32);
    let proto = Tensor::zeros([1, 4, 8, 8], DType::F32);
    assert!(yolov8_postprocess::run(&pred, &proto, &cfg).is_ok());
    let bad_pred = Tensor::zeros([1, 10, 20], DType::F32);
    let err = yolov8_postprocess::run(&bad_pred, &proto, &cfg).unwrap_err();
    assert!(err.to_string().contains("inputs.pred"), "{err}");
    let bad_proto = Tensor::zeros([1, 5, 8, 8], DType::F32);
    assert!(yolov8_postprocess::run(&pred, &bad_proto, &cfg).is_err());
    assert!(
        non_max_suppression(
            &Tensor::zeros([11, 20], DType::F32),
            3,
            &NmsConfig::default()
        )
        .is_err()
    );
    let d = non_max_suppression(&pred, 3, &NmsConfig::default()).unwrap();
    assert!(process_mask(&Tensor::zeros([4, 8], DType::F32), &d[0], (32, 32)).is_err());
    // Unknown config keys are refused, not ignored.
    let extra = r#"{"nc": 3, "nm": 4, "conf_thres": 0.25, "iou_thres": 0.7, "max_det": 10,
        "agnostic": false, "imgsz": [32, 32], "multi_label": true}"#;
    assert!(serde_json::from_str::<yolov8_postprocess::PostprocessConfig>(extra).is_err());
}

#[test]
fn predictor_chain_to_original() {
    // One anchor: a 40×20 box at input (32, 32) of a 64² letterbox of a 128×64 image
    // (content 64×32 at top 16), logit +1 everywhere.
    let mut pred = vec![0f32; 4 + 1 + 1];
    pred[..5].copy_from_slice(&[32.0, 32.0, 40.0, 20.0, 0.9]);
    pred[5] = 1.0;
    let pred = Tensor::from_vec(pred, [1, 6, 1]).unwrap();
    let proto = Tensor::from_vec(vec![1f32; 16 * 16], [1, 1, 16, 16]).unwrap();
    let p = Letterbox { size: 64 }.placement(128, 64);
    let out = predict_segment(
        &pred,
        &proto,
        1,
        &NmsConfig::default(),
        &[p],
        Binarize::Half,
    )
    .unwrap();
    let o = &out[0];
    assert_eq!(o.boxes, vec![[24.0, 12.0, 104.0, 52.0]]);
    // Input mask: x 12..52, y 22..42 → original x 24..104, y 12..52 (scale 2).
    let m = &o.masks[0];
    assert_eq!((m.width, m.height), (128, 64));
    assert_eq!(m.area(), 80 * 40);
    // A negative logit gives an empty mask, and the predictor drops the detection.
    let neg = Tensor::from_vec(vec![-1f32; 16 * 16], [1, 1, 16, 16]).unwrap();
    let out = predict_segment(&pred, &neg, 1, &NmsConfig::default(), &[p], Binarize::Half).unwrap();
    assert!(out[0].scores.is_empty() && out[0].masks.is_empty());
}

#[test]
fn process_mask_300_detections_at_640() {
    // Speed check (printed) on the largest case the predictor meets; correctness of the
    // values is the fixtures' job, here every mask must be non-empty inside its box.
    let a = 300;
    let (nm, s) = (32, 640usize);
    let mut rng = edgedistill::tensor::Rng::new(7);
    let proto = Tensor::randn(vec![nm, s / 4, s / 4], 0.0, 1.0, &mut rng);
    let mut v = vec![0f32; (4 + 1 + nm) * a];
    for k in 0..a {
        let f = k as f32 / a as f32;
        v[k] = 60.0 + 500.0 * f;
        v[a + k] = 600.0 - 500.0 * f;
        v[2 * a + k] = 120.0;
        v[3 * a + k] = 100.0;
        v[4 * a + k] = 0.3 + 0.6 * f;
        for m in 0..nm {
            v[(5 + m) * a + k] = if m == k % nm { 5.0 } else { 0.0 };
        }
    }
    let pred = Tensor::from_vec(v, [1, 5 + nm, a]).unwrap();
    let cfg = NmsConfig {
        iou: 1.0,
        ..NmsConfig::default()
    };
    let d = &non_max_suppression(&pred, 1, &cfg).unwrap()[0];
    assert_eq!(d.len(), 300);
    let t = std::time::Instant::now();
    let masks = process_mask(&proto, d, (s, s)).unwrap();
    eprintln!("process_mask: 300 detections at 640²: {:?}", t.elapsed());
    assert!(
        masks
            .iter()
            .all(|m| !m.is_empty() && m.rect[2] - m.rect[0] == 120)
    );
}
