//! YOLO ↔ COCO conversion: file matching, values, problems naming their file and record,
//! determinism, the round trip, and the `ed-convert` binary.
use edgedistill::data::Coco;
use edgedistill::data::convert::{
    CocoToYoloReport, ConvertProblem, coco_to_yolo, plan_coco_to_yolo, yolo_to_coco,
};
use edgedistill::data::progress::Progress;
use edgedistill::data::yolo_txt::{YoloShape, parse_labels};
use image::codecs::jpeg::JpegEncoder;
use image::{ExtendedColorType, ImageEncoder, ImageFormat, RgbImage};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ed-convert-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn write(path: &Path, bytes: impl AsRef<[u8]>) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

/// A w×h image in the format its extension names.
fn image(path: &Path, w: u32, h: u32) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let ext = path
        .extension()
        .unwrap()
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    let fmt = ImageFormat::from_extension(&ext).unwrap();
    RgbImage::new(w, h).save_with_format(path, fmt).unwrap();
}

/// A w×h JPEG stored with EXIF orientation 6 (displayed h×w).
fn rotated_jpeg(path: &Path, w: u32, h: u32) {
    let exif = vec![
        0x49, 0x49, 42, 0, 8, 0, 0, 0, 1, 0, 0x12, 0x01, 3, 0, 1, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0,
    ];
    let mut out = Vec::new();
    let mut enc = JpegEncoder::new(&mut out);
    enc.set_exif_metadata(exif).unwrap();
    enc.write_image(
        &vec![0; (w * h * 3) as usize],
        w,
        h,
        ExtendedColorType::Rgb8,
    )
    .unwrap();
    write(path, out);
}

fn names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("class{i}")).collect()
}

fn quiet() -> Progress {
    Progress::new("test", 0).hidden()
}

fn texts(problems: &[ConvertProblem]) -> Vec<String> {
    problems.iter().map(|p| p.to_string()).collect()
}

fn has(problems: &[ConvertProblem], prefix: &str, needle: &str) -> bool {
    texts(problems)
        .iter()
        .any(|t| t.starts_with(prefix) && t.contains(needle))
}

