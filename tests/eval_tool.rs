//! ed-eval end to end on the shared coco-eval fixture: pycocotools' printout with the
//! fixture's numbers, the three files, a self-contained report, and errors naming records.
mod common;
use common::shared_or_skip;
use edgedistill::io::safetensors::Safetensors;
use std::path::PathBuf;
use std::process::Command;

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ed-eval-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn ed_eval_prints_pycocotools_numbers_and_writes_the_report() {
    let name = "coco-eval-visible.safetensors";
    let Some(path) = shared_or_skip(name) else {
        return;
    };
    let fx = Safetensors::open(&path).unwrap();
    let md = fx.metadata();
    let dir = tmpdir("fixture");
    std::fs::write(dir.join("gt.json"), &md["gt"]).unwrap();
    std::fs::write(dir.join("dt.json"), &md["dt"]).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_ed-eval"))
        .current_dir(&dir)
        .args([
            "--gt",
            "gt.json",
            "--results",
            "dt.json",
            "--iou-type",
            "both",
            "--out",
            "out",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{}\n{stdout}",
        String::from_utf8_lossy(&o.stderr)
    );
    for (key, tag) in [
        ("outputs.bbox_stats", "bbox"),
        ("outputs.segm_stats", "segm"),
    ] {
        let want: Vec<f64> = fx.tensor(key).unwrap().to_vec::<f64>().unwrap();
        let block: Vec<&str> = stdout
            .lines()
            .skip_while(|l| *l != format!("COCOeval iouType={tag}"))
            .skip(1)
            .take(12)
            .collect();
        assert_eq!(block.len(), 12, "{stdout}");
        for (line, w) in block.iter().zip(&want) {
            // pycocotools prints `... ] = 0.123` with three decimals.
            let v: f64 = line.rsplit("= ").next().unwrap().trim().parse().unwrap();
            assert!((v - w).abs() <= 5e-4 + 1e-12, "{tag}: {line} vs {w}");
            assert!(
                line.starts_with(" Average Precision  (AP) @[ IoU=")
                    || line.starts_with(" Average Recall     (AR) @[ IoU="),
                "{line}"
            );
        }
    }
    assert!(
        stdout.contains("ultralytics (B): P ") && stdout.contains("ultralytics (M): P "),
        "{stdout}"
    );
    let out = dir.join("out");
    let metrics: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("metrics.json")).unwrap()).unwrap();
    let ap = metrics["coco"]["segm"]["stats"]["AP"].as_f64().unwrap();
    let want = fx
        .tensor("outputs.segm_stats")
        .unwrap()
        .to_vec::<f64>()
        .unwrap()[0];
    assert!(
        (ap - want).abs() <= 1e-9,
        "metrics.json segm AP {ap} vs {want}"
    );
    let per_image = std::fs::read_to_string(out.join("per_image.jsonl")).unwrap();
    let n_images = serde_json::from_str::<serde_json::Value>(&md["gt"]).unwrap()["images"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(per_image.lines().count(), n_images);
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(
        html.contains("<svg") && !html.contains("<script") && html.contains("Precision-Recall")
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn ed_eval_names_the_bad_record() {
    let dir = tmpdir("bad");
    std::fs::write(
        dir.join("gt.json"),
        r#"{"images":[{"id":1,"file_name":"a.jpg","width":10,"height":10}],"categories":[{"id":1,"name":"x"}],
           "annotations":[{"id":1,"image_id":1,"category_id":1,"bbox":[1,1,3,3],"area":9,"iscrowd":0}]}"#,
    )
    .unwrap();
    for (dt, text) in [
        (
            r#"[{"image_id":7,"category_id":1,"score":0.5,"bbox":[1,1,2,2]}]"#,
            "results[0] (image_id 7)",
        ),
        (
            r#"[{"image_id":1,"category_id":1,"score":0.5,"bbox":[1,1,2,2]},{"image_id":1,"category_id":9,"score":0.5,"bbox":[1,1,2,2]}]"#,
            "results[1]",
        ),
        (
            r#"[{"image_id":1,"category_id":1,"score":0.5,"segmentation":{"size":[10,10],"counts":"0?!"}}]"#,
            "results[0]",
        ),
    ] {
        std::fs::write(dir.join("dt.json"), dt).unwrap();
        let o = Command::new(env!("CARGO_BIN_EXE_ed-eval"))
            .current_dir(&dir)
            .args(["--gt", "gt.json", "--results", "dt.json", "--out", "out"])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert!(
            err.contains("dt.json") && err.contains(text),
            "{text}: {err}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `--model` mode on an untrained tiny model over three generated images: predictions.json
/// written and evaluated (all three output files, the report's tiles), ultralytics val's
/// conf default; a dataset image that is missing stops the run naming it.
#[test]
fn ed_eval_model_mode_predicts_then_evaluates() {
    use edgedistill::models::yolov8::{ModelMeta, YoloConfig, YoloModel, save_model};
    use edgedistill::tensor::Rng;
    let dir = tmpdir("model");
    let mut config = YoloConfig::yolov8('n', 2, true).unwrap().raw;
    config["scales"] = serde_json::json!({"t": [0.33, 0.0625, 1024]});
    config["scale"] = serde_json::json!("t");
    let m = YoloModel::new(&YoloConfig::from_json(&config).unwrap(), &mut Rng::new(3)).unwrap();
    let meta = ModelMeta {
        config,
        names: vec!["cat".into(), "dog".into()],
        category_ids: vec![3, 7],
        imgsz: 64,
    };
    std::fs::create_dir_all(dir.join("run/weights")).unwrap();
    save_model(&dir.join("run/weights/best.model.safetensors"), &m, &meta).unwrap();
    std::fs::create_dir_all(dir.join("images")).unwrap();
    let sizes = [(80u32, 60u32), (50, 70), (64, 64)];
    let mut images = Vec::new();
    let mut anns = Vec::new();
    for (i, &(w, h)) in sizes.iter().enumerate() {
        let img = image::RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([(x * 9 % 256) as u8, (y * 5 % 256) as u8, (i * 80) as u8])
        });
        img.save(dir.join(format!("images/{i}.png"))).unwrap();
        images.push(
            serde_json::json!({"id": 5 + i, "file_name": format!("{i}.png"),
            "width": w, "height": h}),
        );
        anns.push(serde_json::json!({"id": 1 + i, "image_id": 5 + i,
            "category_id": if i == 1 { 7 } else { 3 }, "bbox": [5.0, 5.0, 20.0, 25.0],
            "area": 500.0, "iscrowd": 0,
            "segmentation": [[5.0, 5.0, 25.0, 5.0, 25.0, 30.0, 5.0, 30.0]]}));
    }
    let gt = serde_json::json!({"images": images, "annotations": anns,
        "categories": [{"id": 3, "name": "cat"}, {"id": 7, "name": "dog"}]});
    std::fs::write(dir.join("val.json"), gt.to_string()).unwrap();
    let run = |extra: &[&str]| {
        let mut args = vec!["--model", "run", "--data", "val.json", "--images", "images"];
        args.extend_from_slice(extra);
        Command::new(env!("CARGO_BIN_EXE_ed-eval"))
            .current_dir(&dir)
            .args(&args)
            .output()
            .unwrap()
    };
    let o = run(&["--conf", "0.0", "--max-det", "10"]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert!(o.status.success(), "{stderr}\n{stdout}");
    assert!(stdout.contains("predicted 3 images with"), "{stdout}");
    assert!(
        stdout.contains("COCOeval iouType=bbox") && stdout.contains("COCOeval iouType=segm"),
        "{stdout}"
    );
    // Default output directory: eval/ beside the resolved model file.
    let out = dir.join("run/weights/eval");
    let preds: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(out.join("predictions.json")).unwrap()).unwrap();
    assert!(!preds.is_empty() && preds.len() <= 30, "{}", preds.len());
    for p in &preds {
        assert!([5, 6, 7].contains(&p["image_id"].as_u64().unwrap()));
        assert!([3, 7].contains(&p["category_id"].as_u64().unwrap()));
        assert!(p["segmentation"]["counts"].is_string());
    }
    let metrics: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("metrics.json")).unwrap()).unwrap();
    assert!(
        metrics["coco"]["segm"]["stats"]["AP"].is_number(),
        "{metrics}"
    );
    let lines = std::fs::read_to_string(out.join("per_image.jsonl")).unwrap();
    assert_eq!(lines.lines().count(), 3);
    // --model adds each image's loss components (the model is untrained: large, finite)
    for l in lines.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        for k in ["box", "seg", "cls", "dfl"] {
            let x = v["loss"][k].as_f64().unwrap_or(f64::NAN);
            assert!(x.is_finite() && x >= 0.0, "loss {k} in {l}");
        }
        assert!(v["loss"]["cls"].as_f64().unwrap() > 0.0, "{l}");
    }
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(
        html.contains("data:image/png;base64,"),
        "no prediction tiles"
    );

    // --model with --results, or without --images: usage errors.
    assert_eq!(run(&["--results", "x.json"]).status.code(), Some(2));
    let o = Command::new(env!("CARGO_BIN_EXE_ed-eval"))
        .current_dir(&dir)
        .args(["--model", "run", "--data", "val.json"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));

    // A dataset image that is missing: the error names it and the image id.
    std::fs::remove_file(dir.join("images/1.png")).unwrap();
    let o = run(&["--out", "out2"]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("1.png") && stderr.contains("image id 6"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!dir.join("out2/predictions.json").exists());
}
