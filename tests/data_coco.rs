//! COCO reading/writing: every segmentation form, extra fields preserved byte-for-byte in
//! meaning, and bad records named rather than aborting the file.
use edgedistill::data::{Coco, RecordKind, RleCounts, Segmentation};
use serde_json::{Value, json};

fn parse(v: &Value) -> (Coco, Vec<edgedistill::data::Problem>) {
    Coco::from_slice(&serde_json::to_vec(v).unwrap(), "test.json").unwrap()
}

fn sample() -> Value {
    json!({
        "info": {"description": "tool export", "version": "1.0"},
        "licenses": [{"id": 1, "name": "CC"}],
        "images": [
            {"id": 1, "file_name": "a.jpg", "width": 640, "height": 480, "flickr_url": "x", "date": 7},
            {"id": 2, "file_name": "b.png", "width": 32, "height": 16}
        ],
        "categories": [{"id": 3, "name": "cat", "supercategory": "animal", "color": "#ff0000"}],
        "annotations": [
            {"id": 10, "image_id": 1, "category_id": 3, "bbox": [1.5, 2.0, 10.0, 20.0], "area": 150.25,
             "segmentation": [[1.5, 2.0, 11.5, 2.0, 11.5, 22.0], [0, 0, 1, 0, 1, 1]], "iscrowd": 0,
             "attributes": {"occluded": true}},
            {"id": 11, "image_id": 2, "category_id": 3, "iscrowd": 1,
             "segmentation": {"size": [16, 32], "counts": [5, 10, 497]}},
            {"id": 12, "image_id": 2, "category_id": 3, "iscrowd": true,
             "segmentation": {"size": [16, 32], "counts": "52203"}},
            {"id": 13, "image_id": 1, "category_id": 3, "bbox": [0, 0, 4, 4], "segmentation": []}
        ]
    })
}

#[test]
fn reads_every_segmentation_form() {
    let (coco, problems) = parse(&sample());
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(coco.images.len(), 2);
    assert_eq!(coco.annotations.len(), 4);
    let a = &coco.annotations;
    match a[0].segmentation.as_ref().unwrap() {
        Segmentation::Polygons(p) => {
            assert_eq!(p.len(), 2);
            assert_eq!(p[1], vec![0.0, 0.0, 1.0, 0.0, 1.0, 1.0]);
        }
        s => panic!("expected polygons, got {s:?}"),
    }
    assert_eq!(
        a[1].segmentation,
        Some(Segmentation::Rle {
            size: [16, 32],
            counts: RleCounts::Uncompressed(vec![5, 10, 497])
        })
    );
    assert_eq!(
        a[2].segmentation,
        Some(Segmentation::Rle {
            size: [16, 32],
            counts: RleCounts::Compressed("52203".into())
        })
    );
    assert!(a[1].is_crowd() && a[2].is_crowd() && !a[0].is_crowd());
    assert_eq!(a[2].iscrowd, Some(1), "bool iscrowd becomes 1");
    assert!(a[3].mask().is_none(), "[] is no mask");
    assert!(a[0].mask().is_some());
    assert_eq!(coco.annotations[3].area, None);
}

#[test]
fn write_keeps_extra_fields_and_is_deterministic() {
    let input = sample();
    let (coco, _) = parse(&input);
    let bytes = coco.to_vec().unwrap();
    assert_eq!(bytes, coco.to_vec().unwrap());
    let out: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(out["info"], input["info"]);
    assert_eq!(out["licenses"], input["licenses"]);
    assert_eq!(out["images"][0]["flickr_url"], "x");
    assert_eq!(out["images"][0]["date"], 7);
    assert_eq!(out["categories"][0]["color"], "#ff0000");
    assert_eq!(out["annotations"][0]["attributes"]["occluded"], true);
    assert_eq!(
        out["annotations"][1]["segmentation"]["counts"],
        json!([5, 10, 497])
    );
    assert_eq!(out["annotations"][2]["segmentation"]["counts"], "52203");
    assert_eq!(out["annotations"][3]["segmentation"], json!([]));
    assert_eq!(out["annotations"][2]["iscrowd"], 1);
    // Reading what we wrote gives the same dataset.
    let (again, p) = Coco::from_slice(&bytes, "out.json").unwrap();
    assert!(p.is_empty());
    assert_eq!(again, coco);

    let dir = std::env::temp_dir().join(format!("ed-coco-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("out.json");
    coco.write(&path).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
    let leftovers: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
    assert_eq!(leftovers.len(), 1, "no temp file left beside the output");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_records_are_named_and_the_rest_kept() {
    let mut v = sample();
    v["annotations"][0]["bbox"] = json!("wide");
    v["annotations"][1]["segmentation"] = json!({"counts": "abc"});
    v["annotations"][2]["iscrowd"] = json!(2);
    v["annotations"][3]["segmentation"] = json!([[1, "x", 3]]);
    v["images"][1]["id"] = json!("two");
    v["categories"][0].as_object_mut().unwrap().remove("name");
    let (coco, problems) = parse(&v);
    assert_eq!(coco.annotations.len(), 0);
    assert_eq!(coco.images.len(), 1);
    assert_eq!(coco.categories.len(), 0);
    let text: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
    assert_eq!(problems.len(), 6, "{text:#?}");
    assert!(text[0].starts_with("image #1 (no id):"), "{}", text[0]);
    assert!(
        text[1].starts_with("annotation 10:") && text[1].contains("bbox"),
        "{}",
        text[1]
    );
    assert!(
        text[2].starts_with("annotation 11:") && text[2].contains("size"),
        "{}",
        text[2]
    );
    assert!(
        text[3].starts_with("annotation 12:") && text[3].contains("iscrowd"),
        "{}",
        text[3]
    );
    assert!(
        text[4].starts_with("annotation 13:") && text[4].contains("part 0"),
        "{}",
        text[4]
    );
    assert!(
        text[5].starts_with("category 3:") && text[5].contains("name"),
        "{}",
        text[5]
    );
    assert_eq!(problems[1].kind, RecordKind::Annotation);
    // Strict reading turns the first one into an error naming file and record.
    let dir = std::env::temp_dir().join(format!("ed-coco-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.json");
    std::fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
    let e = Coco::read_strict(&path).unwrap_err().to_string();
    assert!(
        e.contains("bad.json") && e.contains("image #1 (no id)"),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn broken_files_are_errors_naming_file_and_position() {
    let e = Coco::from_slice(b"{\"images\": [\n{\"id\": 1,,}]}", "x.json")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("x.json: line 2, column"), "{e}");
    let e = Coco::from_slice(b"[1, 2]", "x.json")
        .unwrap_err()
        .to_string();
    assert!(e.contains("JSON object") && e.contains("a list"), "{e}");
    let e = Coco::from_slice(b"{\"annotations\": 5}", "x.json")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("\"annotations\"") && e.contains("must be a list"),
        "{e}"
    );
    let e = Coco::read(std::path::Path::new("/nonexistent/ann.json"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("/nonexistent/ann.json"), "{e}");
}