#[test]
fn images_match_labels_by_stem_across_extensions_and_case() {
    let d = tmp("match");
    let (im, lb) = (d.join("images"), d.join("labels"));
    image(&im.join("a.JPG"), 20, 10);
    image(&im.join("b.png"), 30, 15);
    image(&im.join("c.Bmp"), 8, 4);
    image(&im.join("sub/d.jpeg"), 16, 16);
    image(&im.join("e.jpg"), 12, 6);
    write(&im.join("notes.md"), "not an image");
    for l in [
        "a.txt",
        "b.TXT",
        "c.txt",
        "sub/d.txt",
        "orphan.txt",
        "A.txt",
    ] {
        write(&lb.join(l), "0 0.5 0.5 0.5 0.5\n");
    }
    let (coco, r) = yolo_to_coco(&im, &lb, &names(1), &quiet()).unwrap();
    let got: Vec<(u64, &str, u32, u32)> = coco
        .images
        .iter()
        .map(|i| {
            (
                i.id,
                i.file_name.as_str(),
                i.width.unwrap(),
                i.height.unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (1, "a.JPG", 20, 10),
            (2, "b.png", 30, 15),
            (3, "c.Bmp", 8, 4),
            (4, "e.jpg", 12, 6),
            (5, "sub/d.jpeg", 16, 16)
        ]
    );
    // Stems are case-sensitive: A.txt belongs to no image.
    assert_eq!(
        (
            r.images,
            r.annotations,
            r.images_without_labels,
            r.labels_without_images
        ),
        (5, 4, 1, 2)
    );
    assert_eq!(r.other_files, 1);
    let img_of: Vec<u64> = coco.annotations.iter().map(|a| a.image_id).collect();
    assert_eq!(img_of, [1, 2, 3, 5]);
    for orphan in ["A.txt", "orphan.txt"] {
        let p = format!("{}: no image with this stem", lb.join(orphan).display());
        assert!(has(&r.problems, &p, ""), "{:?}", texts(&r.problems));
    }
    assert_eq!(r.problems.len(), 2);
}

#[test]
fn two_images_with_one_stem_are_named_and_left_out() {
    let d = tmp("dup");
    let (im, lb) = (d.join("images"), d.join("labels"));
    image(&im.join("a.jpg"), 8, 8);
    image(&im.join("a.PNG"), 8, 8);
    image(&im.join("b.jpg"), 8, 8);
    write(&lb.join("a.txt"), "0 0.5 0.5 0.5 0.5\n");
    let (coco, r) = yolo_to_coco(&im, &lb, &names(1), &quiet()).unwrap();
    assert_eq!(coco.images.len(), 1);
    assert_eq!(r.images_skipped, 2);
    let t = texts(&r.problems);
    assert_eq!(t.len(), 1, "{t:?}");
    assert!(
        t[0].starts_with(&format!(
            "{}: images a.PNG and a.jpg share one stem",
            im.join("a").display()
        )) && t[0].contains(&lb.join("a.txt").display().to_string()),
        "{t:?}"
    );
}

#[test]
fn bad_lines_and_bad_images_name_file_and_line() {
    let d = tmp("bad");
    let (im, lb) = (d.join("images"), d.join("labels"));
    image(&im.join("x.png"), 10, 10);
    write(
        &lb.join("x.txt"),
        "0 0.5 0.5 0.2 0.2\n0 0.5 0.5\r\n\n1 0.5 0.5 0.2 1.5\n7 0.5 0.5 0.2 0.2\n1 0.1 0.1 0.9 0.1 0.5 0.9\n",
    );
    write(&im.join("broken.jpg"), b"\xFF\xD8\xFF\xE0\x00");
    write(&lb.join("broken.txt"), "0 0.5 0.5 0.5 0.5\n");
    let (coco, r) = yolo_to_coco(&im, &lb, &names(2), &quiet()).unwrap();
    assert_eq!((r.images, r.annotations, r.skipped_lines), (1, 2, 3));
    assert_eq!((r.detection_lines, r.segmentation_lines), (1, 1));
    assert_eq!(coco.annotations.len(), 2);
    let x = lb.join("x.txt").display().to_string();
    assert!(has(&r.problems, &format!("{x}:2: 3 tokens"), ""));
    assert!(has(
        &r.problems,
        &format!("{x}:4: token 5 = 1.5"),
        "outside [0, 1]"
    ));
    assert!(has(&r.problems, &format!("{x}:5: class 7"), "2 classes"));
    let b = im.join("broken.jpg").display().to_string();
    assert!(
        has(
            &r.problems,
            &format!("{b}: cannot read the image size: truncated"),
            "broken.txt"
        ),
        "{:?}",
        texts(&r.problems)
    );
    assert_eq!(r.images_skipped, 1);
}

#[test]
fn links_to_folders_are_not_followed_but_said() {
    let d = tmp("links");
    let (im, lb) = (d.join("images"), d.join("labels"));
    image(&d.join("elsewhere/real.png"), 4, 4);
    std::fs::create_dir_all(&im).unwrap();
    std::fs::create_dir_all(&lb).unwrap();
    std::os::unix::fs::symlink(d.join("elsewhere/real.png"), im.join("linked.png")).unwrap();
    std::os::unix::fs::symlink(d.join("elsewhere"), im.join("loop")).unwrap();
    std::os::unix::fs::symlink(d.join("missing.png"), im.join("dangling.png")).unwrap();
    let (coco, r) = yolo_to_coco(&im, &lb, &names(1), &quiet()).unwrap();
    assert_eq!(coco.images[0].file_name, "linked.png");
    assert_eq!(coco.images.len(), 1);
    let loop_ = im.join("loop").display().to_string();
    assert!(has(
        &r.problems,
        &format!("{loop_}: symlinked folder not followed"),
        ""
    ));
    let dangling = im.join("dangling.png").display().to_string();
    assert!(has(
        &r.problems,
        &format!("{dangling}: cannot follow link"),
        ""
    ));
}

#[test]
fn coco_values_from_boxes_and_polygons() {
    let d = tmp("values");
    let (im, lb) = (d.join("images"), d.join("labels"));
    image(&im.join("p.png"), 200, 100);
    rotated_jpeg(&im.join("r.jpg"), 40, 20);
    write(
        &lb.join("p.txt"),
        "1 0.5 0.25 0.2 0.1\n0 0.1 0.2 0.5 0.2 0.3 0.6\n",
    );
    write(&lb.join("r.txt"), "0 0.5 0.5 1 1\n");
    let (coco, r) = yolo_to_coco(&im, &lb, &["cat".into(), "dog".into()], &quiet()).unwrap();
    assert!(r.problems.is_empty());
    let v: Value = serde_json::from_slice(&coco.to_vec().unwrap()).unwrap();
    assert_eq!(
        v,
        json!({
            "images": [
                {"id": 1, "file_name": "p.png", "width": 200, "height": 100},
                {"id": 2, "file_name": "r.jpg", "width": 20, "height": 40}
            ],
            "annotations": [
                {"id": 1, "image_id": 1, "category_id": 2, "bbox": [80.0, 20.0, 40.0, 10.0],
                 "area": 400.0, "iscrowd": 0},
                {"id": 2, "image_id": 1, "category_id": 1,
                 "bbox": [20.0, 20.0, 80.0, 40.0],
                 "segmentation": [[20.0, 20.0, 100.0, 20.0, 60.0, 60.0]], "iscrowd": 0},
                {"id": 3, "image_id": 2, "category_id": 1, "bbox": [0.0, 0.0, 20.0, 40.0],
                 "area": 800.0, "iscrowd": 0}
            ],
            "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}]
        })
    );
}

/// A small seeded generator (the test must not depend on a random crate).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// 40 images of assorted sizes with random box and polygon lines; returns the label text.
fn random_dataset(im: &Path, lb: &Path) -> Vec<(String, String)> {
    let mut rng = Lcg(7);
    let mut out = Vec::new();
    for i in 0..40 {
        let (w, h) = (17 + (i * 37) % 300, 9 + (i * 53) % 200);
        let ext = ["jpg", "png", "bmp"][i as usize % 3];
        image(&im.join(format!("img{i:02}.{ext}")), w, h);
        let mut text = String::new();
        for _ in 0..(i % 6) {
            let c = (rng.next() * 3.0) as usize;
            if rng.next() < 0.5 {
                let (bw, bh) = (0.01 + rng.next() * 0.5, 0.01 + rng.next() * 0.5);
                let cx = bw / 2.0 + rng.next() * (1.0 - bw);
                let cy = bh / 2.0 + rng.next() * (1.0 - bh);
                text += &format!("{c} {cx} {cy} {bw} {bh}\n");
            } else {
                text += &c.to_string();
                for _ in 0..3 + (rng.next() * 8.0) as usize {
                    text += &format!(" {} {}", rng.next(), rng.next());
                }
                text += "\n";
            }
        }
        write(&lb.join(format!("img{i:02}.txt")), &text);
        out.push((format!("img{i:02}.txt"), text));
    }
    out
}

#[test]
fn yolo_coco_yolo_round_trip_within_1e6_relative() {
    let d = tmp("roundtrip");
    let (im, lb) = (d.join("images"), d.join("labels"));
    let original = random_dataset(&im, &lb);
    let (coco, r) = yolo_to_coco(&im, &lb, &names(3), &quiet()).unwrap();
    assert!(r.problems.is_empty() && r.annotations > 60, "{r:?}");
    let json = d.join("coco.json");
    coco.write(&json).unwrap();
    let (back, problems) = Coco::read(&json).unwrap();
    assert!(problems.is_empty());
    let (lb2, names_path) = (d.join("labels2"), d.join("names.txt"));
    let rep = coco_to_yolo(&back, &json, &lb2, &names_path, &quiet()).unwrap();
    assert_eq!(rep.clipped, 0);
    assert_eq!(
        std::fs::read_to_string(&names_path).unwrap(),
        "class0\nclass1\nclass2\n"
    );
    let mut compared = 0;
    for (file, text) in &original {
        let (want, _) = parse_labels(text.as_bytes(), None);
        let (got, p) = parse_labels(&std::fs::read(lb2.join(file)).unwrap(), None);
        assert!(p.is_empty());
        assert_eq!(want.len(), got.len(), "{file}");
        for ((_, a), (_, b)) in want.iter().zip(&got) {
            assert_eq!(a.class, b.class);
            let (va, vb) = match (&a.shape, &b.shape) {
                (
                    YoloShape::Box { cx, cy, w, h },
                    YoloShape::Box {
                        cx: x,
                        cy: y,
                        w: ww,
                        h: hh,
                    },
                ) => (vec![*cx, *cy, *w, *h], vec![*x, *y, *ww, *hh]),
                (YoloShape::Polygon(p), YoloShape::Polygon(q)) => (
                    p.iter().flatten().copied().collect(),
                    q.iter().flatten().copied().collect::<Vec<_>>(),
                ),
                _ => panic!("{file}: shape kind changed"),
            };
            assert_eq!(va.len(), vb.len());
            for (x, y) in va.iter().zip(&vb) {
                assert!((x - y).abs() <= 1e-6 * x.abs(), "{file}: {x} -> {y}");
                compared += 1;
            }
        }
    }
    assert!(compared > 400);
    // Converting the written labels again gives the same images and as many annotations.
    let (coco2, _) = yolo_to_coco(&im, &lb2, &names(3), &quiet()).unwrap();
    let (a, b) = (coco.to_vec().unwrap(), coco2.to_vec().unwrap());
    let (va, vb): (Value, Value) = (
        serde_json::from_slice(&a).unwrap(),
        serde_json::from_slice(&b).unwrap(),
    );
    assert_eq!(va["images"], vb["images"]);
    assert_eq!(
        va["annotations"].as_array().unwrap().len(),
        vb["annotations"].as_array().unwrap().len()
    );
}

#[test]
fn output_is_the_same_for_any_thread_count() {
    let d = tmp("threads");
    let (im, lb) = (d.join("images"), d.join("labels"));
    random_dataset(&im, &lb);
    let run = |n| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .unwrap()
            .install(|| yolo_to_coco(&im, &lb, &names(3), &quiet()).unwrap().0)
            .to_vec()
            .unwrap()
    };
    let one = run(1);
    assert_eq!(one, run(3));
    assert_eq!(one, run(8));
}

