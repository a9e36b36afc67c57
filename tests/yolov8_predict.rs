//! Prediction from a model file: `Predictor` against forward_eval + predict_segment by
//! hand, batches, detect models, the results writer's round trip through `Results::read`,
//! and `ed-predict` end to end (outputs, overlays, bad images, bad model files). Models are
//! untrained (random init on a tiny scale); NMS runs at conf 0 so there are detections.
use edgedistill::data::Coco;
use edgedistill::data::preprocess::letterbox;
use edgedistill::eval::results::Results;
use edgedistill::eval::results_write::{prediction_records, write_results};
use edgedistill::models::yolov8::postprocess::{Binarize, NmsConfig, Prediction, predict_segment};
use edgedistill::models::yolov8::{
    ModelMeta, Predictor, YoloConfig, YoloModel, load_model, save_model,
};
use edgedistill::tensor::Rng;
use image::{Rgb, RgbImage};
use std::path::{Path, PathBuf};
use std::process::Command;

const IMGSZ: u32 = 64;

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ed-predict-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn tiny_config(seg: bool) -> serde_json::Value {
    let mut raw = YoloConfig::yolov8('n', 2, seg).unwrap().raw;
    raw["scales"] = serde_json::json!({"t": [0.33, 0.0625, 1024]});
    raw["scale"] = serde_json::json!("t");
    raw
}

fn tiny_model(seg: bool) -> (YoloModel, ModelMeta) {
    let config = tiny_config(seg);
    let m = YoloModel::new(&YoloConfig::from_json(&config).unwrap(), &mut Rng::new(7)).unwrap();
    let meta = ModelMeta {
        config,
        names: vec!["cat".into(), "dog".into()],
        category_ids: vec![3, 7],
        imgsz: IMGSZ,
    };
    (m, meta)
}

fn save_tiny(dir: &Path, seg: bool) -> PathBuf {
    let (m, meta) = tiny_model(seg);
    let p = dir.join(if seg {
        "seg.safetensors"
    } else {
        "det.safetensors"
    });
    save_model(&p, &m, &meta).unwrap();
    p
}

/// Deterministic textured images of different sizes and aspect ratios.
fn images() -> Vec<RgbImage> {
    [(80, 60), (50, 70), (64, 64)]
        .iter()
        .enumerate()
        .map(|(k, &(w, h))| {
            RgbImage::from_fn(w, h, |x, y| {
                let v = (x * 7 + y * 13 + k as u32 * 50) % 256;
                let blob =
                    (x as i32 - w as i32 / 2).pow(2) + (y as i32 - h as i32 / 2).pow(2) < 200;
                if blob {
                    Rgb([250, 30, 30])
                } else {
                    Rgb([v as u8, (255 - v) as u8, (v / 2) as u8])
                }
            })
        })
        .collect()
}

fn open_nms() -> NmsConfig {
    NmsConfig {
        conf: 0.0,
        max_det: 20,
        ..NmsConfig::default()
    }
}

#[test]
fn predictor_equals_forward_eval_and_predict_segment_by_hand() {
    let dir = tmpdir("manual");
    let path = save_tiny(&dir, true);
    let pr = Predictor::load(&path).unwrap().with_nms(open_nms());
    assert_eq!(pr.names(), ["cat", "dog"]);
    assert_eq!(pr.category_ids(), [3, 7]);
    assert!(pr.is_seg() && pr.model().is_fused());
    let (model, _) = load_model(&path).unwrap();
    let fused = model.fuse().unwrap();
    for img in images() {
        let got = pr.predict(&img).unwrap();
        let pre = letterbox(&img, IMGSZ).unwrap();
        let x = pre.pixel_values.unsqueeze(0).unwrap();
        let out = fused.forward_eval(&x).unwrap();
        let want = predict_segment(
            &out.pred,
            out.proto.as_ref().unwrap(),
            2,
            &open_nms(),
            &[pre.placement],
            Binarize::Half,
        )
        .unwrap()
        .pop()
        .unwrap();
        assert!(!got.scores.is_empty(), "no detections at conf 0");
        assert_eq!(got, want);
        assert_eq!(got.masks.len(), got.scores.len());
        for m in &got.masks {
            assert_eq!((m.width, m.height), img.dimensions());
        }
        for b in &got.boxes {
            assert!(
                b[0] >= 0.0 && b[2] <= img.width() as f32 && b[1] <= b[3],
                "{b:?}"
            );
        }
        // The unfused model gives the same detections up to BN folding's rounding.
        let unfused = model.forward_eval(&x).unwrap();
        let d = (unfused.pred.sub(&out.pred).unwrap().abs().unwrap())
            .max_all()
            .unwrap()
            .to_scalar_f64()
            .unwrap();
        assert!(d < 1e-3, "fused vs unfused pred differ by {d}");
    }
    // Default NMS is ultralytics' predictor's.
    assert_eq!(Predictor::load(&path).unwrap().nms(), &NmsConfig::default());
}

