//! The synthetic dataset and the contour tracer: polygons rasterise back (pycocotools-exact
//! `Rle::from_polygons`) to exactly the traced pixels; generation is deterministic; the
//! COCO files pass validation; annotations are the visible regions of the drawn objects.
use edgedistill::data::coco::{Coco, Segmentation};
use edgedistill::data::masks::{Rle, mask_to_polygons};
use edgedistill::data::synth::scene::render;
use edgedistill::data::synth::shapes::{Shape, ShapeKind};
use edgedistill::data::synth::{SynthConfig, generate, visible_annotation};
use edgedistill::data::validate::{ValidateOptions, validate};
use edgedistill::tensor::Rng;
use std::path::{Path, PathBuf};

fn roundtrip(mask: &[u8], w: usize, h: usize) -> Vec<u8> {
    let polys = mask_to_polygons(mask, w, h);
    if polys.is_empty() {
        return vec![0; w * h];
    }
    Rle::from_polygons(&polys, h as u32, w as u32)
        .unwrap()
        .decode()
}

/// `mask` with every background region that cannot reach the border through 4-connected
/// background filled in (what outer contours describe).
fn fill_holes(mask: &[u8], w: usize, h: usize) -> Vec<u8> {
    let mut outside = vec![false; w * h];
    let mut stack: Vec<(usize, usize)> = Vec::new();
    for y in 0..h {
        for x in 0..w {
            if (x == 0 || y == 0 || x == w - 1 || y == h - 1) && mask[y * w + x] == 0 {
                outside[y * w + x] = true;
                stack.push((x, y));
            }
        }
    }
    while let Some((x, y)) = stack.pop() {
        for (nx, ny) in [
            (x.wrapping_sub(1), y),
            (x + 1, y),
            (x, y.wrapping_sub(1)),
            (x, y + 1),
        ] {
            if nx < w && ny < h && mask[ny * w + nx] == 0 && !outside[ny * w + nx] {
                outside[ny * w + nx] = true;
                stack.push((nx, ny));
            }
        }
    }
    (0..w * h).map(|i| u8::from(!outside[i])).collect()
}

#[test]
fn rectangle_is_exact_with_four_corners() {
    let (w, h) = (20, 15);
    let mut m = vec![0u8; w * h];
    for y in 3..11 {
        for x in 4..17 {
            m[y * w + x] = 1;
        }
    }
    let p = mask_to_polygons(&m, w, h);
    assert_eq!(p, vec![vec![17.0, 3.0, 17.0, 11.0, 4.0, 11.0, 4.0, 3.0]]);
    assert_eq!(roundtrip(&m, w, h), m);
    // Touching the image border.
    let full = vec![1u8; w * h];
    assert_eq!(roundtrip(&full, w, h), full);
}

#[test]
fn shapes_roundtrip_exactly() {
    let mut rng = Rng::new(3);
    let (w, h) = (96, 80);
    for i in 0..200 {
        let kind = ShapeKind::ALL[i % 5].1;
        let s = Shape {
            kind,
            cx: 10.0 + 76.0 * rng.uniform(),
            cy: 10.0 + 60.0 * rng.uniform(),
            r: 2.0 + 30.0 * rng.uniform(),
            angle: rng.uniform() * 7.0,
        };
        let r = s.rasterize(w, h);
        let mut m = vec![0u8; w * h];
        for y in r.rect[1]..r.rect[3] {
            for x in r.rect[0]..r.rect[2] {
                m[y * w + x] = u8::from(r.get(x, y));
            }
        }
        let back = roundtrip(&m, w, h);
        let want = fill_holes(&m, w, h);
        assert_eq!(back, want, "shape {i} {kind:?}");
    }
}