fn coco_fixture() -> Value {
    json!({
        "images": [
            {"id": 1, "file_name": "train/a.jpg", "width": 100, "height": 50},
            {"id": 2, "file_name": "b.png", "width": 10, "height": 10},
            {"id": 3, "file_name": "nosize.jpg"},
            {"id": 4, "file_name": "../escape.jpg", "width": 5, "height": 5},
            {"id": 5, "file_name": "b.jpg", "width": 10, "height": 10},
            {"id": 2, "file_name": "again.png", "width": 10, "height": 10},
            {"id": 6, "file_name": "empty.png", "width": 10, "height": 10}
        ],
        "categories": [{"id": 7, "name": "dog"}, {"id": 3, "name": "cat"}],
        "annotations": [
            // polygon, one part
            {"id": 10, "image_id": 1, "category_id": 3, "iscrowd": 0,
             "segmentation": [[10, 5, 50, 5, 50, 25]], "bbox": [10, 5, 40, 20]},
            // box only
            {"id": 11, "image_id": 1, "category_id": 7, "bbox": [0, 0, 100, 50]},
            // two-part polygon
            {"id": 12, "image_id": 1, "category_id": 7,
             "segmentation": [[0, 0, 10, 0, 10, 10], [20, 20, 30, 20, 30, 30]]},
            // RLE with a bbox; RLE (compressed) without one
            {"id": 13, "image_id": 2, "category_id": 3, "bbox": [1, 1, 2, 2],
             "segmentation": {"size": [10, 10], "counts": [11, 2, 8, 2, 77]}},
            {"id": 14, "image_id": 2, "category_id": 3,
             "segmentation": {"size": [10, 10], "counts": "<370T2"}},
            // crowd
            {"id": 15, "image_id": 2, "category_id": 3, "iscrowd": 1,
             "segmentation": {"size": [10, 10], "counts": [0, 100]}},
            // a box poking out of the image: clipped
            {"id": 16, "image_id": 2, "category_id": 7, "bbox": [-2, 5, 6, 10]},
            // problems
            {"id": 17, "image_id": 2, "category_id": 99, "bbox": [1, 1, 1, 1]},
            {"id": 18, "image_id": 42, "category_id": 3, "bbox": [1, 1, 1, 1]},
            {"id": 19, "image_id": 3, "category_id": 3, "bbox": [1, 1, 1, 1]},
            {"id": 20, "image_id": 1, "category_id": 3, "bbox": [1, 1, 0, 1]},
            {"id": 21, "image_id": 1, "category_id": 3, "bbox": [1, 1, 1]},
            {"id": 22, "image_id": 1, "category_id": 3},
            {"id": 23, "image_id": 1, "category_id": 3, "segmentation": [[1, 2, 3, 4]]},
            {"id": 24, "image_id": 1, "category_id": 3,
             "segmentation": {"size": [50, 100], "counts": [10, 99999]}},
            {"id": 25, "image_id": 1, "category_id": 3, "bbox": [200, 0, 5, 5]},
            {"id": 26, "image_id": 2, "category_id": 3,
             "segmentation": {"size": [4, 3], "counts": "522O0"}},
            // RLE problems found by the masks module: no pixel set; runs short of h·w
            {"id": 27, "image_id": 2, "category_id": 3,
             "segmentation": {"size": [10, 10], "counts": [100]}},
            {"id": 28, "image_id": 2, "category_id": 3,
             "segmentation": {"size": [10, 10], "counts": [11, 2]}}
        ]
    })
}