fn assert_close_pred(a: &Prediction, b: &Prediction) {
    assert_eq!(a.classes, b.classes);
    assert_eq!(a.masks.len(), b.masks.len());
    for (x, y) in a.boxes.iter().zip(&b.boxes) {
        for (u, v) in x.iter().zip(y) {
            assert!((u - v).abs() < 1e-3, "{x:?} vs {y:?}");
        }
    }
    for (u, v) in a.scores.iter().zip(&b.scores) {
        assert!((u - v).abs() < 1e-5, "{u} vs {v}");
    }
}

#[test]
fn batch_equals_one_by_one_and_detect_models_give_boxes_only() {
    let dir = tmpdir("batch");
    let imgs = images();
    for seg in [true, false] {
        let pr = Predictor::load(&save_tiny(&dir, seg))
            .unwrap()
            .with_nms(open_nms());
        assert_eq!(pr.is_seg(), seg);
        let batch = pr.predict_batch(&imgs).unwrap();
        assert_eq!(batch.len(), imgs.len());
        for (img, b) in imgs.iter().zip(&batch) {
            let one = pr.predict(img).unwrap();
            assert!(!one.scores.is_empty());
            assert_close_pred(b, &one);
            assert_eq!(one.masks.is_empty(), !seg);
        }
    }
    assert!(
        Predictor::load(&save_tiny(&dir, true))
            .unwrap()
            .predict_batch(&[])
            .unwrap()
            .is_empty()
    );
}

fn gt_json(names: &[(&str, (u32, u32))]) -> serde_json::Value {
    let images: Vec<_> = names
        .iter()
        .enumerate()
        .map(|(i, (n, (w, h)))| {
            serde_json::json!({"id": 10 + i, "file_name": n, "width": w, "height": h})
        })
        .collect();
    let anns: Vec<_> = (0..names.len())
        .map(|i| {
            serde_json::json!({"id": 1 + i, "image_id": 10 + i, "category_id": 3,
                "bbox": [10.0, 10.0, 20.0, 20.0], "area": 400.0, "iscrowd": 0,
                "segmentation": [[10.0, 10.0, 30.0, 10.0, 30.0, 30.0, 10.0, 30.0]]})
        })
        .collect();
    serde_json::json!({"images": images, "annotations": anns,
        "categories": [{"id": 3, "name": "cat"}, {"id": 7, "name": "dog"}]})
}