#[test]
fn random_masks_give_their_filled_outline() {
    // Random 0/1 noise: many components, diagonal pinches and holes.
    let mut rng = Rng::new(11);
    for t in 0..300 {
        let (w, h) = (1 + rng.below(14) as usize, 1 + rng.below(11) as usize);
        let density = 0.2 + 0.6 * rng.uniform();
        let m: Vec<u8> = (0..w * h)
            .map(|_| u8::from(rng.uniform() < density))
            .collect();
        assert_eq!(
            roundtrip(&m, w, h),
            fill_holes(&m, w, h),
            "trial {t}: {w}x{h} {m:?}"
        );
    }
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ed-synth-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().display().to_string();
                out.push((rel, std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn deterministic_and_valid() {
    let cfg = SynthConfig {
        n_train: 24,
        n_val: 8,
        size: 128,
        seed: 5,
        ..SynthConfig::default()
    };
    let (a, b, c) = (tmp("a"), tmp("b"), tmp("c"));
    let out = generate(&cfg, &a).unwrap();
    generate(&cfg, &b).unwrap();
    generate(
        &SynthConfig {
            seed: 6,
            ..cfg.clone()
        },
        &c,
    )
    .unwrap();
    let (fa, fb, fc) = (files(&a), files(&b), files(&c));
    assert_eq!(fa.len(), 24 + 8 + 2);
    assert!(fa == fb, "same seed, different bytes");
    assert!(fa != fc, "another seed gave the same dataset");
    assert_eq!((out.train_images, out.val_images), (24, 8));
    assert!(out.train_annotations >= 24 && out.val_annotations >= 8);

    for (json, n_ann) in [
        (&out.train_json, out.train_annotations),
        (&out.val_json, out.val_annotations),
    ] {
        let (coco, problems) = Coco::read(json).unwrap();
        assert!(problems.is_empty(), "{problems:?}");
        let opts = ValidateOptions {
            images_dir: Some(out.images_dir.clone()),
        };
        let v = validate(coco.clone(), Vec::new(), &opts);
        let r = &v.report;
        assert!(r.problems.is_empty(), "{:?}", r.problems);
        assert_eq!(
            (r.annotations, r.skipped_annotations, r.filled_bbox),
            (n_ann, 0, 0)
        );
        assert!(r.has_masks && r.num_classes == 4, "{r:?}");
        // Visible regions of one image never overlap, and bbox/area are the mask's.
        for im in &coco.images {
            let anns: Vec<_> = coco
                .annotations
                .iter()
                .filter(|a| a.image_id == im.id)
                .collect();
            let mut used = vec![0u8; 128 * 128];
            for a in anns {
                let Some(Segmentation::Polygons(p)) = &a.segmentation else {
                    panic!("polygons")
                };
                let rle = Rle::from_polygons(p, 128, 128).unwrap();
                assert_eq!(a.area, Some(rle.area() as f64));
                assert_eq!(a.bbox.as_deref(), Some(&rle.to_bbox()[..]));
                for (u, m) in used.iter_mut().zip(rle.decode()) {
                    assert!(*u + m <= 1, "image {}: overlapping visible masks", im.id);
                    *u += m;
                }
            }
        }
    }
    for d in [a, b, c] {
        let _ = std::fs::remove_dir_all(d);
    }
}

#[test]
fn annotations_are_the_visible_pixels() {
    let kinds: Vec<ShapeKind> = ShapeKind::ALL.iter().map(|k| k.1).collect();
    let mut rng = Rng::new(9);
    let (mut objects, mut occluded) = (0, 0);
    for _ in 0..40 {
        let s = render(&mut rng, 160, &kinds, 6);
        for o in &s.objects {
            let a = visible_annotation(o, 1, 160).unwrap();
            let Some(Segmentation::Polygons(p)) = &a.segmentation else {
                panic!()
            };
            let got = Rle::from_polygons(p, 160, 160).unwrap().decode();
            let [x0, y0, x1, y1] = o.rect;
            for y in 0..160 {
                for x in 0..160 {
                    let inside = x >= x0 && x < x1 && y >= y0 && y < y1;
                    let want = if inside {
                        o.bits[(y - y0) * (x1 - x0) + x - x0]
                    } else {
                        0
                    };
                    assert_eq!(got[y * 160 + x], want, "pixel ({x}, {y})");
                }
            }
            assert_eq!(
                a.bbox,
                Some(vec![
                    x0 as f64,
                    y0 as f64,
                    (x1 - x0) as f64,
                    (y1 - y0) as f64
                ])
            );
            objects += 1;
            occluded += usize::from(o.visible < o.full);
            assert!(o.visible as f64 >= 0.4 * o.full as f64);
        }
    }
    // The scenes do exercise occlusion.
    assert!(
        objects > 80 && occluded > 10,
        "{objects} objects, {occluded} occluded"
    );
}

#[test]
fn six_hundred_images_quickly() {
    let d = tmp("speed");
    let t = std::time::Instant::now();
    let out = generate(&SynthConfig::default(), &d).unwrap();
    let dt = t.elapsed();
    eprintln!(
        "600 images at 256²: {dt:?}, {} + {} annotations",
        out.train_annotations, out.val_annotations
    );
    assert_eq!(out.train_images + out.val_images, 600);
    let _ = std::fs::remove_dir_all(d);
}