fn plan(v: &Value) -> (Vec<String>, Vec<(String, String)>, CocoToYoloReport) {
    let (coco, p) = Coco::from_slice(&serde_json::to_vec(v).unwrap(), "data.json").unwrap();
    assert!(p.is_empty(), "{p:?}");
    let (names, files, r) = plan_coco_to_yolo(&coco, Path::new("data.json")).unwrap();
    let files = files
        .into_iter()
        .map(|f| (f.rel.display().to_string(), f.text))
        .collect();
    (names, files, r)
}

#[test]
fn coco_to_yolo_polygons_boxes_rle_and_crowd() {
    let (names, files, r) = plan(&coco_fixture());
    // Categories sorted by id: 3 (cat) is class 0, 7 (dog) class 1.
    assert_eq!(names, ["cat", "dog"]);
    assert_eq!(
        files,
        [
            (
                "train/a.txt".into(),
                "0 0.1 0.1 0.5 0.1 0.5 0.5\n\
                 1 0.5 0.5 1 1\n\
                 1 0 0 0.1 0 0.1 0.2 0 0 0.2 0.4 0.3 0.4 0.3 0.6 0.2 0.4\n"
                    .into()
            ),
            (
                "b.txt".into(),
                "0 0.2 0.2 0.2 0.2\n0 0.2 0.35 0.2 0.3\n1 0.2 0.75 0.4 0.5\n".into()
            ),
            ("empty.txt".into(), String::new()),
        ]
    );
    assert_eq!(
        (
            r.label_files,
            r.detection_lines,
            r.segmentation_lines,
            r.rle_as_boxes,
            r.multi_part_polygons,
            r.crowd_skipped,
            r.clipped
        ),
        (3, 4, 2, 2, 1, 1, 1)
    );
    let t = texts(&r.problems);
    for (record, needle) in [
        ("image 2", "image id given twice"),
        ("image 3", "no positive width/height"),
        ("image 4", "leaves its folder"),
        ("image 5", "has the label path b.txt of image 2"),
        ("annotation 17", "category_id 99"),
        ("annotation 18", "image_id 42"),
        ("annotation 19", "its image 3 is left out"),
        ("annotation 20", "empty or not finite"),
        ("annotation 21", "bbox has 3 values"),
        ("annotation 22", "neither bbox nor segmentation"),
        ("annotation 23", "part 0 has 4 values"),
        (
            "annotation 24",
            "RLE counts sum to 100009 but the mask size 50×100",
        ),
        ("annotation 25", "outside the 100×50 image"),
        (
            "annotation 26",
            "RLE size [4, 3] does not match the image's [height, width] [10, 10]",
        ),
        ("annotation 27", "RLE mask is empty"),
        (
            "annotation 28",
            "RLE counts sum to 13 but the mask size 10×10",
        ),
    ] {
        let prefix = format!("data.json: {record}: ");
        assert!(
            t.iter()
                .any(|x| x.starts_with(&prefix) && x.contains(needle)),
            "{record}: {t:?}"
        );
    }
    assert_eq!(t.len(), 16, "{t:?}");
    assert_eq!((r.annotations_skipped, r.images_skipped), (12, 4));
    assert!(
        r.summary()
            .contains(&"rle masks written as boxes: 2".to_string())
    );
}

