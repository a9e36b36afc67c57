//! Augmentation keeps boxes and masks on the pixels. Samples are drawn: solid, distinctly
//! coloured rectangles, discs and triangles on a grey background, each with its mask and
//! tight box. After every geometric transform, over many seeds: each interior mask pixel
//! still has its object's colour, each interior pixel of an object's colour is inside a
//! mask of that object, boxes enclose their masks tightly, masks stay 0/1 and sizes are as
//! expected. Pixel-level steps are compared with OpenCV / ultralytics through
//! tests/fixtures/augment-cv2.safetensors (tools/reference/make_augment_fixture.py).
use edgedistill::data::augment::{
    self, AffineParams, Augmenter, BlurParams, CopyPasteMode, CopyPasteParams, CutoutParams,
    Environment, HsvParams, NoiseParams, Transform, TransformSpec, affine, blur_noise, boxes,
    canvas, color, copy_paste, cutout, flip, mixup, mosaic, registry,
};
use edgedistill::data::{Instance, Sample};
use edgedistill::io::Safetensors;
use edgedistill::tensor::Rng;
use image::{GrayImage, Rgb, RgbImage};

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/augment-cv2.safetensors"
);
const BG: [u8; 3] = [128, 128, 128];
/// Distinct colours, far from the grey background and the grey fill (114).
const PALETTE: [[u8; 3]; 20] = [
    [230, 25, 75],
    [60, 180, 75],
    [255, 225, 25],
    [0, 130, 200],
    [245, 130, 48],
    [145, 30, 180],
    [70, 240, 240],
    [240, 50, 230],
    [210, 245, 60],
    [250, 190, 212],
    [0, 128, 128],
    [220, 190, 255],
    [170, 110, 40],
    [255, 250, 200],
    [128, 0, 0],
    [170, 255, 195],
    [128, 128, 0],
    [255, 215, 180],
    [0, 0, 128],
    [20, 20, 20],
];

fn colour(class: usize) -> [u8; 3] {
    PALETTE[class % PALETTE.len()]
}

#[derive(Clone, Copy)]
enum Shape {
    Rect,
    Disc,
    Triangle,
}

fn inside(shape: Shape, b: [u32; 4], x: u32, y: u32) -> bool {
    let (px, py) = (x as f64 + 0.5, y as f64 + 0.5);
    let [x0, y0, x1, y1] = b.map(|v| v as f64);
    match shape {
        Shape::Rect => px >= x0 && px < x1 && py >= y0 && py < y1,
        Shape::Disc => {
            let (cx, cy, r) = (
                (x0 + x1) / 2.0,
                (y0 + y1) / 2.0,
                (x1 - x0).min(y1 - y0) / 2.0,
            );
            (px - cx).powi(2) + (py - cy).powi(2) <= r * r
        }
        Shape::Triangle => {
            let v = [(x0, y1), (x1, y1), ((x0 + x1) / 2.0, y0)];
            let edge =
                |a: (f64, f64), b: (f64, f64)| (b.0 - a.0) * (py - a.1) - (b.1 - a.1) * (px - a.0);
            let e = [edge(v[0], v[1]), edge(v[1], v[2]), edge(v[2], v[0])];
            e.iter().all(|&s| s <= 0.0) || e.iter().all(|&s| s >= 0.0)
        }
    }
}

/// `n` non-overlapping objects of classes `class0..class0+n`, shapes cycling through
/// `shapes`, with masks when `masks`; boxes are the tight boxes of the drawn pixels.
fn draw(
    seed: u64,
    w: u32,
    h: u32,
    class0: usize,
    n: usize,
    masks: bool,
    shapes: &[Shape],
) -> Sample {
    let mut rng = Rng::new(seed);
    let mut image = RgbImage::from_pixel(w, h, Rgb(BG));
    let mut placed: Vec<[u32; 4]> = Vec::new();
    let mut instances = Vec::new();
    let max_side = (w.min(h) / 3).max(14);
    for k in 0..n {
        for _ in 0..200 {
            let bw = 12 + rng.below((max_side - 11) as u64) as u32;
            let bh = 12 + rng.below((max_side - 11) as u64) as u32;
            let x0 = rng.below((w - bw) as u64) as u32;
            let y0 = rng.below((h - bh) as u64) as u32;
            let b = [x0, y0, x0 + bw, y0 + bh];
            let clear = placed.iter().all(|p| {
                b[0] >= p[2] + 3 || p[0] >= b[2] + 3 || b[1] >= p[3] + 3 || p[1] >= b[3] + 3
            });
            if !clear {
                continue;
            }
            placed.push(b);
            let shape = shapes[k % shapes.len()];
            let class = class0 + k;
            let mut mask = GrayImage::new(w, h);
            for y in b[1]..b[3] {
                for x in b[0]..b[2] {
                    if inside(shape, b, x, y) {
                        image.put_pixel(x, y, Rgb(colour(class)));
                        mask.put_pixel(x, y, image::Luma([1]));
                    }
                }
            }
            let bbox = boxes::mask_box(&mask).unwrap();
            instances.push(Instance {
                class,
                bbox,
                mask: masks.then_some(mask),
                crowd: false,
            });
            break;
        }
    }
    Sample {
        id: seed,
        image,
        instances,
    }
}

/// The pixel and all within `r` of it are in the mask.
fn interior(m: &GrayImage, x: u32, y: u32, r: u32) -> bool {
    let (w, h) = m.dimensions();
    if x < r || y < r || x + r >= w || y + r >= h {
        return false;
    }
    (y - r..=y + r).all(|yy| (x - r..=x + r).all(|xx| m.get_pixel(xx, yy)[0] != 0))
}

fn dist(a: [u8; 3], b: [u8; 3]) -> u32 {
    a.iter().zip(&b).map(|(p, q)| p.abs_diff(*q) as u32).sum()
}

