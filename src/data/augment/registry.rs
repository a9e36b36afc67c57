//! From what the user knows about the data to a transform list: characteristics of the
//! objects, the capture environment and an intensity → deduplicated [`TransformSpec`]s in a
//! fixed order, ready for [`Augmenter::new`](super::Augmenter::new).
//!
//! Names are matched after trimming, lower-casing and turning spaces and hyphens into
//! underscores (`"Multiple objects"` = `multiple_objects`); anything else is an error that
//! lists the valid names.
//!
//! # Base (always included)
//! ultralytics' default training augmentation: `flip_lr` p 0.5; `affine` translate 0.1,
//! scale 0.5, p 1; `hsv` h 0.015 s 0.7 v 0.4, p 1; `mosaic` p 1.
//!
//! # Characteristics (values at intensity `medium`)
//! | name | adds |
//! |---|---|
//! | `changes_shape` | affine degrees 10, shear 5 |
//! | `changes_size` | affine scale 0.7 |
//! | `reflective_surface` | hsv v 0.6; noise max_std 8 (p 0.3) |
//! | `low_contrast` | hsv s 0.8, v 0.6 |
//! | `moves_or_vibrates` | blur max_kernel 7 (p 0.3); affine translate 0.2, degrees 5 |
//! | `semi_transparent` | mixup (p 0.15) |
//! | `similar_to_background` | hsv h 0.03 |
//! | `multiple_objects` | mosaic (p 1); copy_paste fraction 0.3 (p 0.5) |
//! | `partially_hidden` | copy_paste fraction 0.5 (p 0.5); cutout 3 patches, max_size 0.25 (p 0.3) |
//!
//! # Environment (each field optional)
//! | field | value | adds |
//! |---|---|---|
//! | lighting | `constant` | nothing |
//! | lighting | `variable` | hsv v 0.6 |
//! | lighting | `outdoor` | hsv h 0.02, s 0.8, v 0.6 |
//! | lighting | `low_light` | hsv v 0.7; noise max_std 10 (p 0.5) |
//! | camera | `fixed` | nothing |
//! | camera | `handheld` | blur max_kernel 5 (p 0.2); affine degrees 5, translate 0.15 |
//! | camera | `moving` | blur max_kernel 9 (p 0.4); affine translate 0.2 |
//! | camera | `overhead` | flip_ud (p 0.5); affine degrees 30 |
//! | camera | `low_quality` | noise max_std 12 (p 0.5); blur max_kernel 5 (p 0.3) |
//! | background | `uniform` | nothing |
//! | background | `varied` | mixup (p 0.1) |
//! | background | `cluttered` | mixup (p 0.15); copy_paste fraction 0.3 (p 0.3) |
//! | distance | `fixed` | nothing |
//! | distance | `variable` | affine scale 0.7 |
//! | distance | `far` | affine scale 0.6 |
//! | distance | `near` | affine scale 0.6, translate 0.2 |
//!
//! # Intensity
//! `low`, `medium`, `high` multiply by k = 0.5, 1, 1.5: every magnitude (degrees, shear,
//! translate, scale, hsv gains, noise std, blur `(max_kernel − 3) / 2`, cutout patches and size,
//! copy-paste fraction) and every probability except the flips' (0.5: a mirror is as likely
//! as not) and the affine's (always 1: it sets the output size). Results are capped at
//! degrees 180, shear 20, translate 0.45, scale 0.9, hsv h 0.5, s and v 0.95, noise 64,
//! blur kernel 31, cutout 16 patches and size 0.6, fraction and probabilities 1; the blur
//! kernel stays odd and at least 3, cutout at least 1 patch (counts round half to even).
//!
//! # Deduplication
//! The same transform from several sources (base, characteristics, environment) becomes
//! one step: its probability is the largest asked for, and each parameter is the largest
//! (strongest) asked for, independently — e.g. `changes_size` (scale 0.7) with
//! `moves_or_vibrates` (translate 0.2) gives one affine with scale 0.7 and translate 0.2.
//! Steps come out in the fixed order mosaic, copy_paste, affine, mixup, cutout, blur,
//! noise, hsv, flip_ud, flip_lr (ultralytics' order: geometry and mixing first, then
//! pixel-level changes, flips last).
use super::{
    AffineParams, BlurParams, CopyPasteMode, CopyPasteParams, CutoutParams, HsvParams, NoiseParams,
    Transform, TransformSpec,
};
use crate::{Error, Result};
use serde::{Deserialize, Serialize};

/// Valid characteristic names.
pub const CHARACTERISTICS: [&str; 9] = [
    "changes_shape",
    "changes_size",
    "reflective_surface",
    "low_contrast",
    "moves_or_vibrates",
    "semi_transparent",
    "similar_to_background",
    "multiple_objects",
    "partially_hidden",
];
/// Valid intensities.
pub const INTENSITIES: [&str; 3] = ["low", "medium", "high"];
/// Valid `Environment::lighting` values.
pub const LIGHTING: [&str; 4] = ["constant", "variable", "outdoor", "low_light"];
/// Valid `Environment::camera` values.
pub const CAMERA: [&str; 5] = ["fixed", "handheld", "moving", "overhead", "low_quality"];
/// Valid `Environment::background` values.
pub const BACKGROUND: [&str; 3] = ["uniform", "varied", "cluttered"];
/// Valid `Environment::distance` values.
pub const DISTANCE: [&str; 4] = ["fixed", "variable", "far", "near"];

