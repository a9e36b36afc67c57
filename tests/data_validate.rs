//! Validation, filling and splitting (library and the ed-validate tool).
use edgedistill::data::split::{SplitSpec, split, subset};
use edgedistill::data::validate::{ValidateOptions, validate};
use edgedistill::data::{Coco, Problem};
use edgedistill::tensor::Rng;
use serde_json::{Value, json};
use std::path::PathBuf;

fn coco(v: &Value) -> (Coco, Vec<Problem>) {
    Coco::from_slice(&serde_json::to_vec(v).unwrap(), "t.json").unwrap()
}

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ed-validate-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn fills_bbox_and_area_like_pycocotools() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/validate-fill.json"
    );
    let fx: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let (c, p) = coco(&fx["input"]);
    assert!(p.is_empty());
    let n = c.annotations.len();
    assert_eq!(n, fx["expect"].as_object().unwrap().len());
    assert!(
        c.annotations
            .iter()
            .all(|a| a.bbox.is_none() && a.area.is_none())
    );
    let v = validate(c, p, &ValidateOptions::default());
    assert!(v.report.problems.is_empty(), "{:?}", v.report.problems);
    assert_eq!(v.report.filled_bbox, n);
    assert_eq!(v.report.filled_area, n);
    assert_eq!(v.coco.annotations.len(), n);
    assert!(v.report.has_masks && v.report.mode == "boxes+masks");
    for a in &v.coco.annotations {
        let e = &fx["expect"][a.id.to_string()];
        let bbox: Vec<f64> = serde_json::from_value(e["bbox"].clone()).unwrap();
        let got = a.bbox.as_ref().unwrap();
        for (g, r) in got.iter().zip(&bbox) {
            assert!(
                (g - r).abs() <= 1e-6,
                "annotation {}: bbox {got:?} vs pycocotools {bbox:?}",
                a.id
            );
        }
        let area = e["area"].as_f64().unwrap();
        assert!(
            (a.area.unwrap() - area).abs() <= 1e-6,
            "annotation {}: area {:?} vs {area}",
            a.id,
            a.area
        );
    }
}

fn good() -> Value {
    json!({
        "images": [
            {"id": 1, "file_name": "a.jpg", "width": 100, "height": 50},
            {"id": 2, "file_name": "b.jpg", "width": 10, "height": 10}
        ],
        "categories": [{"id": 7, "name": "bolt"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 7, "bbox": [10, 10, 20, 20]}
        ]
    })
}

