//! Loader: deterministic batches (same seed → same bytes, any thread count), padded
//! targets, boxes/masks aligned with pixels after letterbox, errors naming files.
use edgedistill::data::Coco;
use edgedistill::data::augment::{Augmenter, Transform, TransformSpec};
use edgedistill::data::dataset::Dataset;
use edgedistill::data::loader::{Batch, Loader, LoaderConfig};
use edgedistill::tensor::Rng;
use image::{Rgb, RgbImage};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::Arc;

const COLORS: [[u8; 3]; 3] = [[230, 20, 20], [20, 200, 40], [30, 40, 220]];

/// `n` images of varied sizes, each with 0–3 solid rectangles (class = colour) given as
/// polygons; returns the folder and the COCO file.
fn make_dataset(tag: &str, n: u64) -> (PathBuf, Coco) {
    let dir = std::env::temp_dir().join(format!("ed-loader-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut rng = Rng::new(11);
    let (mut images, mut anns) = (vec![], vec![]);
    let mut aid = 1;
    for id in 1..=n {
        let (w, h) = (40 + rng.below(80) as u32, 30 + rng.below(80) as u32);
        let mut img = RgbImage::from_pixel(w, h, Rgb([128, 128, 128]));
        for _ in 0..rng.below(4) {
            let c = rng.below(3) as usize;
            let (x0, y0) = (
                rng.below(u64::from(w) - 12) as u32,
                rng.below(u64::from(h) - 12) as u32,
            );
            let (x1, y1) = (
                x0 + 8 + rng.below(u64::from(w - x0 - 8)) as u32,
                y0 + 8 + rng.below(u64::from(h - y0 - 8)) as u32,
            );
            for y in y0..y1 {
                for x in x0..x1 {
                    img.put_pixel(x, y, Rgb(COLORS[c]));
                }
            }
            let (fx0, fy0, fx1, fy1) = (x0 as f64, y0 as f64, x1 as f64, y1 as f64);
            anns.push(json!({"id": aid, "image_id": id, "category_id": c + 1,
                "bbox": [fx0, fy0, fx1 - fx0, fy1 - fy0], "area": (fx1 - fx0) * (fy1 - fy0),
                "segmentation": [[fx0, fy0, fx1, fy0, fx1, fy1, fx0, fy1]]}));
            aid += 1;
        }
        let name = format!("{id}.png");
        img.save(dir.join(&name)).unwrap();
        images.push(json!({"id": id, "file_name": name, "width": w, "height": h}));
    }
    let cats: Vec<_> = (1..=3)
        .map(|i| json!({"id": i, "name": format!("c{i}")}))
        .collect();
    let v = json!({"images": images, "annotations": anns, "categories": cats});
    let (coco, p) = Coco::from_slice(&serde_json::to_vec(&v).unwrap(), "gen.json").unwrap();
    assert!(p.is_empty());
    (dir, coco)
}

fn cfg(seed: u64) -> LoaderConfig {
    LoaderConfig {
        batch_size: 4,
        imgsz: 64,
        seed,
        prefetch: 2,
        ..LoaderConfig::default()
    }
}

fn aug() -> Augmenter {
    Augmenter::new(
        vec![
            TransformSpec::new(Transform::Mosaic, 0.5),
            TransformSpec::new(Transform::Affine(Default::default()), 1.0),
            TransformSpec::new(Transform::FlipLr, 0.5),
        ],
        64,
    )
    .unwrap()
}

fn bytes(b: &Batch) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend(
        b.images
            .to_vec::<f32>()
            .unwrap()
            .iter()
            .flat_map(|v| v.to_le_bytes()),
    );
    out.extend(
        b.boxes
            .to_vec::<f32>()
            .unwrap()
            .iter()
            .flat_map(|v| v.to_le_bytes()),
    );
    out.extend(
        b.classes
            .to_vec::<i64>()
            .unwrap()
            .iter()
            .flat_map(|v| v.to_le_bytes()),
    );
    out.extend(b.masks.as_ref().unwrap().to_vec::<u8>().unwrap());
    out
}

fn epoch_bytes(loader: &Loader, epoch: u64) -> Vec<Vec<u8>> {
    loader.epoch(epoch).map(|b| bytes(&b.unwrap())).collect()
}

#[test]
fn batches_are_deterministic_across_runs_and_thread_counts() {
    let (dir, coco) = make_dataset("det", 10);
    let ds = Arc::new(Dataset::from_coco(&coco, &dir, "gen.json").unwrap());
    assert!(ds.with_masks);
    let loader = Loader::new(ds.clone(), Some(aug()), cfg(3)).unwrap();
    assert_eq!(loader.num_batches(), 3);
    let a = epoch_bytes(&loader, 0);
    assert_eq!(a.len(), 3);
    assert_eq!(
        a,
        epoch_bytes(&loader, 0),
        "same seed, same epoch → same bytes"
    );
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    assert_eq!(
        a,
        one.install(|| epoch_bytes(&loader, 0)),
        "thread count does not matter"
    );
    assert_ne!(a, epoch_bytes(&loader, 1), "epochs differ");
    let other = Loader::new(ds, Some(aug()), cfg(4)).unwrap();
    assert_ne!(a, epoch_bytes(&other, 0), "seeds differ");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Without augmentation every box and mask lands on its colour in the letterboxed input.
#[test]
fn padded_targets_stay_on_their_pixels() {
    let (dir, coco) = make_dataset("align", 9);
    let ds = Arc::new(Dataset::from_coco(&coco, &dir, "gen.json").unwrap());
    let loader = Loader::new(
        ds,
        None,
        LoaderConfig {
            shuffle: false,
            mask_ratio: 1,
            ..cfg(0)
        },
    )
    .unwrap();
    let mut instances = 0;
    for b in loader.epoch(0) {
        let b = b.unwrap();
        let [bs, _, s, _] = b.images.dims().try_into().unwrap();
        let n = b.boxes.dims()[1];
        let img = b.images.to_vec::<f32>().unwrap();
        let boxes = b.boxes.to_vec::<f32>().unwrap();
        let classes = b.classes.to_vec::<i64>().unwrap();
        let masks = b.masks.as_ref().unwrap().to_vec::<u8>().unwrap();
        for i in 0..bs {
            for j in 0..n {
                let c = classes[i * n + j];
                if j >= b.counts[i] {
                    assert_eq!(c, -1, "padding class");
                    assert!(boxes[(i * n + j) * 4..][..4].iter().all(|&v| v == 0.0));
                    continue;
                }
                instances += 1;
                let colour = COLORS[c as usize];
                let bx = &boxes[(i * n + j) * 4..][..4];
                // Pixel centres well inside the box have the colour (objects may overlap:
                // only check where the mask says this object is on top).
                let m = &masks[(i * n + j) * s * s..][..s * s];
                let mut on = 0;
                for y in 0..s {
                    for x in 0..s {
                        if m[y * s + x] == 0 {
                            continue;
                        }
                        let (fx, fy) = (x as f32 + 0.5, y as f32 + 0.5);
                        assert!(
                            fx >= bx[0] - 1.0
                                && fx <= bx[2] + 1.0
                                && fy >= bx[1] - 1.0
                                && fy <= bx[3] + 1.0,
                            "mask pixel outside box"
                        );
                        let inner = fx > bx[0] + 1.5
                            && fx < bx[2] - 1.5
                            && fy > bx[1] + 1.5
                            && fy < bx[3] - 1.5;
                        let px: Vec<f32> = (0..3)
                            .map(|ch| img[((i * 3 + ch) * s + y) * s + x])
                            .collect();
                        if inner
                            && px
                                .iter()
                                .zip(colour)
                                .all(|(p, c)| (p * 255.0 - f32::from(c)).abs() < 2.0)
                        {
                            on += 1;
                        }
                    }
                }
                assert!(
                    on > 0,
                    "instance {j} of image {} has no pixel of its colour",
                    b.image_ids[i]
                );
            }
        }
    }
    assert!(instances > 5);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_missing_or_mis_sized_image_is_an_error_naming_it() {
    let (dir, coco) = make_dataset("missing", 4);
    std::fs::remove_file(dir.join("3.png")).unwrap();
    let ds = Arc::new(Dataset::from_coco(&coco, &dir, "gen.json").unwrap());
    let loader = Loader::new(
        ds,
        None,
        LoaderConfig {
            shuffle: false,
            batch_size: 1,
            ..cfg(0)
        },
    )
    .unwrap();
    let results: Vec<_> = loader.epoch(0).collect();
    assert_eq!(results.len(), 3, "stops after the error");
    let e = results[2].as_ref().unwrap_err().to_string();
    assert!(e.contains("3.png"), "{e}");

    let mut bad = coco.clone();
    bad.images[0].width = Some(999);
    let ds = Arc::new(Dataset::from_coco(&bad, Path::new(&dir), "gen.json").unwrap());
    let loader = Loader::new(
        ds,
        None,
        LoaderConfig {
            shuffle: false,
            batch_size: 1,
            ..cfg(0)
        },
    )
    .unwrap();
    let e = loader.epoch(0).next().unwrap().unwrap_err().to_string();
    assert!(
        e.contains("gen.json") && e.contains("image 1") && e.contains("999"),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