fn close(a: [u8; 3], b: [u8; 3], tol: u8) -> bool {
    a.iter().zip(&b).all(|(p, q)| p.abs_diff(*q) <= tol)
}

/// The alignment check for samples whose instances all have masks.
fn check_aligned(s: &Sample, what: &str) {
    let (w, h) = s.image.dimensions();
    let mut by_class: std::collections::HashMap<usize, GrayImage> = Default::default();
    for (i, inst) in s.instances.iter().enumerate() {
        let m = inst
            .mask
            .as_ref()
            .unwrap_or_else(|| panic!("{what}: instance {i} lost its mask"));
        assert_eq!(m.dimensions(), (w, h), "{what}: instance {i} mask size");
        assert!(
            m.iter().all(|&v| v <= 1),
            "{what}: instance {i} mask not 0/1"
        );
        let mb =
            boxes::mask_box(m).unwrap_or_else(|| panic!("{what}: instance {i} has an empty mask"));
        for k in 0..4 {
            assert!(
                (inst.bbox[k] - mb[k]).abs() <= 1.0,
                "{what}: instance {i} box {:?} not tight on its mask {:?}",
                inst.bbox,
                mb
            );
        }
        let want = colour(inst.class);
        // Colours a misplaced mask pixel would see instead: background, fill, other objects.
        let others: Vec<[u8; 3]> = [BG, [114; 3]]
            .into_iter()
            .chain(
                s.instances
                    .iter()
                    .filter(|o| o.class != inst.class)
                    .map(|o| colour(o.class)),
            )
            .collect();
        for y in 0..h {
            for x in 0..w {
                let got = s.image.get_pixel(x, y).0;
                // Two pixels in from the mask edge: exactly the object colour (bilinear of
                // equal values). One pixel in: bilinear may mix in up to a corner weight of
                // a neighbour, but the object colour still dominates.
                if interior(m, x, y, 2) {
                    assert!(
                        close(got, want, 2),
                        "{what}: instance {i} (class {}) mask pixel ({x}, {y}) is {got:?}, object colour {want:?}",
                        inst.class
                    );
                } else if interior(m, x, y, 1) {
                    assert!(
                        others.iter().all(|&o| dist(got, want) < dist(got, o)),
                        "{what}: instance {i} (class {}) mask pixel ({x}, {y}) is {got:?}, nearer another colour than {want:?}",
                        inst.class
                    );
                }
            }
        }
        let u = by_class
            .entry(inst.class)
            .or_insert_with(|| GrayImage::new(w, h));
        for (a, &b) in u.iter_mut().zip(m.iter()) {
            *a |= b;
        }
    }
    // Every solid patch of a present object's colour is covered by that object's masks.
    for (&class, union) in &by_class {
        let c = colour(class);
        for y in 1..h.saturating_sub(1) {
            for x in 1..w.saturating_sub(1) {
                let solid = (y - 1..=y + 1)
                    .all(|yy| (x - 1..=x + 1).all(|xx| s.image.get_pixel(xx, yy).0 == c));
                if solid {
                    assert!(
                        union.get_pixel(x, y)[0] == 1,
                        "{what}: pixel ({x}, {y}) has class {class}'s colour but no mask of that class"
                    );
                }
            }
        }
    }
}

#[test]
fn the_alignment_check_catches_a_mask_off_by_two_pixels() {
    let s = draw(
        3,
        96,
        80,
        0,
        3,
        true,
        &[Shape::Rect, Shape::Disc, Shape::Triangle],
    );
    check_aligned(&s, "drawn");
    let mut bad = s.clone();
    let m = bad.instances[0].mask.as_mut().unwrap();
    let shifted = image::imageops::crop_imm(m, 0, 0, 94, 80).to_image();
    *m = GrayImage::new(96, 80);
    image::imageops::replace(m, &shifted, 2, 0);
    bad.instances[0].bbox = boxes::mask_box(m).unwrap();
    let caught = std::panic::catch_unwind(|| check_aligned(&bad, "shifted"));
    assert!(caught.is_err(), "a mask shifted by 2 px passed the check");
}

const SHAPES: [Shape; 3] = [Shape::Rect, Shape::Disc, Shape::Triangle];

#[test]
fn flips_move_masks_and_boxes_with_the_pixels() {
    for seed in 0..10 {
        let s = draw(seed, 97, 64, 0, 4, true, &SHAPES);
        let lr = flip::flip_lr(s.clone());
        let ud = flip::flip_ud(s.clone());
        check_aligned(&lr, "flip_lr");
        check_aligned(&ud, "flip_ud");
        for (a, b) in s.instances.iter().zip(&lr.instances) {
            assert_eq!(
                b.bbox,
                [97.0 - a.bbox[2], a.bbox[1], 97.0 - a.bbox[0], a.bbox[3]]
            );
        }
        for (a, b) in s.instances.iter().zip(&ud.instances) {
            assert_eq!(
                b.bbox,
                [a.bbox[0], 64.0 - a.bbox[3], a.bbox[2], 64.0 - a.bbox[1]]
            );
        }
        assert_eq!(flip::flip_lr(lr), s);
        assert_eq!(flip::flip_ud(ud), s);
    }
}

fn affine_cases() -> Vec<(&'static str, AffineParams)> {
    let p = |degrees, translate, scale, shear| AffineParams {
        degrees,
        translate,
        scale,
        shear,
    };
    vec![
        ("rotate", p(180.0, 0.0, 0.0, 0.0)),
        ("scale", p(0.0, 0.0, 0.6, 0.0)),
        ("translate", p(0.0, 0.4, 0.0, 0.0)),
        ("shear", p(0.0, 0.0, 0.0, 30.0)),
        ("combined", p(45.0, 0.2, 0.5, 10.0)),
    ]
}