#[test]
fn every_problem_names_its_record() {
    let mut v = good();
    let anns = json!([
        {"id": 1, "image_id": 1, "category_id": 7, "bbox": [10, 10, 20, 20]},
        {"id": 2, "image_id": 99, "category_id": 7, "bbox": [1, 1, 2, 2]},
        {"id": 3, "image_id": 1, "category_id": 42, "bbox": [1, 1, 2, 2]},
        {"id": 4, "image_id": 1, "category_id": 7, "bbox": [5, 5, 0, 3]},
        {"id": 5, "image_id": 1, "category_id": 7, "bbox": [90, 10, 30, 5]},
        {"id": 6, "image_id": 1, "category_id": 7, "segmentation": [[1, 1, 5, 5]]},
        {"id": 7, "image_id": 1, "category_id": 7, "segmentation": [[1, 1, 5, 5, 9]]},
        {"id": 8, "image_id": 1, "category_id": 7, "segmentation": {"size": [10, 10], "counts": "0"}},
        {"id": 1, "image_id": 1, "category_id": 7, "bbox": [1, 1, 2, 2]},
        {"id": 9, "image_id": 1, "category_id": 7, "bbox": [1, 1, 2]},
        {"id": 10, "image_id": 1, "category_id": 7},
        {"id": 11, "image_id": 3, "category_id": 7, "bbox": [1, 1, 2, 2]},
        {"id": 12, "image_id": 1, "category_id": 7, "segmentation": {"size": [50, 100], "counts": [10, 5]}},
        {"id": 13, "image_id": 1, "category_id": 7, "segmentation": {"size": [50, 100], "counts": "0?!"}},
        {"id": 14, "image_id": 4, "category_id": 7, "bbox": [1, 1, 2, 2]},
        {"id": 15, "image_id": 1, "category_id": 7, "bbox": [-0.5, 0, 100.4, 50]},
        {"id": 16, "image_id": 1, "category_id": 7, "segmentation": [[200, 200, 210, 200, 205, 210]]}
    ]);
    v["annotations"] = anns;
    v["images"].as_array_mut().unwrap().extend([
        json!({"id": 1, "file_name": "dup.jpg", "width": 5, "height": 5}),
        json!({"id": 3, "file_name": "c.jpg", "height": 5}),
        json!({"id": 4, "file_name": "missing.jpg", "width": 5, "height": 5}),
    ]);
    v["categories"]
        .as_array_mut()
        .unwrap()
        .push(json!({"id": 7, "name": "again"}));
    let dir = tmpdir("problems");
    for f in ["a.jpg", "b.jpg", "c.jpg"] {
        std::fs::write(dir.join(f), b"x").unwrap();
    }
    let (c, p) = coco(&v);
    let out = validate(
        c,
        p,
        &ValidateOptions {
            images_dir: Some(dir.clone()),
        },
    );
    let r = &out.report;
    let lines: Vec<String> = r.problems.iter().map(|p| p.to_string()).collect();
    let expect: &[(&str, &str, &str)] = &[
        ("image 1:", "duplicate_id", "already used"),
        ("image 3:", "bad_image_size", "width missing"),
        ("image 4:", "missing_image_file", "missing.jpg"),
        ("annotation 2:", "unknown_image_id", "image_id 99"),
        ("annotation 3:", "unknown_category_id", "category_id 42"),
        ("annotation 4:", "degenerate_bbox", "[5.0, 5.0, 0.0, 3.0]"),
        ("annotation 5:", "bbox_outside_image", "100×50"),
        ("annotation 6:", "bad_segmentation", "at least 3"),
        ("annotation 7:", "bad_segmentation", "odd"),
        ("annotation 8:", "bad_segmentation", "RLE size [10, 10]"),
        ("annotation 1:", "duplicate_id", "already used"),
        ("annotation 9:", "bad_bbox", "[x, y, width, height]"),
        ("annotation 10:", "no_box_no_mask", "neither"),
        ("annotation 11:", "image_skipped", "image 3"),
        ("annotation 12:", "bad_segmentation", ""),
        ("annotation 13:", "bad_segmentation", ""),
        ("annotation 14:", "image_skipped", "image 4"),
        ("annotation 16:", "empty_mask", "no pixel"),
        ("category 7:", "duplicate_id", "already used"),
    ];
    assert_eq!(lines.len(), expect.len(), "{lines:#?}");
    for (line, (rec, code, text)) in lines.iter().zip(expect) {
        assert!(
            line.starts_with(rec) && line.contains(code) && line.contains(text),
            "expected {rec} {code} {text:?} in {line:?}\nall: {lines:#?}"
        );
    }
    assert_eq!(r.problem_counts["bad_segmentation"], 5);
    assert_eq!(
        (
            r.skipped_images,
            r.skipped_annotations,
            r.skipped_categories
        ),
        (3, 15, 1)
    );
    // Kept: annotation 1 and the clipped 15; images 1 and 2; one category.
    let kept: Vec<u64> = out.coco.annotations.iter().map(|a| a.id).collect();
    assert_eq!(kept, vec![1, 15]);
    assert_eq!(r.clipped_bbox, 1);
    assert_eq!(
        out.coco.annotations[1].bbox,
        Some(vec![0.0, 0.0, 99.9, 50.0])
    );
    assert_eq!(
        out.coco.annotations[0].area,
        Some(400.0),
        "box-only area is w·h"
    );
    assert_eq!(r.images, 2);
    assert_eq!(r.images_without_annotations, 1);
    assert!(!r.has_masks && r.mode == "boxes");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// 600 images, 6 classes with shares from 40 % down to 3 %, 1–3 objects each.
fn imbalanced(seed: u64) -> Coco {
    let mut rng = Rng::new(seed);
    let weights = [0.40, 0.25, 0.15, 0.10, 0.07, 0.03];
    let (mut images, mut anns) = (vec![], vec![]);
    let mut aid = 1;
    for iid in 1..=600u64 {
        images
            .push(json!({"id": iid, "file_name": format!("{iid}.jpg"), "width": 64, "height": 64}));
        let dominant = {
            let u = rng.uniform();
            let mut acc = 0.0;
            weights
                .iter()
                .position(|w| {
                    acc += w;
                    u < acc
                })
                .unwrap_or(5)
        };
        for _ in 0..1 + rng.below(3) {
            let c = if rng.uniform() < 0.8 {
                dominant
            } else {
                rng.below(6) as usize
            };
            anns.push(
                json!({"id": aid, "image_id": iid, "category_id": c + 1, "bbox": [1, 1, 5, 5]}),
            );
            aid += 1;
        }
    }
    let cats: Vec<Value> = (1..=6)
        .map(|i| json!({"id": i, "name": format!("c{i}")}))
        .collect();
    coco(&json!({"images": images, "annotations": anns, "categories": cats})).0
}

fn class_shares(c: &Coco) -> Vec<f64> {
    let mut n = [0f64; 6];
    for a in &c.annotations {
        n[a.category_id as usize - 1] += 1.0;
    }
    let total: f64 = n.iter().sum();
    n.iter().map(|v| v / total).collect()
}

#[test]
fn splits_are_reproducible_proportional_and_stratified() {
    let c = imbalanced(1);
    let spec = SplitSpec::default();
    let a = split(&c, &spec, true, 42);
    assert_eq!(a, split(&c, &spec, true, 42), "same seed, same split");
    assert_ne!(
        a.image_ids,
        split(&c, &spec, true, 43).image_ids,
        "seed matters"
    );
    let mut all: Vec<u64> = a.image_ids.concat();
    all.sort_unstable();
    assert_eq!(
        all,
        (1..=600).collect::<Vec<_>>(),
        "a partition of the images"
    );
    let whole = class_shares(&c);
    for stratify in [false, true] {
        let s = split(&c, &spec, stratify, 42);
        for ((name, frac), ids) in spec.parts.iter().zip(&s.image_ids) {
            let want = frac * 600.0;
            assert!(
                (ids.len() as f64 - want).abs() <= 1.0,
                "{name}: {} images for {want}",
                ids.len()
            );
            if stratify {
                let shares = class_shares(&subset(&c, ids));
                for (k, (g, w)) in shares.iter().zip(&whole).enumerate() {
                    assert!((g - w).abs() <= 0.05, "{name} class {k}: {g:.3} vs {w:.3}");
                }
            }
        }
    }
    // Proportions hold for any size, down to one image.
    for n in [1usize, 2, 3, 7, 10, 33, 101] {
        let sub = subset(&c, &(1..=n as u64).collect::<Vec<_>>());
        let s = split(&sub, &spec, true, 5);
        for ((_, frac), ids) in spec.parts.iter().zip(&s.image_ids) {
            assert!(
                (ids.len() as f64 - frac * n as f64).abs() <= 1.0,
                "n={n}: {}",
                ids.len()
            );
        }
    }
    // The rarest class (3 % of 600 images) is thin in val/test: warned, by name.
    let small = subset(&c, &(1..=120).collect::<Vec<_>>());
    let s = split(&small, &spec, true, 42);
    assert!(
        s.warnings
            .iter()
            .any(|w| w.contains("\"c6\"") && w.contains("\"val\"")),
        "{:?}",
        s.warnings
    );
}

#[test]
fn split_spec_errors_say_what_is_wrong() {
    for (spec, text) in [
        ("train:0.7,val:0.2", "sum to"),
        ("train:0.7,train:0.3", "twice"),
        ("train=0.7", "name:fraction"),
        ("train:x", "not a number"),
        ("train:1.5", "not in (0, 1]"),
        ("a/b:1", "letters"),
    ] {
        let e = SplitSpec::parse(spec).unwrap_err().to_string();
        assert!(e.contains(text), "{spec}: {e}");
    }
    assert_eq!(
        SplitSpec::parse("train:0.8,val:0.2").unwrap().parts.len(),
        2
    );
}

#[test]
fn tool_writes_identical_files_and_strict_fails_naming_the_record() {
    let exe = env!("CARGO_BIN_EXE_ed-validate");
    let dir = tmpdir("tool");
    let data = dir.join("ann.json");
    let mut c = imbalanced(3);
    for a in &mut c.annotations {
        if a.id % 2 == 0 {
            a.bbox = None; // box-only annotations without bbox are a problem
            a.segmentation = Some(edgedistill::data::Segmentation::Polygons(vec![vec![
                1.0, 1.0, 9.0, 1.0, 5.0, 7.5,
            ]]));
        }
    }
    c.write(&data).unwrap();
    let run = |out: &str, extra: &[&str]| {
        let o = std::process::Command::new(exe)
            .args([
                "--data",
                data.to_str().unwrap(),
                "--stratify",
                "--output-dir",
            ])
            .arg(dir.join(out))
            .args(extra)
            .output()
            .unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let (code, stdout, stderr) = run("a", &[]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.contains("filled: ") && stdout.contains("problems: none"),
        "{stdout}"
    );
    run("b", &[]);
    for f in ["train.json", "val.json", "test.json", "report.json"] {
        let a = std::fs::read(dir.join("a").join(f)).unwrap();
        assert_eq!(
            a,
            std::fs::read(dir.join("b").join(f)).unwrap(),
            "{f} differs between runs"
        );
    }
    let train = Coco::read_strict(&dir.join("a/train.json")).unwrap();
    assert!(
        train
            .annotations
            .iter()
            .all(|a| a.bbox.is_some() && a.area.is_some())
    );

    // A bad record: listed and skipped normally, fatal and named under --strict.
    let mut bad = c.clone();
    bad.annotations[4].category_id = 77;
    let id = bad.annotations[4].id;
    bad.write(&data).unwrap();
    let (code, stdout, _) = run("c", &[]);
    assert_eq!(code, Some(0));
    assert!(
        stdout.contains(&format!("annotation {id}: category_id 77")),
        "{stdout}"
    );
    let (code, _, stderr) = run("d", &["--strict"]);
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("ann.json") && stderr.contains(&format!("annotation {id}")),
        "{stderr}"
    );
    assert!(
        !dir.join("d").exists(),
        "--strict writes nothing on failure"
    );
    let (code, _, stderr) = run("e", &["--split", "train:0.5"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("sum to"), "{stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn tool_writes_the_pycocotools_fills_into_the_split_files() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/validate-fill.json"
    );
    let fx: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let dir = tmpdir("toolfill");
    let data = dir.join("masks_only.json");
    std::fs::write(&data, serde_json::to_vec(&fx["input"]).unwrap()).unwrap();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_ed-validate"))
        .args([
            "--data",
            data.to_str().unwrap(),
            "--split",
            "train:0.5,val:0.5",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut seen = 0;
    for part in ["train", "val"] {
        let c =
            Coco::read_strict(&dir.join("masks_only_splits").join(format!("{part}.json"))).unwrap();
        for a in &c.annotations {
            let e = &fx["expect"][a.id.to_string()];
            let bbox: Vec<f64> = serde_json::from_value(e["bbox"].clone()).unwrap();
            let got = a.bbox.as_ref().unwrap();
            assert!(
                got.iter().zip(&bbox).all(|(g, r)| (g - r).abs() <= 1e-6),
                "{}: {got:?} vs {bbox:?}",
                a.id
            );
            assert!((a.area.unwrap() - e["area"].as_f64().unwrap()).abs() <= 1e-6);
            seen += 1;
        }
    }
    assert_eq!(seen, fx["expect"].as_object().unwrap().len());
    std::fs::remove_dir_all(&dir).unwrap();
}