/// Capture conditions; `None` means unknown (adds nothing).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Environment {
    pub lighting: Option<String>,
    pub camera: Option<String>,
    pub background: Option<String>,
    pub distance: Option<String>,
}

fn normalize(name: &str) -> String {
    name.trim().to_lowercase().replace([' ', '-'], "_")
}

/// Position of `name` in `valid`, or an error naming `what` and listing `valid`.
fn lookup(what: &str, name: &str, valid: &[&str]) -> Result<usize> {
    let n = normalize(name);
    valid.iter().position(|v| *v == n).ok_or_else(|| {
        Error::msg(format!(
            "unknown {what} \"{name}\"; valid: {}",
            valid.join(", ")
        ))
    })
}

/// The transforms one source asks for, at intensity medium.
type Asks = Vec<TransformSpec>;

fn affine(degrees: f32, translate: f32, scale: f32, shear: f32) -> TransformSpec {
    TransformSpec::new(
        Transform::Affine(AffineParams {
            degrees,
            translate,
            scale,
            shear,
        }),
        1.0,
    )
}
fn hsv(h: f32, s: f32, v: f32) -> TransformSpec {
    TransformSpec::new(Transform::Hsv(HsvParams { h, s, v }), 1.0)
}
fn blur(max_kernel: u32, p: f64) -> TransformSpec {
    TransformSpec::new(Transform::Blur(BlurParams { max_kernel }), p)
}
fn noise(max_std: f32, p: f64) -> TransformSpec {
    TransformSpec::new(Transform::Noise(NoiseParams { max_std }), p)
}
fn copy_paste(fraction: f32, p: f64) -> TransformSpec {
    TransformSpec::new(
        Transform::CopyPaste(CopyPasteParams {
            fraction,
            mode: CopyPasteMode::Flip,
        }),
        p,
    )
}

fn base() -> Asks {
    vec![
        TransformSpec::new(Transform::FlipLr, 0.5),
        affine(0.0, 0.1, 0.5, 0.0),
        hsv(0.015, 0.7, 0.4),
        TransformSpec::new(Transform::Mosaic, 1.0),
    ]
}

fn characteristic(i: usize) -> Asks {
    match CHARACTERISTICS[i] {
        "changes_shape" => vec![affine(10.0, 0.0, 0.0, 5.0)],
        "changes_size" => vec![affine(0.0, 0.0, 0.7, 0.0)],
        "reflective_surface" => vec![hsv(0.0, 0.0, 0.6), noise(8.0, 0.3)],
        "low_contrast" => vec![hsv(0.0, 0.8, 0.6)],
        "moves_or_vibrates" => vec![blur(7, 0.3), affine(5.0, 0.2, 0.0, 0.0)],
        "semi_transparent" => vec![TransformSpec::new(Transform::MixUp, 0.15)],
        "similar_to_background" => vec![hsv(0.03, 0.0, 0.0)],
        "multiple_objects" => vec![
            TransformSpec::new(Transform::Mosaic, 1.0),
            copy_paste(0.3, 0.5),
        ],
        // partially_hidden
        _ => vec![
            copy_paste(0.5, 0.5),
            TransformSpec::new(
                Transform::Cutout(CutoutParams {
                    max_patches: 3,
                    max_size: 0.25,
                }),
                0.3,
            ),
        ],
    }
}

fn environment(env: &Environment) -> Result<Asks> {
    let mut asks = Vec::new();
    if let Some(v) = &env.lighting {
        asks.extend(match LIGHTING[lookup("lighting", v, &LIGHTING)?] {
            "variable" => vec![hsv(0.0, 0.0, 0.6)],
            "outdoor" => vec![hsv(0.02, 0.8, 0.6)],
            "low_light" => vec![hsv(0.0, 0.0, 0.7), noise(10.0, 0.5)],
            _ => vec![],
        });
    }
    if let Some(v) = &env.camera {
        asks.extend(match CAMERA[lookup("camera", v, &CAMERA)?] {
            "handheld" => vec![blur(5, 0.2), affine(5.0, 0.15, 0.0, 0.0)],
            "moving" => vec![blur(9, 0.4), affine(0.0, 0.2, 0.0, 0.0)],
            "overhead" => vec![
                TransformSpec::new(Transform::FlipUd, 0.5),
                affine(30.0, 0.0, 0.0, 0.0),
            ],
            "low_quality" => vec![noise(12.0, 0.5), blur(5, 0.3)],
            _ => vec![],
        });
    }
    if let Some(v) = &env.background {
        asks.extend(match BACKGROUND[lookup("background", v, &BACKGROUND)?] {
            "varied" => vec![TransformSpec::new(Transform::MixUp, 0.1)],
            "cluttered" => vec![
                TransformSpec::new(Transform::MixUp, 0.15),
                copy_paste(0.3, 0.3),
            ],
            _ => vec![],
        });
    }
    if let Some(v) = &env.distance {
        asks.extend(match DISTANCE[lookup("distance", v, &DISTANCE)?] {
            "variable" => vec![affine(0.0, 0.0, 0.7, 0.0)],
            "far" => vec![affine(0.0, 0.0, 0.6, 0.0)],
            "near" => vec![affine(0.0, 0.2, 0.6, 0.0)],
            _ => vec![],
        });
    }
    Ok(asks)
}

