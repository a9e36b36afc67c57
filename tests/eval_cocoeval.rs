//! COCOeval against pycocotools 2.0.11: the committed table of random cases
//! (tools/reference/make_cocoeval_table.py) must come out bit for bit (12 stats, per-class
//! AP, the printed summary), the `coco-eval` fixtures must pass `ed-check`, the result must
//! not depend on the thread count, and bad results files must fail naming the record.
mod common;
use edgedistill::check::{Summary, check_file};
use edgedistill::data::Coco;
use edgedistill::eval::cocoeval::{CocoEvalResult, IouType, Params, evaluate};
use edgedistill::eval::results::{Results, ResultsMode};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn table() -> Value {
    let bytes = std::fs::read(fixture("cocoeval-table.json")).unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

fn load(gt: &Value, dt: &Value) -> (Coco, Results) {
    let (gt, problems) = Coco::from_slice(&serde_json::to_vec(gt).unwrap(), "gt").unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    let dt = Results::from_slice(&serde_json::to_vec(dt).unwrap(), "dt", &gt).unwrap();
    (gt, dt)
}

fn f64s(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

#[test]
fn random_cases_equal_pycocotools_table() {
    let t = table();
    let p = Params::new(IouType::Bbox);
    assert_eq!(
        p.iou_thrs,
        f64s(&t["iou_thrs"]),
        "np.linspace IoU thresholds"
    );
    assert_eq!(
        p.rec_thrs,
        f64s(&t["rec_thrs"]),
        "np.linspace recall points"
    );
    let cases = t["cases"].as_array().unwrap();
    assert!(cases.len() >= 30);
    let (mut compared, mut max_err, mut segm_cases) = (0usize, 0f64, 0usize);
    let mut over_100 = 0;
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let (gt, dt) = load(&case["gt"], &case["dt"]);
        for (key, iou) in [("bbox", IouType::Bbox), ("segm", IouType::Segm)] {
            let want = &case[key];
            if want.is_null() {
                continue;
            }
            segm_cases += usize::from(iou == IouType::Segm);
            let r = evaluate(&gt, &dt, iou).unwrap_or_else(|e| panic!("{name} {key}: {e}"));
            let stats = f64s(&want["stats"]);
            for (i, (o, w)) in r.stats.iter().zip(&stats).enumerate() {
                max_err = max_err.max((o - w).abs());
                assert_eq!(
                    o.to_bits(),
                    w.to_bits(),
                    "{name} {key} stats[{i}]: {o} vs {w}"
                );
            }
            let pc = want["per_class"].as_array().unwrap();
            assert_eq!(r.per_class_ap.len(), pc.len(), "{name} {key}");
            for (c, w) in r.per_class_ap.iter().zip(pc) {
                let w = f64s(w);
                assert_eq!(c.category_id as f64, w[0], "{name} {key}");
                assert_eq!(c.ap.to_bits(), w[1].to_bits(), "{name} {key} AP {c:?}");
                assert_eq!(c.ap50.to_bits(), w[2].to_bits(), "{name} {key} AP50 {c:?}");
            }
            assert_eq!(
                r.summary_text(),
                want["summary"].as_str().unwrap(),
                "{name} {key}"
            );
            over_100 += usize::from(r.cells.iter().any(|c| c.dt_ids.len() == 100));
            compared += 1;
        }
    }
    assert!(
        compared >= 60 && segm_cases >= 25,
        "{compared} {segm_cases}"
    );
    assert!(
        over_100 > 0,
        "some case must cut an image's detections to 100"
    );
    eprintln!("{compared} evaluations equal pycocotools; max |error| {max_err:e}");
}

fn run_check(path: &Path) -> (Summary, String) {
    let mut out = Vec::new();
    let mut sum = Summary::default();
    check_file(path, &mut out, &mut sum).unwrap();
    (sum, String::from_utf8(out).unwrap())
}

#[test]
fn ed_check_passes_the_coco_eval_fixtures() {
    let mut files = vec![fixture("cocoeval-seed11.safetensors")];
    files.extend(common::shared_or_skip("coco-eval-visible.safetensors"));
    for f in files {
        let (sum, text) = run_check(&f);
        assert_eq!((sum.passed, sum.failed), (3, 0), "{}:\n{text}", f.display());
        for name in ["bbox_stats", "segm_stats", "mask_iou"] {
            assert!(text.contains(&format!("outputs.{name}")), "{text}");
        }
    }
}

#[test]
fn ed_check_fails_a_changed_reference() {
    use edgedistill::io::{Safetensors, save_safetensors};
    let src = Safetensors::open(fixture("cocoeval-seed11.safetensors")).unwrap();
    let mut tensors: Vec<(String, edgedistill::Tensor)> = src
        .names()
        .into_iter()
        .map(|n| (n.to_string(), src.tensor(n).unwrap()))
        .collect();
    // Nudge one stat by 1e-8 (above the 1e-9 tolerance) and add an output we cannot make.
    for (n, t) in tensors.iter_mut() {
        if n == "outputs.segm_stats" {
            let mut v = t.to_vec_f64().unwrap();
            v[0] += 1e-8;
            *t = edgedistill::Tensor::from_vec(v, [12]).unwrap();
        }
    }
    tensors.push((
        "outputs.keypoint_stats".into(),
        edgedistill::Tensor::from_vec(vec![0.0f64; 10], [10]).unwrap(),
    ));
    let dir = std::env::temp_dir().join(format!("ed-cocoeval-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("changed.safetensors");
    save_safetensors(&f, &tensors, Some(src.metadata())).unwrap();
    let (sum, text) = run_check(&f);
    assert_eq!((sum.passed, sum.failed), (2, 2), "{text}");
    assert!(
        text.contains("outputs.segm_stats [12]") && text.contains("FAIL"),
        "{text}"
    );
    assert!(
        text.contains("outputs.keypoint_stats") && text.contains("no producer"),
        "{text}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

fn in_pool<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> T {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
        .install(f)
}

#[test]
fn results_do_not_depend_on_the_thread_count() {
    let t = table();
    for case in t["cases"].as_array().unwrap().iter().take(12) {
        let (gt, dt) = load(&case["gt"], &case["dt"]);
        for iou in [IouType::Bbox, IouType::Segm] {
            if case[iou.as_str()].is_null() {
                continue;
            }
            let one: CocoEvalResult = in_pool(1, || evaluate(&gt, &dt, iou).unwrap());
            let four = in_pool(4, || evaluate(&gt, &dt, iou).unwrap());
            assert_eq!(one, four, "{}", case["name"]);
            // Per-image matching is there for per-image records: one entry per area range.
            assert!(one.cells.iter().all(|c| c.by_area.len() == 4));
        }
    }
}

fn small_gt() -> Coco {
    let gt = json!({
        "images": [{"id": 1, "width": 20, "height": 10}, {"id": 2, "width": 8, "height": 8}],
        "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}],
        "annotations": [
            {"id": 5, "image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "area": 100,
             "iscrowd": 0, "segmentation": [[0, 0, 10, 0, 10, 10, 0, 10]]},
            {"id": 6, "image_id": 1, "category_id": 1, "bbox": [10, 0, 10, 10], "area": 100,
             "iscrowd": 1, "segmentation": {"size": [10, 20], "counts": [100, 100]}}
        ]
    });
    Coco::from_slice(&serde_json::to_vec(&gt).unwrap(), "gt")
        .unwrap()
        .0
}

#[test]
fn crowd_is_matched_many_times_and_ignored() {
    let gt = small_gt();
    let dt = json!([
        {"image_id": 1, "category_id": 1, "score": 0.9, "bbox": [0, 0, 10, 10]},
        {"image_id": 1, "category_id": 1, "score": 0.8, "bbox": [10, 0, 5, 10]},
        {"image_id": 1, "category_id": 1, "score": 0.7, "bbox": [14, 0, 6, 10]},
        {"image_id": 1, "category_id": 1, "score": 0.6, "bbox": [0, 0, 10, 10]}
    ]);
    let dt = Results::from_slice(&serde_json::to_vec(&dt).unwrap(), "dt", &gt).unwrap();
    assert_eq!(dt.mode, ResultsMode::Bbox);
    assert_eq!(dt.detections[1].area, 50.0);
    let r = evaluate(&gt, &dt, IouType::Bbox).unwrap();
    let e = &r.cells[0].by_area[0];
    assert_eq!(e.gt_ids, vec![5, 6]);
    assert_eq!(e.gt_ignore, vec![false, true]);
    // At every threshold: det 1 takes gt 5; dets 2 and 3 both land on the crowd (IoU 1
    // with union = their own area) and are ignored; det 4 finds gt 5 taken: a false positive.
    assert_eq!(&e.dt_matches[..4], &[5, 6, 6, 0]);
    assert_eq!(&e.dt_ignore[..4], &[false, true, true, false]);
    assert_eq!(&e.gt_matches[..2], &[1, 3]);
    assert_eq!(&e.dt_match_iou[..4], &[1.0, 1.0, 1.0, 0.0]);
    // Precision 1 up to recall 1 (the FP comes after): AP 1 for category 1, as pycocotools
    // computes it: tp / (fp + tp + eps) = 1 / (1 + 2^-52) = 1 - 2^-52. Category 2 has no
    // ground truth: -1.
    let one = 1.0 - f64::EPSILON;
    assert_eq!(r.per_class_ap[0].ap, one);
    assert_eq!(r.per_class_ap[1].ap, -1.0);
    assert_eq!(r.stats[0], one);
    // Segm needs masks: these results have none.
    let e = evaluate(&gt, &dt, IouType::Segm).unwrap_err().to_string();
    assert!(
        e.contains("results[0] (image_id 1)") && e.contains("segmentation"),
        "{e}"
    );
}

/// The error for a results list, as text.
fn load_err(dt: &str) -> String {
    Results::from_slice(dt.as_bytes(), "dt.json", &small_gt())
        .unwrap_err()
        .to_string()
}

#[test]
fn bad_results_name_the_record() {
    let ok = r#"{"image_id": 1, "category_id": 1, "score": 0.5, "bbox": [0, 0, 2, 2]}"#;
    let cases: [(String, &[&str]); 12] = [
        (
            format!(r#"[{ok}, {{"image_id": 9, "category_id": 1, "score": 0.5, "bbox": [0, 0, 1, 1]}}]"#),
            &["dt.json", "results[1] (image_id 9)", "image_id 9 is not an image"],
        ),
        (
            format!(r#"[{ok}, {{"image_id": 2, "category_id": 3, "score": 0.5, "bbox": [0, 0, 1, 1]}}]"#),
            &["results[1] (image_id 2)", "category_id 3 is not a category"],
        ),
        (
            format!(r#"[{ok}, {{"image_id": 1, "category_id": 1, "score": NaN, "bbox": [0, 0, 1, 1]}}]"#),
            &["results[1] (image_id 1)", "score is NaN"],
        ),
        (
            format!(r#"[{ok}, {{"image_id": 1, "category_id": 1, "score": -Infinity, "bbox": [0, 0, 1, 1]}}]"#),
            &["results[1] (image_id 1)", "score is -inf"],
        ),
        (
            format!(r#"[{ok}, {{"image_id": 1, "category_id": 1, "score": "high", "bbox": [0, 0, 1, 1]}}]"#),
            &["results[1] (image_id 1)", "score must be a number"],
        ),
        (
            format!(
                r#"[{ok}, {{"image_id": 1, "category_id": 1, "score": 0.5, "bbox": [0, 0, 1, 1],
                "segmentation": {{"size": [10, 20], "counts": "0{{{{"}}}}]"#
            ),
            &["results[1] (image_id 1)", "segmentation", "compressed RLE"],
        ),
        (
            format!(
                r#"[{ok}, {{"image_id": 1, "category_id": 1, "score": 0.5, "bbox": [0, 0, 1, 1],
                "segmentation": {{"size": [10, 20], "counts": [100, 99]}}}}]"#
            ),
            &["results[1] (image_id 1)", "sum to 199"],
        ),
        (
            format!(
                r#"[{ok}, {{"image_id": 2, "category_id": 1, "score": 0.5, "bbox": [0, 0, 1, 1],
                "segmentation": {{"size": [10, 20], "counts": [200]}}}}]"#
            ),
            &["results[1] (image_id 2)", "RLE size [10, 20]", "[8, 8]"],
        ),
        (
            format!(r#"[{ok}, {{"image_id": 1, "category_id": 1, "score": 0.5}}]"#),
            &["results[1] (image_id 1)", "has no bbox"],
        ),
        (
            format!(r#"[{ok}, {{"image_id": 1, "category_id": 1, "score": 0.5, "bbox": [0, 1, 2]}}]"#),
            &["results[1] (image_id 1)", "bbox has 3 numbers"],
        ),
        (
            r#"[{"image_id": 1, "category_id": 1, "score": 0.5, "segmentation": {"size": [10, 20], "counts": [200]}},
               {"image_id": 1, "category_id": 1, "score": 0.5, "bbox": [0, 0, 1, 1]}]"#
                .to_string(),
            &["results[1] (image_id 1)", "has no segmentation", "first result has no bbox"],
        ),
        (
            r#"{"image_id": 1}"#.to_string(),
            &["dt.json", "top level", "JSON list"],
        ),
    ];
    for (text, want) in cases {
        let e = load_err(&text);
        for w in want {
            assert!(e.contains(w), "{text}\n-> {e}\n(missing {w:?})");
        }
    }
    // Not JSON at all: the line and column.
    let e = load_err("[{\"image_id\": 1,,}]");
    assert!(e.contains("line 1") && e.contains("not valid JSON"), "{e}");
    // An empty list is fine (nothing detected): AP 0 where there is ground truth.
    let dt = Results::from_slice(b"[]", "dt.json", &small_gt()).unwrap();
    let r = evaluate(&small_gt(), &dt, IouType::Segm).unwrap();
    assert_eq!(r.stats[0], 0.0);
}

#[test]
fn bad_ground_truth_names_the_annotation() {
    let mut gt = small_gt();
    let dt = Results::from_slice(b"[]", "dt.json", &gt).unwrap();
    gt.annotations[1].area = None;
    let e = evaluate(&gt, &dt, IouType::Bbox).unwrap_err().to_string();
    assert!(
        e.contains("annotation 6 (image_id 1)") && e.contains("area"),
        "{e}"
    );
    let mut gt = small_gt();
    gt.annotations[0].bbox = None;
    let e = evaluate(&gt, &dt, IouType::Bbox).unwrap_err().to_string();
    assert!(e.contains("annotation 5") && e.contains("bbox"), "{e}");
    assert!(
        evaluate(&gt, &dt, IouType::Segm).is_ok(),
        "segm does not read the bbox"
    );
    let mut gt = small_gt();
    gt.annotations[1].image_id = 77;
    let e = evaluate(&gt, &dt, IouType::Bbox).unwrap_err().to_string();
    assert!(
        e.contains("annotation 6") && e.contains("image_id 77"),
        "{e}"
    );
    let mut gt = small_gt();
    gt.annotations[1].id = 5;
    let e = evaluate(&gt, &dt, IouType::Bbox).unwrap_err().to_string();
    assert!(e.contains("duplicate annotation id"), "{e}");
}