#[test]
fn affine_keeps_masks_and_boxes_on_the_pixels() {
    let mut removed_total = 0;
    for (name, params) in affine_cases() {
        for seed in 0..16 {
            let s = draw(seed, 128, 96, 0, 4, true, &SHAPES);
            let n = s.instances.len();
            let mut rng = Rng::new(1000 + seed);
            let (out, removed) = affine::random_affine(s, &params, 112, 120, &mut rng);
            assert_eq!(out.image.dimensions(), (112, 120), "{name}");
            assert_eq!(out.instances.len() + removed, n, "{name} seed {seed}");
            removed_total += removed;
            check_aligned(&out, &format!("affine {name} seed {seed}"));
        }
    }
    // translate 0.4 and rotation push objects out of frame sometimes: removal is exercised
    assert!(removed_total > 0);
}

#[test]
fn affine_box_only_instances_get_the_box_of_their_transformed_corners() {
    for (name, params) in affine_cases() {
        for seed in 0..12 {
            let s = draw(seed, 128, 96, 0, 4, false, &[Shape::Rect]);
            let mut rng = Rng::new(seed);
            let (out, _) = affine::random_affine(s, &params, 128, 96, &mut rng);
            for inst in &out.instances {
                let c = colour(inst.class);
                let mut ext = [f32::MAX, f32::MAX, f32::MIN, f32::MIN];
                // pixels the object covers more than half of (its colour dominates; objects
                // dropped from the list may still show a sliver, so every colour is a rival)
                let rivals: Vec<[u8; 3]> = [BG, [114; 3]]
                    .into_iter()
                    .chain(PALETTE.into_iter().filter(|&p| p != c))
                    .collect();
                for (x, y, px) in out.image.enumerate_pixels() {
                    if rivals.iter().all(|&r| dist(px.0, c) < dist(px.0, r)) {
                        let (x, y) = (x as f32, y as f32);
                        ext = [
                            ext[0].min(x),
                            ext[1].min(y),
                            ext[2].max(x + 1.0),
                            ext[3].max(y + 1.0),
                        ];
                    }
                }
                let b = inst.bbox;
                assert!(
                    ext[0] <= ext[2],
                    "{name} seed {seed}: object {} has no solid pixel",
                    inst.class
                );
                // The box encloses the object. cv2 samples pixel centres at integer
                // coordinates while boxes are continuous, so edges may differ by about a
                // pixel (more at the far edge under scaling).
                let tol = 1.5;
                assert!(
                    b[0] <= ext[0] + tol
                        && b[1] <= ext[1] + tol
                        && b[2] >= ext[2] - tol
                        && b[3] >= ext[3] - tol,
                    "{name} seed {seed}: box {b:?} does not enclose the object {ext:?}"
                );
                // A rotated rectangle's corner box is tight, unless the frame cut the
                // rectangle (then ultralytics' corners-then-clip box is looser).
                let (w, h) = (out.width() as f32, out.height() as f32);
                if b[0] > 0.0 && b[1] > 0.0 && b[2] < w && b[3] < h {
                    for k in 0..4 {
                        assert!(
                            (b[k] - ext[k]).abs() <= tol,
                            "{name} seed {seed}: box {b:?} not tight on the object {ext:?}"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn affine_drops_instances_that_leave_the_frame_and_counts_them() {
    let s = draw(5, 100, 100, 0, 4, true, &SHAPES);
    // translate everything 200 px to the right: nothing is left
    let m: affine::Mat = [1.0, 0.0, 200.0, 0.0, 1.0, 0.0];
    let (out, removed) = affine::apply_matrix(s.clone(), &m, 1.0, 100, 100);
    assert_eq!((out.instances.len(), removed), (0, 4));
    assert!(out.image.pixels().all(|p| p.0 == [114, 114, 114]));
    // a shift of 0 keeps all
    let id: affine::Mat = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0];
    let (out, removed) = affine::apply_matrix(s.clone(), &id, 1.0, 100, 100);
    assert_eq!(removed, 0);
    assert_eq!(out, s);
}

fn fixture() -> Safetensors {
    Safetensors::open(FIXTURE).expect("tests/fixtures/augment-cv2.safetensors")
}

fn u8s(fx: &Safetensors, name: &str) -> (Vec<u8>, Vec<usize>) {
    let t = fx.tensor(name).unwrap();
    (t.to_vec::<u8>().unwrap(), t.dims().to_vec())
}

#[test]
fn warp_matches_cv2_warp_affine_exactly() {
    let fx = fixture();
    for i in 0..3 {
        let (img, d) = u8s(&fx, &format!("warp.{i}.img"));
        let (want, od) = u8s(&fx, &format!("warp.{i}.out"));
        let (mask, _) = u8s(&fx, &format!("warp.{i}.mask"));
        let (want_mask, _) = u8s(&fx, &format!("warp.{i}.mask_out"));
        let m: Vec<f64> = fx
            .tensor(&format!("warp.{i}.m"))
            .unwrap()
            .to_vec::<f64>()
            .unwrap();
        let m: affine::Mat = m.try_into().unwrap();
        let img = RgbImage::from_raw(d[1] as u32, d[0] as u32, img).unwrap();
        let mask = GrayImage::from_raw(d[1] as u32, d[0] as u32, mask).unwrap();
        let (ow, oh) = (od[1] as u32, od[0] as u32);
        let got = affine::warp_image(&img, &m, ow, oh, 114);
        let diff = got
            .as_raw()
            .iter()
            .zip(&want)
            .filter(|(a, b)| a != b)
            .count();
        assert_eq!(
            diff,
            0,
            "case {i}: {diff} of {} values differ from cv2",
            want.len()
        );
        let got = affine::warp_mask(&mask, &m, ow, oh);
        assert_eq!(
            got.as_raw(),
            &want_mask,
            "case {i}: nearest mask warp differs from cv2"
        );
        assert!(
            want_mask.contains(&1),
            "case {i}: the fixture mask must stay in frame"
        );
    }
}

#[test]
fn hsv_conversions_match_cv2() {
    let fx = fixture();
    let (rgb, _) = u8s(&fx, "hsv.rgb");
    let (hsv, _) = u8s(&fx, "hsv.hsv");
    for (p, q) in rgb.chunks(3).zip(hsv.chunks(3)) {
        assert_eq!(
            color::rgb_to_hsv([p[0], p[1], p[2]]),
            [q[0], q[1], q[2]],
            "rgb {p:?}"
        );
    }
    let (hsv, _) = u8s(&fx, "hsv2rgb.hsv");
    let (rgb, _) = u8s(&fx, "hsv2rgb.rgb");
    for (p, q) in hsv.chunks(3).zip(rgb.chunks(3)) {
        assert_eq!(
            color::hsv_to_rgb([p[0], p[1], p[2]]),
            [q[0], q[1], q[2]],
            "hsv {p:?}"
        );
    }
    assert!(rgb.len() >= 3 * 4096);
}

#[test]
fn hsv_jitter_matches_ultralytics_random_hsv() {
    let fx = fixture();
    for i in 0..3 {
        let (img, d) = u8s(&fx, &format!("jitter.{i}.img"));
        let (want, _) = u8s(&fx, &format!("jitter.{i}.out"));
        let r: Vec<f64> = fx
            .tensor(&format!("jitter.{i}.r"))
            .unwrap()
            .to_vec::<f64>()
            .unwrap();
        let mut img = RgbImage::from_raw(d[1] as u32, d[0] as u32, img).unwrap();
        let before = img.clone();
        color::apply_hsv_gains(&mut img, [r[0], r[1], r[2]]);
        assert_eq!(img.as_raw(), &want, "case {i}, gains {r:?}");
        assert_ne!(img, before, "case {i} changed nothing");
    }
}

#[test]
fn pixel_steps_leave_geometry_alone_and_stay_in_bounds() {
    let s = draw(11, 96, 72, 0, 4, true, &SHAPES);
    // zero gains: identity, no draws
    let mut img = s.image.clone();
    let mut rng = Rng::new(0);
    color::random_hsv(
        &mut img,
        &HsvParams {
            h: 0.0,
            s: 0.0,
            v: 0.0,
        },
        &mut rng,
    );
    assert_eq!(img, s.image);
    assert_eq!(rng.next_u64(), Rng::new(0).next_u64());

    let step = |t: Transform| {
        let aug = Augmenter::new(vec![TransformSpec::new(t, 1.0)], 96).unwrap();
        let mut outs = Vec::new();
        for seed in 0..8 {
            let (o, st) = aug
                .apply(s.clone(), &mut augment::no_partners, &mut Rng::new(seed))
                .unwrap();
            assert_eq!(o.instances, s.instances, "geometry changed");
            assert_eq!(st.removed_instances, 0);
            outs.push(o.image);
        }
        outs
    };
    let (bx, by, _) = s.image.enumerate_pixels().find(|p| p.2.0 == BG).unwrap();
    for img in step(Transform::Hsv(HsvParams::default())) {
        assert_ne!(img, s.image);
        // grey stays grey (ultralytics' saturation LUT keeps 0 at 0)
        let g = img.get_pixel(bx, by).0;
        assert!(g[0] == g[1] && g[1] == g[2], "background {g:?} not grey");
    }
    for img in step(Transform::Blur(BlurParams { max_kernel: 7 })) {
        assert_ne!(img, s.image);
        // a box blur never leaves the range of its input
        let (lo, hi) = s
            .image
            .iter()
            .fold((255, 0), |(l, h), &v| (l.min(v), h.max(v)));
        assert!(img.iter().all(|&v| v >= lo && v <= hi));
    }
    let mut noisy = 0;
    for img in step(Transform::Noise(NoiseParams { max_std: 10.0 })) {
        let d: Vec<f64> = img
            .iter()
            .zip(s.image.iter())
            .map(|(&a, &b)| a as f64 - b as f64)
            .collect();
        let mean_abs = d.iter().map(|v| v.abs()).sum::<f64>() / d.len() as f64;
        // |N(0, σ)| averages 0.8σ, σ uniform in 0..10
        assert!(mean_abs < 8.5, "mean |noise| {mean_abs}");
        assert!(
            d.iter().sum::<f64>().abs() / (d.len() as f64) < 0.5,
            "noise not centred"
        );
        noisy += (mean_abs > 0.5) as usize;
    }
    assert!(noisy >= 5, "{noisy} of 8 images visibly noisy");
}

#[test]
fn box_blur_is_the_reflect101_window_mean() {
    let mut rng = Rng::new(4);
    let raw: Vec<u8> = (0..9 * 7 * 3).map(|_| rng.below(256) as u8).collect();
    let img = RgbImage::from_raw(9, 7, raw).unwrap();
    for k in [3u32, 5, 7, 9] {
        let out = blur_noise::box_blur(&img, k);
        let r = (k / 2) as i64;
        let refl = |i: i64, n: i64| {
            let p = 2 * n - 2;
            let i = i.rem_euclid(p);
            (if i >= n { p - i } else { i }) as u32
        };
        for (x, y, px) in out.enumerate_pixels() {
            for c in 0..3 {
                let mut sum = 0u32;
                for dy in -r..=r {
                    for dx in -r..=r {
                        sum +=
                            img.get_pixel(refl(x as i64 + dx, 9), refl(y as i64 + dy, 7))[c] as u32;
                    }
                }
                // k² is odd, so the mean is never exactly halfway: plain rounding
                let want = (sum as f64 / (k * k) as f64).round() as u8;
                assert_eq!(px[c], want, "k {k} ({x}, {y}) channel {c}");
            }
        }
    }
}

#[test]
fn mosaic_places_four_samples_with_their_instances() {
    for seed in 0..12 {
        let samples: [Sample; 4] = std::array::from_fn(|i| {
            draw(
                seed * 4 + i as u64,
                64 + 8 * i as u32,
                72 - 6 * i as u32,
                4 * i,
                4,
                true,
                &SHAPES,
            )
        });
        let n: usize = samples.iter().map(|s| s.instances.len()).sum();
        let mut rng = Rng::new(seed);
        let (out, removed) = mosaic::mosaic4(samples, 64, &mut rng);
        assert_eq!(out.image.dimensions(), (128, 128));
        assert_eq!(out.id, seed * 4);
        assert_eq!(out.instances.len() + removed, n);
        check_aligned(&out, &format!("mosaic seed {seed}"));
        // each tile's classes come from its own sample
        assert!(out.instances.iter().all(|i| i.class < 16));
    }
}

fn pool(n: u64, size: u32) -> Vec<Sample> {
    (0..n)
        .map(|i| {
            draw(
                500 + i,
                size,
                size - 8,
                4 * (i as usize % 4),
                4,
                true,
                &SHAPES,
            )
        })
        .collect()
}

fn partners_from(pool: &[Sample]) -> impl FnMut(&mut Rng) -> edgedistill::Result<Sample> + '_ {
    move |rng: &mut Rng| Ok(pool[rng.below(pool.len() as u64) as usize].clone())
}

#[test]
fn mosaic_then_affine_crops_back_to_imgsz_aligned() {
    let pool = pool(6, 80);
    let specs = vec![
        TransformSpec::new(Transform::Mosaic, 1.0),
        TransformSpec::new(
            Transform::Affine(AffineParams {
                degrees: 20.0,
                shear: 5.0,
                ..Default::default()
            }),
            1.0,
        ),
        TransformSpec::new(Transform::FlipLr, 0.5),
    ];
    let aug = Augmenter::new(specs, 80).unwrap();
    let mut removed = 0;
    for seed in 0..12 {
        let main = draw(seed, 80, 72, 16, 3, true, &SHAPES);
        let (out, st) = aug
            .apply(main, &mut partners_from(&pool), &mut Rng::new(seed))
            .unwrap();
        assert_eq!(out.image.dimensions(), (80, 80));
        assert_eq!(&st.applied[..2], &["mosaic", "affine"]);
        removed += st.removed_instances;
        check_aligned(&out, &format!("mosaic+affine seed {seed}"));
    }
    assert!(
        removed > 0,
        "mosaic cuts and the crop back should remove some instances"
    );
}

#[test]
fn mixup_blends_pixels_and_keeps_both_instance_lists() {
    let a = draw(1, 64, 48, 0, 3, true, &SHAPES);
    let b = draw(2, 64, 48, 5, 3, true, &SHAPES);
    let mut rng = Rng::new(9);
    for _ in 0..5 {
        let r = mixup::mixup_ratio(&mut rng);
        let m = mixup::mix(a.clone(), b.clone(), r).unwrap();
        for ((p, q), o) in a.image.iter().zip(b.image.iter()).zip(m.image.iter()) {
            assert_eq!(*o, (*p as f64 * r + *q as f64 * (1.0 - r)) as u8);
        }
        let want: Vec<Instance> = a.instances.iter().chain(&b.instances).cloned().collect();
        assert_eq!(m.instances, want);
        assert_eq!(m.id, a.id);
    }
    let other = draw(3, 60, 48, 0, 2, true, &SHAPES);
    let e = mixup::mix(a.clone(), other, 0.5).unwrap_err().to_string();
    assert!(e.contains("64x48") && e.contains("60x48"), "{e}");
    // Beta(32, 32): mean 1/2, sd sqrt(1 / (4 * 65)) = 0.062
    let v: Vec<f64> = (0..4000).map(|_| mixup::mixup_ratio(&mut rng)).collect();
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    let sd = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / v.len() as f64).sqrt();
    assert!(
        (mean - 0.5).abs() < 0.005 && (sd - 0.062).abs() < 0.005,
        "mean {mean} sd {sd}"
    );
}

#[test]
fn mixup_partner_goes_through_the_steps_before_it() {
    let pool = pool(4, 72);
    let specs = vec![
        TransformSpec::new(Transform::Mosaic, 1.0),
        TransformSpec::new(Transform::Affine(AffineParams::default()), 1.0),
        TransformSpec::new(Transform::MixUp, 1.0),
    ];
    let aug = Augmenter::new(specs, 72).unwrap();
    let mut calls = 0;
    let mut partners = |rng: &mut Rng| {
        calls += 1;
        Ok(pool[rng.below(4) as usize].clone())
    };
    let main = draw(40, 72, 64, 16, 3, true, &SHAPES);
    let (out, st) = aug.apply(main, &mut partners, &mut Rng::new(3)).unwrap();
    // 3 for the main mosaic, 1 mixup partner + its own 3 mosaic partners
    assert_eq!(calls, 7);
    assert_eq!(out.image.dimensions(), (72, 72));
    assert_eq!(st.applied, vec!["mosaic", "affine", "mixup"]);
    for inst in &out.instances {
        let m = inst.mask.as_ref().unwrap();
        assert_eq!(m.dimensions(), (72, 72));
        assert_eq!(Some(inst.bbox), boxes::mask_box(m));
    }
}

/// No pixel belongs to two masks.
fn masks_disjoint(s: &Sample) -> bool {
    let (w, h) = s.image.dimensions();
    let mut count = vec![0u8; (w * h) as usize];
    for inst in &s.instances {
        for (c, &v) in count.iter_mut().zip(inst.mask.as_ref().unwrap().iter()) {
            *c += v;
        }
    }
    count.iter().all(|&c| c <= 1)
}

#[test]
fn copy_paste_flip_pastes_mirrored_objects_and_updates_covered_masks() {
    let mut pasted = 0;
    for seed in 0..20 {
        let s = draw(seed, 120, 80, 0, 5, true, &SHAPES);
        let n = s.instances.len();
        let (out, removed) = copy_paste::copy_paste(s.clone(), None, 1.0).unwrap();
        check_aligned(&out, &format!("copy_paste seed {seed}"));
        assert!(masks_disjoint(&out), "seed {seed}: overlapping masks");
        let added = out.instances.len() + removed - n;
        pasted += added;
        // each pasted one is the mirror of an original
        for inst in &out.instances[out.instances.len() - added..] {
            let src = s.instances.iter().find(|o| o.class == inst.class).unwrap();
            assert_eq!(
                inst.mask,
                flip::flip_lr(Sample {
                    id: 0,
                    image: s.image.clone(),
                    instances: vec![src.clone()]
                })
                .instances[0]
                    .mask
            );
        }
        // fraction 0 pastes nothing
        assert_eq!(copy_paste::copy_paste(s.clone(), None, 0.0).unwrap().0, s);
    }
    assert!(pasted > 10, "only {pasted} objects pasted in 20 samples");
}

#[test]
fn copy_paste_selection_follows_ultralytics_ioa_rule() {
    // A centred object overlaps its own mirror (ioa ≥ 0.3): not eligible. A left object is.
    let mut s = draw(1, 100, 60, 0, 0, true, &SHAPES);
    let add = |s: &mut Sample, class: usize, b: [u32; 4]| {
        let mut m = GrayImage::new(100, 60);
        for y in b[1]..b[3] {
            for x in b[0]..b[2] {
                s.image.put_pixel(x, y, Rgb(colour(class)));
                m.put_pixel(x, y, image::Luma([1]));
            }
        }
        s.instances.push(Instance {
            class,
            bbox: b.map(|v| v as f32),
            mask: Some(m),
            crowd: false,
        });
    };
    add(&mut s, 0, [40, 10, 60, 30]);
    add(&mut s, 1, [5, 40, 30, 55]);
    // right-side object partly under the mirror of 1 (mirror spans x 70..95, y 40..55)
    add(&mut s, 2, [88, 40, 98, 58]);
    let (out, removed) = copy_paste::copy_paste(s.clone(), None, 1.0).unwrap();
    assert_eq!(removed, 0);
    let classes: Vec<usize> = out.instances.iter().map(|i| i.class).collect();
    // mirror of 2 (x 2..12) covers 7*15 of object 1's 25*15 box: ioa 0.28 < 0.3, eligible;
    // mirror of 1 covers 7*15 of object 2's 10*18 box: ioa 0.58 ≥ 0.3, not eligible
    assert_eq!(classes, vec![0, 1, 2, 2]);
    check_aligned(&out, "ioa rule");
    // object 1's pixels under the pasted mirror of 2 left its mask, and its box shrank
    let m1 = out.instances[1].mask.as_ref().unwrap();
    assert_eq!(m1.get_pixel(8, 45)[0], 0);
    assert_eq!(out.instances[1].bbox, [12.0, 40.0, 30.0, 55.0]);
}

#[test]
fn copy_paste_from_a_partner_sample() {
    let mut pasted = 0;
    for seed in 0..10 {
        let s = draw(seed, 96, 80, 0, 3, true, &SHAPES);
        let p = draw(100 + seed, 96, 80, 10, 4, true, &SHAPES);
        let n = s.instances.len();
        let (out, removed) = copy_paste::copy_paste(s, Some(&p), 0.5).unwrap();
        check_aligned(&out, &format!("copy_paste partner seed {seed}"));
        assert!(masks_disjoint(&out));
        let kept = n - removed;
        assert!(out.instances[..kept].iter().all(|i| i.class < 10));
        // the pasted ones are the partner's, unchanged
        for inst in &out.instances[kept..] {
            assert!(
                p.instances.contains(inst),
                "seed {seed}: pasted instance is not the partner's"
            );
        }
        pasted += out.instances.len() - kept;
    }
    assert!(pasted >= 10, "only {pasted} pasted");
    let s = draw(1, 96, 80, 0, 3, true, &SHAPES);
    let p = draw(2, 90, 80, 0, 3, true, &SHAPES);
    assert!(copy_paste::copy_paste(s, Some(&p), 0.5).is_err());
}

#[test]
fn cutout_hides_pixels_from_the_masks_too() {
    let mut removed_total = 0;
    for seed in 0..20 {
        let s = draw(seed, 96, 80, 0, 4, true, &SHAPES);
        let n = s.instances.len();
        let p = CutoutParams {
            max_patches: 4,
            max_size: 0.4,
        };
        let (out, removed) = cutout::cutout(s, &p, &mut Rng::new(seed));
        assert_eq!(out.instances.len() + removed, n);
        removed_total += removed;
        check_aligned(&out, &format!("cutout seed {seed}"));
    }
    assert!(removed_total > 0);
}

#[test]
fn partner_fitting_crops_and_pads() {
    let s = draw(8, 100, 70, 0, 4, true, &SHAPES);
    let n = s.instances.len();
    let (fit, removed) = canvas::fit_to(s.clone(), 60, 90);
    assert_eq!(fit.image.dimensions(), (60, 90));
    assert_eq!(fit.instances.len() + removed, n);
    assert_eq!(fit.image.get_pixel(10, 80).0, [114, 114, 114]);
    check_aligned(&fit, "fit_to");
    let (same, r) = canvas::fit_to(s.clone(), 100, 70);
    assert_eq!((same, r), (s, 0));
}

fn full_specs() -> Vec<TransformSpec> {
    vec![
        TransformSpec::new(Transform::Mosaic, 0.8),
        TransformSpec::new(
            Transform::CopyPaste(CopyPasteParams {
                fraction: 0.5,
                mode: CopyPasteMode::Flip,
            }),
            0.5,
        ),
        TransformSpec::new(
            Transform::Affine(AffineParams {
                degrees: 10.0,
                shear: 3.0,
                ..Default::default()
            }),
            1.0,
        ),
        TransformSpec::new(Transform::MixUp, 0.3),
        TransformSpec::new(
            Transform::Cutout(CutoutParams {
                max_patches: 2,
                max_size: 0.2,
            }),
            0.3,
        ),
        TransformSpec::new(Transform::Blur(BlurParams { max_kernel: 5 }), 0.3),
        TransformSpec::new(Transform::Noise(NoiseParams { max_std: 5.0 }), 0.3),
        TransformSpec::new(Transform::Hsv(HsvParams::default()), 1.0),
        TransformSpec::new(Transform::FlipUd, 0.5),
        TransformSpec::new(Transform::FlipLr, 0.5),
    ]
}

#[test]
fn same_seed_same_output_different_seed_different_output() {
    let pool = pool(5, 64);
    let aug = Augmenter::new(full_specs(), 64).unwrap();
    let main = draw(77, 64, 60, 16, 3, true, &SHAPES);
    let run = |seed| {
        aug.apply(main.clone(), &mut partners_from(&pool), &mut Rng::new(seed))
            .unwrap()
    };
    let mut distinct = std::collections::HashSet::new();
    for seed in 0..6 {
        let (a, sa) = run(seed);
        let (b, sb) = run(seed);
        assert_eq!(a, b, "seed {seed} not reproducible");
        assert_eq!(sa, sb);
        assert_eq!(a.image.dimensions(), (64, 64));
        for inst in &a.instances {
            let m = inst.mask.as_ref().unwrap();
            assert!(m.iter().all(|&v| v <= 1));
            assert_eq!(Some(inst.bbox), boxes::mask_box(m));
        }
        distinct.insert(a.image.into_raw());
    }
    assert_eq!(distinct.len(), 6, "different seeds gave equal images");
}

#[test]
fn augmenter_rejects_bad_pipelines_and_bad_samples() {
    let e = Augmenter::new(vec![TransformSpec::new(Transform::Mosaic, 1.0)], 64)
        .unwrap_err()
        .to_string();
    assert!(e.contains("mosaic") && e.contains("affine"), "{e}");
    let e = Augmenter::new(vec![TransformSpec::new(Transform::FlipLr, 1.5)], 64)
        .unwrap_err()
        .to_string();
    assert!(e.contains("probability"), "{e}");
    let bad = TransformSpec::new(
        Transform::Affine(AffineParams {
            scale: 1.0,
            ..Default::default()
        }),
        1.0,
    );
    assert!(
        Augmenter::new(vec![bad], 64)
            .unwrap_err()
            .to_string()
            .contains("step 0")
    );
    assert!(
        Augmenter::new(
            vec![TransformSpec::new(
                Transform::Blur(BlurParams { max_kernel: 4 }),
                1.0
            )],
            64
        )
        .is_err()
    );

    let aug = Augmenter::new(vec![TransformSpec::new(Transform::FlipLr, 1.0)], 64).unwrap();
    let mut s = draw(1, 64, 64, 0, 2, true, &SHAPES);
    s.id = 4242;
    s.instances[1].mask = Some(GrayImage::new(10, 10));
    let e = aug
        .apply(s, &mut augment::no_partners, &mut Rng::new(0))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("4242") && e.contains("instance 1") && e.contains("10x10"),
        "{e}"
    );

    let aug = Augmenter::new(vec![TransformSpec::new(Transform::MixUp, 1.0)], 64).unwrap();
    assert!(aug.needs_partners());
    let e = aug.apply(
        draw(2, 64, 64, 0, 1, true, &SHAPES),
        &mut augment::no_partners,
        &mut Rng::new(0),
    );
    assert!(e.unwrap_err().to_string().contains("partner"));
}

#[test]
fn registry_gives_the_documented_list() {
    let env = Environment::default();
    let base = registry::plan(&[], &env, "medium").unwrap();
    let names: Vec<&str> = base.iter().map(|s| s.transform.name()).collect();
    assert_eq!(names, ["mosaic", "affine", "hsv", "flip_lr"]);
    assert_eq!(
        base[1].transform,
        Transform::Affine(AffineParams::default())
    );
    assert_eq!(base[2].transform, Transform::Hsv(HsvParams::default()));

    let p = registry::plan(&["moves_or_vibrates"], &env, "medium").unwrap();
    let want = vec![
        TransformSpec::new(Transform::Mosaic, 1.0),
        TransformSpec::new(
            Transform::Affine(AffineParams {
                degrees: 5.0,
                translate: 0.2,
                scale: 0.5,
                shear: 0.0,
            }),
            1.0,
        ),
        TransformSpec::new(Transform::Blur(BlurParams { max_kernel: 7 }), 0.3),
        TransformSpec::new(Transform::Hsv(HsvParams::default()), 1.0),
        TransformSpec::new(Transform::FlipLr, 0.5),
    ];
    assert_eq!(p, want);

    let env = Environment {
        lighting: Some("low_light".into()),
        camera: Some("overhead".into()),
        background: Some("cluttered".into()),
        distance: Some("far".into()),
    };
    let p = registry::plan(
        &["partially_hidden", "similar_to_background"],
        &env,
        "medium",
    )
    .unwrap();
    let names: Vec<&str> = p.iter().map(|s| s.transform.name()).collect();
    assert_eq!(
        names,
        [
            "mosaic",
            "copy_paste",
            "affine",
            "mixup",
            "cutout",
            "noise",
            "hsv",
            "flip_ud",
            "flip_lr"
        ]
    );
    let get = |n: &str| p.iter().find(|s| s.transform.name() == n).unwrap().clone();
    // dedup: copy_paste from partially_hidden (0.5, p 0.5) and cluttered (0.3, p 0.3)
    assert_eq!(
        get("copy_paste"),
        TransformSpec::new(
            Transform::CopyPaste(CopyPasteParams {
                fraction: 0.5,
                mode: CopyPasteMode::Flip
            }),
            0.5
        )
    );
    // hsv: base (0.015, 0.7, 0.4), similar_to_background h 0.03, low_light v 0.7
    assert_eq!(
        get("hsv").transform,
        Transform::Hsv(HsvParams {
            h: 0.03,
            s: 0.7,
            v: 0.7
        })
    );
    assert_eq!(
        get("affine").transform,
        Transform::Affine(AffineParams {
            degrees: 30.0,
            translate: 0.1,
            scale: 0.6,
            shear: 0.0
        })
    );
    // every plan is a valid pipeline
    Augmenter::new(p, 640).unwrap();
}

#[test]
fn registry_dedups_repeated_and_overlapping_sources() {
    let env = Environment::default();
    let once = registry::plan(&["changes_size"], &env, "high").unwrap();
    let twice = registry::plan(
        &["changes_size", "Changes-Size", "changes_size"],
        &env,
        "high",
    )
    .unwrap();
    assert_eq!(once, twice);
    let kinds: Vec<&str> = twice.iter().map(|s| s.transform.name()).collect();
    let mut uniq = kinds.clone();
    uniq.dedup();
    assert_eq!(kinds, uniq);
    // the stronger parameter wins: distance "variable" (scale 0.7) over base 0.5
    let p = registry::plan(
        &[],
        &Environment {
            distance: Some("variable".into()),
            ..Default::default()
        },
        "medium",
    )
    .unwrap();
    assert_eq!(
        p[1].transform,
        Transform::Affine(AffineParams {
            scale: 0.7,
            ..Default::default()
        })
    );
}

#[test]
fn registry_intensity_scales_parameters() {
    let env = Environment {
        camera: Some("low_quality".into()),
        ..Default::default()
    };
    let plans: Vec<Vec<TransformSpec>> = ["low", "medium", "high"]
        .iter()
        .map(|i| registry::plan(&["changes_shape"], &env, i).unwrap())
        .collect();
    let affine = |p: &[TransformSpec]| match &p
        .iter()
        .find(|s| s.transform.name() == "affine")
        .unwrap()
        .transform
    {
        Transform::Affine(a) => *a,
        _ => unreachable!(),
    };
    let (lo, mid, hi) = (affine(&plans[0]), affine(&plans[1]), affine(&plans[2]));
    assert_eq!((lo.degrees, mid.degrees, hi.degrees), (5.0, 10.0, 15.0));
    assert_eq!((lo.scale, mid.scale, hi.scale), (0.25, 0.5, 0.75));
    let blur = |p: &[TransformSpec]| {
        p.iter()
            .find(|s| s.transform.name() == "blur")
            .unwrap()
            .clone()
    };
    assert_eq!(
        blur(&plans[0]),
        TransformSpec::new(Transform::Blur(BlurParams { max_kernel: 3 }), 0.15)
    );
    assert_eq!(
        blur(&plans[2]),
        TransformSpec::new(Transform::Blur(BlurParams { max_kernel: 7 }), 0.3f64 * 1.5)
    );
    let mosaic_p: Vec<f64> = plans.iter().map(|p| p[0].p).collect();
    assert_eq!(mosaic_p, [0.5, 1.0, 1.0]);
    // flips are not scaled, affine always runs
    for p in &plans {
        assert_eq!(
            p.last().unwrap(),
            &TransformSpec::new(Transform::FlipLr, 0.5)
        );
        assert_eq!(
            p.iter().find(|s| s.transform.name() == "affine").unwrap().p,
            1.0
        );
    }
}

#[test]
fn registry_rejects_unknown_names_listing_the_valid_ones() {
    let env = Environment::default();
    let e = registry::plan(&["shiny"], &env, "medium")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("\"shiny\"") && registry::CHARACTERISTICS.iter().all(|c| e.contains(c)),
        "{e}"
    );
    let e = registry::plan(&[], &env, "extreme")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("extreme") && e.contains("low, medium, high"),
        "{e}"
    );
    let bad = Environment {
        camera: Some("drone".into()),
        ..Default::default()
    };
    let e = registry::plan(&[], &bad, "low").unwrap_err().to_string();
    assert!(
        e.contains("camera") && e.contains("drone") && e.contains("handheld"),
        "{e}"
    );
    let json = r#"{"lighting": "variable", "weather": "rain"}"#;
    assert!(serde_json::from_str::<Environment>(json).is_err());
}

#[test]
fn specs_round_trip_through_json() {
    let specs = full_specs();
    let text = serde_json::to_string(&specs).unwrap();
    assert!(
        text.contains("\"kind\":\"copy_paste\"") && text.contains("\"kind\":\"mixup\""),
        "{text}"
    );
    let back: Vec<TransformSpec> = serde_json::from_str(&text).unwrap();
    assert_eq!(back, specs);
}

#[test]
fn spec_json_rejects_unknown_fields() {
    let ok = r#"{"transform": {"kind": "affine", "degrees": 5, "translate": 0.1, "scale": 0.5, "shear": 0}, "p": 1}"#;
    let s: TransformSpec = serde_json::from_str(ok).unwrap();
    assert_eq!(
        s.transform,
        Transform::Affine(AffineParams {
            degrees: 5.0,
            ..Default::default()
        })
    );
    let typo = ok.replace("\"shear\"", "\"sheer\"");
    assert!(serde_json::from_str::<TransformSpec>(&typo).is_err());
    let extra = ok.replace("\"p\": 1", "\"p\": 1, \"prob\": 2");
    assert!(serde_json::from_str::<TransformSpec>(&extra).is_err());
}

#[test]
fn portable_trigonometry_agrees_with_libm() {
    for i in -720..=720 {
        let deg = i as f64 * 0.5 + 0.123;
        let (s, c) = affine::sin_cos_deg(deg);
        let r = deg.to_radians();
        assert!(
            (s - r.sin()).abs() < 1e-15 && (c - r.cos()).abs() < 1e-15,
            "{deg}°"
        );
    }
    assert_eq!(affine::sin_cos_deg(90.0), (1.0, 0.0));
    assert!((affine::tan_deg(45.0) - 1.0).abs() < 1e-15);
}