#[test]
fn category_names_that_cannot_be_names_lines_are_errors() {
    for (cats, needle) in [
        (
            json!([{"id": 1, "name": "a"}, {"id": 1, "name": "b"}]),
            "category 1: category id given twice",
        ),
        (json!([{"id": 1, "name": "a\nb"}]), "category 1: name"),
        (
            json!([{"id": 1, "name": "a"}, {"id": 2, "name": "a"}]),
            "category 2: name \"a\" is also",
        ),
    ] {
        let v = json!({"images": [], "annotations": [], "categories": cats});
        let (coco, _) = Coco::from_slice(&serde_json::to_vec(&v).unwrap(), "d.json").unwrap();
        let e = plan_coco_to_yolo(&coco, Path::new("d.json"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with(&format!("d.json: {needle}")), "{e}");
    }
}

#[test]
fn multi_part_polygon_keeps_its_area() {
    let (_, files, _) = plan(&coco_fixture());
    let line = files[0].1.lines().nth(2).unwrap();
    let v: Vec<f64> = line
        .split(' ')
        .skip(1)
        .map(|t| t.parse().unwrap())
        .collect();
    let pts: Vec<(f64, f64)> = v.chunks(2).map(|c| (c[0] * 100.0, c[1] * 50.0)).collect();
    let area: f64 = (0..pts.len())
        .map(|i| {
            let (a, b) = (pts[i], pts[(i + 1) % pts.len()]);
            a.0 * b.1 - b.0 * a.1
        })
        .sum::<f64>()
        / 2.0;
    assert!((area - 100.0).abs() < 1e-9, "{area}");
}

// ---- the binary ----

fn ed_convert(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ed-convert"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn the_tool_converts_reports_and_exits_by_outcome() {
    let d = tmp("tool");
    let (im, lb) = (d.join("images"), d.join("labels"));
    image(&im.join("a.png"), 20, 10);
    image(&im.join("b.jpg"), 20, 10);
    write(&lb.join("a.txt"), "0 0.5 0.5 0.5 0.5\n0 0.5 0.5 0.5\n");
    write(&lb.join("z.txt"), "");
    write(&d.join("names.txt"), "thing\n");
    let s = |p: &Path| p.display().to_string();
    let out = d.join("coco.json");
    let base = [
        "--from",
        "yolo",
        "--images",
        &s(&im),
        "--labels",
        &s(&lb),
        "--classes",
    ];
    let names_txt = s(&d.join("names.txt"));
    let mut args: Vec<&str> = base.to_vec();
    let out_s = s(&out);
    let problems_s = s(&d.join("problems.txt"));
    args.extend([names_txt.as_str(), "--out", &out_s, "--quiet"]);

    let mut strict = args.clone();
    strict.push("--strict");
    let (code, _, err) = ed_convert(&strict);
    assert_eq!(code, 1, "{err}");
    assert!(!out.exists(), "--strict must write nothing");

    args.extend(["--problems", &problems_s]);
    let (code, stdout, err) = ed_convert(&args);
    assert_eq!(code, 0, "{err}");
    for line in [
        "images: 2",
        "annotations: 1 (1 boxes, 0 polygons)",
        "skipped lines: 1",
        "images without labels: 1",
        "labels without images: 1",
    ] {
        assert!(stdout.contains(line), "{line}: {stdout}");
    }
    let line2 = format!("{}:2: 4 tokens", lb.join("a.txt").display());
    assert!(err.contains(&line2), "{err}");
    let listed = std::fs::read_to_string(d.join("problems.txt")).unwrap();
    assert!(listed.contains(&line2) && listed.contains("z.txt: no image"));
    let (coco, p) = Coco::read(&out).unwrap();
    assert!(p.is_empty());
    assert_eq!(coco.images.len(), 2);

    // Back to YOLO: names.txt lands beside the labels folder.
    let back = d.join("yolo/labels");
    let (code, stdout, err) = ed_convert(&[
        "--from",
        "coco",
        "--to",
        "yolo",
        "--data",
        &out_s,
        "--out-labels",
        &s(&back),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("label files: 2"), "{stdout}");
    // Without --quiet the progress reporter closes with count, time and rate on stderr.
    assert!(
        err.contains("label files: 2 in ") && err.contains("/s)"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(d.join("yolo/names.txt")).unwrap(),
        "thing\n"
    );
    assert_eq!(
        std::fs::read_to_string(back.join("a.txt")).unwrap(),
        "0 0.5 0.5 0.5 0.5\n"
    );
    assert_eq!(std::fs::read_to_string(back.join("b.txt")).unwrap(), "");

    let (code, _, err) = ed_convert(&["--from", "yolo", "--images", "x"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("--from yolo needs --labels DIR") && err.contains("usage:"),
        "{err}"
    );
    let (code, _, _) = ed_convert(&["--bogus"]);
    assert_eq!(code, 2);
    let (code, _, err) = ed_convert(&[
        "--from",
        "coco",
        "--to",
        "yolo",
        "--data",
        &s(&d.join("missing.json")),
        "--out-labels",
        "x",
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("missing.json"), "{err}");
}