#[test]
fn results_json_round_trips_through_results_read() {
    let dir = tmpdir("roundtrip");
    let imgs = images();
    let pr = Predictor::load(&save_tiny(&dir, true))
        .unwrap()
        .with_nms(open_nms());
    let mut records = Vec::new();
    let mut preds = Vec::new();
    for (i, img) in imgs.iter().enumerate() {
        let p = pr.predict(img).unwrap();
        records.extend(prediction_records(&p, 10 + i as u64, pr.category_ids()).unwrap());
        preds.push(p);
    }
    let path = dir.join("predictions.json");
    write_results(&path, &records).unwrap();
    let gt_v = gt_json(&[
        ("a.png", (80, 60)),
        ("b.png", (50, 70)),
        ("c.png", (64, 64)),
    ]);
    let gt = Coco::from_slice(gt_v.to_string().as_bytes(), "gt")
        .unwrap()
        .0;
    let res = Results::read(&path, &gt).unwrap();
    assert_eq!(res.detections.len(), records.len());
    let raw: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let all_masks: Vec<_> = preds.iter().flat_map(|p| p.masks.iter()).collect();
    let all_boxes: Vec<_> = preds.iter().flat_map(|p| p.boxes.iter()).collect();
    for ((d, r), (m, b)) in res
        .detections
        .iter()
        .zip(&raw)
        .zip(all_masks.iter().zip(&all_boxes))
    {
        assert!(d.category_id == 3 || d.category_id == 7);
        // ultralytics' rounding: 3 decimals for boxes, 5 for scores.
        for v in r["bbox"].as_array().unwrap() {
            let v = v.as_f64().unwrap();
            assert!((v * 1000.0 - (v * 1000.0).round()).abs() < 1e-6, "{v}");
        }
        let s = r["score"].as_f64().unwrap();
        assert!((s * 1e5 - (s * 1e5).round()).abs() < 1e-6, "{s}");
        let bb = d.bbox.unwrap();
        assert!((bb[0] - f64::from(b[0])).abs() <= 5e-4 + 1e-9);
        assert!((bb[2] - f64::from(b[2] - b[0])).abs() <= 5e-4 + 1e-6);
        let rle = d.mask.as_ref().unwrap();
        assert_eq!((rle.w(), rle.h()), (m.width, m.height));
        assert_eq!(rle.area(), m.area());
        assert_eq!(rle.decode(), m.to_full());
        assert!(r["segmentation"]["counts"].is_string());
    }
}

