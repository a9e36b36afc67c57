//! Per-model preprocessing against the reference processors (the fixture through the
//! library's `preprocess` checker), plus edge cases the fixture does not cover.
//!
//! tests/fixtures/preprocess-reference.safetensors was written by
//! tools/reference/make_preprocess_fixture.py (ultralytics 8.4.190 LetterBox, transformers
//! 5.23.0 SamImageProcessor / GroundingDinoImageProcessor with their default torchvision
//! backend, torch 2.15, opencv 5.0) from seeded noise images stored in the same file.
//!
//! Tolerances (the fixture's `tolerances` metadata, checked here):
//! - u8 image before normalisation: exact (0 LSB) for all three models;
//! - model input f32: exact (atol 0) — same f32 operations in the same order;
//! - per-channel f64 sums of the whole input: rtol 1e-9 (summation order only);
//! - box mappings: 1e-3 px (ultralytics/torch compute them in f32, we in f64).
use edgedistill::check::{Fixture, preprocess};
use edgedistill::data::preprocess::resize_cv2::resize_linear_cv2;
use edgedistill::data::preprocess::resize_torch_aa::resize_bilinear_aa_torch;
use edgedistill::data::preprocess::{
    GroundingDinoResize, SamResize, grounding_dino_preprocess, letterbox, sam_preprocess,
};
use image::{Rgb, RgbImage};

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/preprocess-reference.safetensors"
);

/// The replay itself is the library's `preprocess` checker (what `ed-check` runs).
#[test]
fn every_case_matches_the_reference_processors() {
    let fx = Fixture::open(FIXTURE).unwrap();
    assert_eq!(fx.kind(), "preprocess");
    // the exactness this file promises is what the fixture enforces
    for k in ["u8_rows", "u8_checksum", "pixel_values_rows", "placement"] {
        let t = fx.tolerance(&format!("outputs.x.{k}"));
        assert_eq!((t.atol, t.rtol), (0.0, 0.0), "{k}");
    }
    let lines = preprocess::check(&fx).unwrap();
    let failed: Vec<String> = lines
        .iter()
        .filter(|l| !l.pass)
        .map(|l| l.to_string())
        .collect();
    // largest differences per model, for the log
    let mut per_model: std::collections::BTreeMap<&str, (f64, f64)> = Default::default();
    for l in &lines {
        let m = per_model
            .entry(l.name.split('.').nth(1).unwrap_or("?"))
            .or_default();
        if l.name.ends_with("u8_rows") || l.name.ends_with("u8_checksum") {
            m.0 = m.0.max(l.max_abs);
        } else if l.name.ends_with("pixel_values_rows") {
            m.1 = m.1.max(l.max_abs);
        }
    }
    for (m, (u8d, f32d)) in &per_model {
        println!("{m}: max |u8 diff| {u8d}, max |f32 diff| {f32d:e}");
    }
    assert!(
        failed.is_empty(),
        "{} of {} differ:\n{}",
        failed.len(),
        lines.len(),
        failed.join("\n")
    );
    assert_eq!(
        lines.len(),
        fx.names_with_prefix("outputs.").len(),
        "every output compared"
    );
    let cases = fx.config().unwrap().as_array().map_or(0, Vec::len);
    assert!(
        cases >= 20 && lines.len() >= 130 && per_model.len() == 3,
        "{cases} cases, {} tensors, models {:?}",
        lines.len(),
        per_model.keys()
    );
}

fn noise(w: u32, h: u32, seed: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        let v = (x * 73 + y * 151 + seed * 17).wrapping_mul(2654435761);
        Rgb([(v >> 24) as u8, (v >> 16) as u8, (v >> 8) as u8])
    })
}

#[test]
fn resamplers_keep_flat_images_flat_and_same_size_identical() {
    let img = noise(31, 17, 1);
    assert_eq!(resize_linear_cv2(&img, 31, 17), img);
    assert_eq!(resize_bilinear_aa_torch(&img, 31, 17), img);
    for out in [
        resize_linear_cv2(&RgbImage::new(0, 3), 4, 2),
        resize_bilinear_aa_torch(&RgbImage::new(3, 0), 4, 2),
    ] {
        assert_eq!(out.dimensions(), (4, 2));
    }
    let flat = RgbImage::from_pixel(37, 23, Rgb([7, 128, 250]));
    for (w, h) in [(1, 1), (5, 90), (200, 3), (74, 46), (18, 11), (640, 397)] {
        for out in [
            resize_linear_cv2(&flat, w, h),
            resize_bilinear_aa_torch(&flat, w, h),
        ] {
            assert_eq!(out.dimensions(), (w, h));
            assert!(out.pixels().all(|p| p.0 == [7, 128, 250]), "{w}x{h}");
        }
    }
}