/// Scale one ask by the intensity factor `k` (rules in the module docs).
fn scaled(mut s: TransformSpec, k: f32) -> TransformSpec {
    let kf = |v: f32, cap: f32| (v * k).min(cap);
    match &mut s.transform {
        Transform::FlipLr | Transform::FlipUd | Transform::Affine(_) => {}
        _ => s.p = (s.p * k as f64).min(1.0),
    }
    match &mut s.transform {
        Transform::Affine(a) => {
            a.degrees = kf(a.degrees, 180.0);
            a.shear = kf(a.shear, 20.0);
            a.translate = kf(a.translate, 0.45);
            a.scale = kf(a.scale, 0.9);
        }
        Transform::Hsv(h) => {
            h.h = kf(h.h, 0.5);
            h.s = kf(h.s, 0.95);
            h.v = kf(h.v, 0.95);
        }
        Transform::Blur(b) => {
            let steps = ((b.max_kernel.saturating_sub(3) / 2) as f32 * k).round_ties_even() as u32;
            b.max_kernel = (3 + 2 * steps).min(31);
        }
        Transform::Noise(n) => n.max_std = kf(n.max_std, 64.0),
        Transform::Cutout(c) => {
            c.max_patches = ((c.max_patches as f32 * k).round_ties_even() as u32).clamp(1, 16);
            c.max_size = kf(c.max_size, 0.6);
        }
        Transform::CopyPaste(c) => c.fraction = kf(c.fraction, 1.0),
        Transform::FlipLr | Transform::FlipUd | Transform::Mosaic | Transform::MixUp => {}
    }
    s
}

/// Position of a transform kind in the output order.
fn rank(t: &Transform) -> usize {
    match t {
        Transform::Mosaic => 0,
        Transform::CopyPaste(_) => 1,
        Transform::Affine(_) => 2,
        Transform::MixUp => 3,
        Transform::Cutout(_) => 4,
        Transform::Blur(_) => 5,
        Transform::Noise(_) => 6,
        Transform::Hsv(_) => 7,
        Transform::FlipUd => 8,
        Transform::FlipLr => 9,
    }
}

/// Merge `b` into `a` (same kind): largest probability, largest of each parameter.
fn merge(a: &mut TransformSpec, b: &TransformSpec) {
    a.p = a.p.max(b.p);
    match (&mut a.transform, &b.transform) {
        (Transform::Affine(x), Transform::Affine(y)) => {
            x.degrees = x.degrees.max(y.degrees);
            x.translate = x.translate.max(y.translate);
            x.scale = x.scale.max(y.scale);
            x.shear = x.shear.max(y.shear);
        }
        (Transform::Hsv(x), Transform::Hsv(y)) => {
            x.h = x.h.max(y.h);
            x.s = x.s.max(y.s);
            x.v = x.v.max(y.v);
        }
        (Transform::Blur(x), Transform::Blur(y)) => x.max_kernel = x.max_kernel.max(y.max_kernel),
        (Transform::Noise(x), Transform::Noise(y)) => x.max_std = x.max_std.max(y.max_std),
        (Transform::Cutout(x), Transform::Cutout(y)) => {
            x.max_patches = x.max_patches.max(y.max_patches);
            x.max_size = x.max_size.max(y.max_size);
        }
        (Transform::CopyPaste(x), Transform::CopyPaste(y)) => {
            x.fraction = x.fraction.max(y.fraction)
        }
        _ => {}
    }
}

/// The transform list for these characteristics, environment and intensity (see the
/// module docs for the table and the rules). Unknown names are errors listing the valid
/// ones.
pub fn plan(
    characteristics: &[&str],
    env: &Environment,
    intensity: &str,
) -> Result<Vec<TransformSpec>> {
    let k = [0.5f32, 1.0, 1.5][lookup("intensity", intensity, &INTENSITIES)?];
    let mut asks = base();
    for c in characteristics {
        asks.extend(characteristic(lookup(
            "characteristic",
            c,
            &CHARACTERISTICS,
        )?));
    }
    asks.extend(environment(env)?);
    let mut out: Vec<TransformSpec> = Vec::new();
    for a in asks.into_iter().map(|a| scaled(a, k)) {
        match out
            .iter_mut()
            .find(|o| rank(&o.transform) == rank(&a.transform))
        {
            Some(o) => merge(o, &a),
            None => out.push(a),
        }
    }
    out.sort_by_key(|s| rank(&s.transform));
    Ok(out)
}