fn ed_predict(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ed-predict"))
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn ed_predict_writes_results_and_overlays_and_reports_bad_images() {
    let dir = tmpdir("cli");
    save_tiny(&dir, true);
    let src = dir.join("imgs");
    std::fs::create_dir_all(&src).unwrap();
    let names = ["a.png", "b.png", "c.png"];
    for (n, img) in names.iter().zip(images()) {
        img.save(src.join(n)).unwrap();
    }
    std::fs::write(src.join("notes.txt"), "not an image").unwrap();
    std::fs::write(
        dir.join("gt.json"),
        gt_json(&[
            ("sub/a.png", (80, 60)),
            ("b.png", (50, 70)),
            ("c.png", (64, 64)),
        ])
        .to_string(),
    )
    .unwrap();
    let o = ed_predict(
        &dir,
        &[
            "--model",
            "seg.safetensors",
            "--source",
            "imgs",
            "--out",
            "out",
            "--conf",
            "0",
            "--max-det",
            "5",
            "--save-overlay",
            "--coco",
            "gt.json",
        ],
    );
    let (stdout, stderr) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert!(o.status.success(), "{stderr}\n{stdout}");
    assert!(stdout.contains("predicted 3 of 3 images"), "{stdout}");
    assert!(stderr.contains("images: 3 in"), "{stderr}");
    let raw: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(dir.join("out/predictions.json")).unwrap()).unwrap();
    let mut ids: Vec<u64> = raw
        .iter()
        .map(|r| r["image_id"].as_u64().unwrap())
        .collect();
    ids.dedup();
    assert_eq!(ids, [10, 11, 12]);
    assert!(raw.len() <= 15 && raw.len() >= 3);
    let gt = Coco::read_strict(&dir.join("gt.json")).unwrap();
    Results::read(&dir.join("out/predictions.json"), &gt).unwrap();
    for (n, img) in names.iter().zip(images()) {
        let ov = image::open(dir.join("out/overlays").join(n))
            .unwrap()
            .to_rgb8();
        assert_eq!(ov.dimensions(), img.dimensions());
        assert_ne!(ov, img, "{n}: nothing drawn");
    }

    // A file that does not decode: named, the others still written, exit status 1.
    std::fs::write(src.join("broken.jpg"), b"not a jpeg at all").unwrap();
    // A directory as --model finds its model.safetensors.
    std::fs::copy(dir.join("seg.safetensors"), dir.join("model.safetensors")).unwrap();
    let o = ed_predict(&dir, &["--model", ".", "--source", "imgs", "--out", "out2"]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("broken.jpg") && stderr.contains("1 image(s) failed"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(dir.join("out2/predictions.json").is_file());
    // Without --coco, ids are the sorted index: a=0, b=1, broken=2 (failed), c=3.
    let raw: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(dir.join("out2/predictions.json")).unwrap()).unwrap();
    assert!(raw.iter().all(|r| r["image_id"].as_u64() != Some(2)));
}

#[test]
fn ed_predict_reports_bad_model_files_cleanly() {
    let dir = tmpdir("badmodel");
    RgbImage::from_pixel(20, 20, Rgb([1, 2, 3]))
        .save(dir.join("x.png"))
        .unwrap();
    std::fs::write(dir.join("junk.safetensors"), b"\x08\0\0\0\0\0\0\0garbage!").unwrap();
    // Weights of an nc-2 model under a config that says nc 3: shapes do not fit.
    let (m, mut meta) = tiny_model(true);
    meta.config["nc"] = serde_json::json!(3);
    meta.names.push("bird".into());
    meta.category_ids.push(9);
    save_model(&dir.join("mismatch.safetensors"), &m, &meta).unwrap();
    for (file, want) in [
        ("junk.safetensors", "junk.safetensors"),
        ("mismatch.safetensors", "weights"),
        ("missing_dir", "no model file"),
    ] {
        let o = ed_predict(&dir, &["--model", file, "--source", "x.png"]);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{file}: {stderr}");
        assert!(
            stderr.starts_with("ed-predict: ") && stderr.contains(want),
            "{file}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    let o = ed_predict(&dir, &["--source", "x.png"]);
    assert_eq!(o.status.code(), Some(2));
    // A model file on CUDA: an error that says to export an engine (no GPU is touched).
    save_model(
        &dir.join("good.safetensors"),
        &tiny_model(true).0,
        &tiny_model(true).1,
    )
    .unwrap();
    let o = ed_predict(
        &dir,
        &[
            "--model",
            "good.safetensors",
            "--source",
            "x.png",
            "--device",
            "cuda",
        ],
    );
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("only engine files run on CUDA"), "{stderr}");
    let o = ed_predict(
        &dir,
        &[
            "--model",
            "good.safetensors",
            "--source",
            "x.png",
            "--device",
            "gpu",
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("expected cpu, cuda or cuda:N"));
}

/// Latency of a yolov8n-seg (nc 80, random weights) predictor at 640 on a 640×480 image:
/// `cargo test --release --test yolov8_predict -- --ignored --nocapture`.
#[test]
#[ignore]
fn bench_predictor_yolov8n_seg_640() {
    let cfg = YoloConfig::yolov8('n', 80, true).unwrap();
    let m = YoloModel::new(&cfg, &mut Rng::new(0)).unwrap();
    let meta = ModelMeta {
        config: cfg.raw.clone(),
        names: (0..80).map(|i| format!("c{i}")).collect(),
        category_ids: (1..=80).collect(),
        imgsz: 640,
    };
    let pr = Predictor::new(m, meta).unwrap().with_nms(NmsConfig {
        conf: 0.001,
        ..NmsConfig::default()
    });
    let img = RgbImage::from_fn(640, 480, |x, y| {
        Rgb([(x % 256) as u8, (y % 256) as u8, 128])
    });
    pr.predict(&img).unwrap();
    let n = 5;
    let t = std::time::Instant::now();
    let mut dets = 0;
    for _ in 0..n {
        dets = pr.predict(&img).unwrap().scores.len();
    }
    let ms = t.elapsed().as_secs_f64() * 1000.0 / n as f64;
    println!("yolov8n-seg predictor 640: {ms:.1} ms/image ({dets} detections at conf 0.001)");
    // Worst case for the post-processing: every anchor a candidate, 300 masks.
    let pr = pr.with_nms(NmsConfig {
        conf: 0.0,
        ..NmsConfig::default()
    });
    let t = std::time::Instant::now();
    let dets = pr.predict(&img).unwrap().scores.len();
    let ms = t.elapsed().as_secs_f64() * 1000.0;
    println!("yolov8n-seg predictor 640 at conf 0: {ms:.1} ms/image ({dets} detections)");
    let imgs = vec![img; 4];
    let t = std::time::Instant::now();
    pr.predict_batch(&imgs).unwrap();
    let ms = t.elapsed().as_secs_f64() * 1000.0 / 4.0;
    println!("yolov8n-seg predictor 640, batch 4: {ms:.1} ms/image");
}