#[test]
fn letterbox_pads_with_114_and_maps_boxes_back() {
    let img = noise(1920, 1080, 2);
    let pre = letterbox(&img, 640).unwrap();
    let p = pre.placement;
    // r = 1/3: 640×360, 140 rows of padding above and below
    assert_eq!((p.new_w, p.new_h, p.left, p.top), (640, 360, 0, 140));
    assert_eq!(p.content_rect(), [0, 140, 640, 500]);
    assert_eq!(pre.pixel_values.dims(), &[3, 640, 640]);
    let v = pre.pixel_values.to_vec::<f32>().unwrap();
    let pad = 114.0f32 / 255.0;
    for c in 0..3 {
        for y in [0usize, 139, 500, 639] {
            assert!(
                v[(c * 640 + y) * 640..(c * 640 + y + 1) * 640]
                    .iter()
                    .all(|&x| x == pad)
            );
        }
    }
    // a box on the content maps back to original pixels and forward again
    let b = [100.0, 150.0, 400.0, 480.0];
    let o = p.box_to_original(b);
    assert_eq!(o, [300.0, 30.0, 1200.0, 1020.0]);
    let back = p.box_to_input(o);
    for k in 0..4 {
        assert!((back[k] - b[k]).abs() < 1e-3);
    }
    // boxes reaching into the padding are clipped to the image
    assert_eq!(
        p.box_to_original([-5.0, 0.0, 700.0, 640.0]),
        [0.0, 0.0, 1080.0 * 16.0 / 9.0, 1080.0]
    );
}

#[test]
fn sam_and_grounding_dino_shapes_padding_and_mask() {
    let img = noise(200, 120, 3);
    let sam = sam_preprocess(&img).unwrap();
    let p = sam.placement;
    assert_eq!((p.new_w, p.new_h), (1024, 614));
    assert_eq!(sam.pixel_values.dims(), &[3, 1024, 1024]);
    let v = sam.pixel_values.to_vec::<f32>().unwrap();
    // zero padding below row 614 (after normalisation), content above
    assert!(v[(614 * 1024)..(1024 * 1024)].iter().all(|&x| x == 0.0));
    assert!(v[..614 * 1024].iter().any(|&x| x != 0.0));
    let prompt = p.box_to_input([20.0, 12.0, 100.0, 60.0]);
    assert!((prompt[0] - 102.4).abs() < 1e-4 && (prompt[3] - 60.0 * 614.0 / 120.0).abs() < 1e-4);

    let g = grounding_dino_preprocess(&img).unwrap();
    let p = g.placement;
    assert_eq!(
        (p.new_w, p.new_h, p.input_w, p.input_h),
        (1333, 800, 1333, 800)
    );
    assert_eq!(g.pixel_values.dims(), &[3, 800, 1333]);
    let m = g.pixel_mask.as_ref().unwrap();
    assert_eq!(m.dims(), &[800, 1333]);
    assert!(m.to_vec::<u8>().unwrap().iter().all(|&x| x == 1));
    let b = p.normalized_cxcywh_to_original([0.5, 0.5, 0.2, 0.5]);
    for (got, want) in b.iter().zip([80.0, 30.0, 120.0, 90.0]) {
        assert!((got - want).abs() < 1e-4, "{b:?}");
    }

    // the size rule: shortest 800 unless longest would pass 1333
    let r = GroundingDinoResize::default();
    assert_eq!(r.output_size(480, 640), (800, 1066));
    assert_eq!(r.output_size(1, 5), (267, 1333));
    assert_eq!(r.output_size(800, 1000), (800, 1000));
}

#[test]
fn empty_images_and_bad_settings_are_errors() {
    let empty = RgbImage::new(0, 4);
    assert!(letterbox(&empty, 640).is_err());
    assert!(sam_preprocess(&empty).is_err());
    assert!(grounding_dino_preprocess(&empty).is_err());
    let img = noise(8, 8, 4);
    assert!(letterbox(&img, 0).is_err());
    let bad = SamResize {
        longest_edge: 64,
        pad_size: 32,
    };
    assert!(bad.apply(&img).is_err());
}
