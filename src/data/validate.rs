//! Dataset validation, the first step of the pipeline: find every problem in a COCO file
//! (each named by its record), skip the bad records (or fail under `--strict`), fill what
//! can be filled (bbox and area from masks), and summarise what is left.
//!
//! Rules, in the order they are applied:
//! - categories, images, annotations with an id seen before are skipped (the first stays);
//! - an image without a positive width and height, or (with an images folder) whose file
//!   is missing, is skipped, and its annotations with it (each one reported);
//! - an annotation is skipped for: unknown `image_id` or `category_id`; a malformed
//!   segmentation (polygon part with < 3 points or an odd number of coordinates, bad RLE,
//!   RLE `size` not the image's); a `bbox` that is not 4 finite numbers, is degenerate
//!   (w or h ≤ 0) or lies outside the image by more than [`BOX_SLACK`] pixels; no bbox and
//!   no mask; a mask with no pixel inside the image;
//! - a box that overshoots the image by at most [`BOX_SLACK`] pixels is clipped (counted);
//! - a missing `bbox` is filled from the mask (polygon extent, or pycocotools' `toBbox`
//!   for RLE), exactly, so a polygon running past the image edge gives a box that does too; a missing `area` is pycocotools' area of the rasterised mask, or `w·h` for
//!   a box-only annotation (as pycocotools' `loadRes`). Each fill is counted.
use super::classes::ClassMap;
use super::coco::{Annotation, Coco, Image};
use super::problem::{Problem, RecordKind};
use super::seg_mask::{segmentation_bbox, segmentation_rle};
use rayon::prelude::*;
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

/// Boxes may overshoot the image by this many pixels (rounding in annotation tools); they
/// are clipped. Beyond it the box is a problem.
pub const BOX_SLACK: f64 = 1.0;

#[derive(Clone, Debug, Default)]
pub struct ValidateOptions {
    /// When set, every image's `file_name` must exist under this folder.
    pub images_dir: Option<PathBuf>,
}

/// Per-class counts in the validated dataset.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ClassCount {
    pub id: u64,
    pub name: String,
    pub instances: usize,
    pub images: usize,
}

/// What validation found and did. Serialises to the `report.json` of `ed-validate`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    pub images: usize,
    pub annotations: usize,
    pub crowd_annotations: usize,
    pub annotations_with_masks: usize,
    pub images_without_annotations: usize,
    pub num_classes: usize,
    pub classes: Vec<ClassCount>,
    /// Every kept annotation has a box (always true after filling).
    pub has_boxes: bool,
    /// Every kept annotation has a mask: the pipeline trains SAM and a -seg student.
    pub has_masks: bool,
    /// "boxes+masks" or "boxes".
    pub mode: String,
    pub filled_bbox: usize,
    pub filled_area: usize,
    pub clipped_bbox: usize,
    pub skipped_images: usize,
    pub skipped_annotations: usize,
    pub skipped_categories: usize,
    /// Problems per code, e.g. `{"unknown_category_id": 3}`.
    pub problem_counts: std::collections::BTreeMap<String, usize>,
    #[serde(serialize_with = "ser_problems")]
    pub problems: Vec<Problem>,
    pub warnings: Vec<String>,
}

fn ser_problems<S: serde::Serializer>(p: &[Problem], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(p.iter().map(|p| p.to_string()))
}

/// The validated dataset (bad records removed, fields filled) and the report.
#[derive(Clone, Debug)]
pub struct Validated {
    pub coco: Coco,
    pub report: Report,
}

/// Validates `coco`; `parse_problems` are the records [`Coco::read`] could not parse
/// (already left out), listed first in the report.
pub fn validate(coco: Coco, parse_problems: Vec<Problem>, opts: &ValidateOptions) -> Validated {
    let mut problems = parse_problems;
    let skipped_parse = |k: RecordKind| problems.iter().filter(|p| p.kind == k).count();
    let (mut skipped_images, mut skipped_annotations, mut skipped_categories) = (
        skipped_parse(RecordKind::Image),
        skipped_parse(RecordKind::Annotation),
        skipped_parse(RecordKind::Category),
    );
    let Coco {
        images,
        annotations,
        categories,
        extra,
    } = coco;

    let mut seen = HashSet::new();
    let mut kept_categories = Vec::with_capacity(categories.len());
    for (i, c) in categories.into_iter().enumerate() {
        if seen.insert(c.id) {
            kept_categories.push(c);
        } else {
            problems.push(dup(RecordKind::Category, c.id, i));
            skipped_categories += 1;
        }
    }

    // Images: duplicates, sizes, files. `dropped` remembers why, for their annotations.
    let mut kept_images: Vec<Image> = Vec::with_capacity(images.len());
    let mut dropped: HashSet<u64> = HashSet::new();
    let mut seen = HashSet::new();
    for (i, im) in images.into_iter().enumerate() {
        if !seen.insert(im.id) {
            problems.push(dup(RecordKind::Image, im.id, i));
            skipped_images += 1;
            continue;
        }
        let problem = match (im.width, im.height) {
            (Some(w), Some(h)) if w > 0 && h > 0 => missing_file(&im, opts),
            (w, h) => Some(Problem::new(
                RecordKind::Image,
                Some(im.id),
                "bad_image_size",
                format!(
                    "width {} and height {} must both be positive numbers",
                    opt(w),
                    opt(h)
                ),
            )),
        };
        match problem {
            Some(p) => {
                problems.push(p.at(i));
                dropped.insert(im.id);
                skipped_images += 1;
            }
            None => kept_images.push(im),
        }
    }
    let sizes: HashMap<u64, (u32, u32)> = kept_images
        .iter()
        .map(|im| (im.id, (im.height.unwrap_or(0), im.width.unwrap_or(0))))
        .collect();
    let category_ids: HashSet<u64> = kept_categories.iter().map(|c| c.id).collect();

    // Annotations: ids first (sequential), then the per-record work in parallel.
    let mut seen = HashSet::new();
    let mut candidates = Vec::with_capacity(annotations.len());
    for (i, a) in annotations.into_iter().enumerate() {
        if seen.insert(a.id) {
            candidates.push((i, a));
        } else {
            problems.push(dup(RecordKind::Annotation, a.id, i));
            skipped_annotations += 1;
        }
    }
    let checked: Vec<(usize, Result<Checked, Problem>)> = candidates
        .into_par_iter()
        .map(|(i, a)| {
            let r = check_annotation(a, &sizes, &dropped, &category_ids);
            (i, r.map_err(|p| p.at(i)))
        })
        .collect();
    let (mut filled_bbox, mut filled_area, mut clipped_bbox) = (0, 0, 0);
    let mut kept_annotations = Vec::with_capacity(checked.len());
    for (_, r) in checked {
        match r {
            Ok(c) => {
                filled_bbox += usize::from(c.filled_bbox);
                filled_area += usize::from(c.filled_area);
                clipped_bbox += usize::from(c.clipped_bbox);
                kept_annotations.push(c.ann);
            }
            Err(p) => {
                problems.push(p);
                skipped_annotations += 1;
            }
        }
    }

    let coco = Coco {
        images: kept_images,
        annotations: kept_annotations,
        categories: kept_categories,
        extra,
    };
    let report = summarise(
        &coco,
        problems,
        [filled_bbox, filled_area, clipped_bbox],
        [skipped_images, skipped_annotations, skipped_categories],
    );
    Validated { coco, report }
}

fn opt(v: Option<u32>) -> String {
    v.map_or("missing".into(), |v| v.to_string())
}

fn dup(kind: RecordKind, id: u64, index: usize) -> Problem {
    Problem::new(
        kind,
        Some(id),
        "duplicate_id",
        "id already used by an earlier record; this one is skipped".into(),
    )
    .at(index)
}

fn missing_file(im: &Image, opts: &ValidateOptions) -> Option<Problem> {
    let dir = opts.images_dir.as_ref()?;
    let path = dir.join(&im.file_name);
    if !im.file_name.is_empty() && path.is_file() {
        return None;
    }
    Some(Problem::new(
        RecordKind::Image,
        Some(im.id),
        "missing_image_file",
        format!("file {:?} not found", path.display().to_string()),
    ))
}

struct Checked {
    ann: Annotation,
    filled_bbox: bool,
    filled_area: bool,
    clipped_bbox: bool,
}

fn check_annotation(
    mut a: Annotation,
    sizes: &HashMap<u64, (u32, u32)>,
    dropped: &HashSet<u64>,
    category_ids: &HashSet<u64>,
) -> Result<Checked, Problem> {
    let problem = |code: &'static str, msg: String| {
        Problem::new(RecordKind::Annotation, Some(a.id), code, msg)
    };
    let Some(&(h, w)) = sizes.get(&a.image_id) else {
        return Err(if dropped.contains(&a.image_id) {
            problem(
                "image_skipped",
                format!(
                    "its image {} was skipped (see that image's problem)",
                    a.image_id
                ),
            )
        } else {
            problem(
                "unknown_image_id",
                format!("image_id {} is not an image of the file", a.image_id),
            )
        });
    };
    if !category_ids.contains(&a.category_id) {
        return Err(problem(
            "unknown_category_id",
            format!(
                "category_id {} is not a category of the file",
                a.category_id
            ),
        ));
    }
    let mask = match a.mask() {
        Some(seg) => match segmentation_rle(seg, h, w) {
            Ok(rle) => Some((segmentation_bbox(seg, &rle), rle.area())),
            Err(e) => return Err(problem("bad_segmentation", format!("segmentation: {e}"))),
        },
        None => None,
    };
    let (mut filled_bbox, mut clipped_bbox) = (false, false);
    let bbox = match (a.bbox.as_deref(), &mask) {
        (Some([]) | None, Some((b, _))) => {
            filled_bbox = true;
            *b
        }
        (Some([]) | None, None) => {
            return Err(problem(
                "no_box_no_mask",
                "has neither a bbox nor a segmentation".into(),
            ));
        }
        (Some(&[x, y, bw, bh]), _) => [x, y, bw, bh],
        (Some(b), _) => {
            return Err(problem(
                "bad_bbox",
                format!("bbox {b:?} must be [x, y, width, height]"),
            ));
        }
    };
    if bbox.iter().any(|v| !v.is_finite()) {
        return Err(problem(
            "bad_bbox",
            format!("bbox {bbox:?} has a non-finite number"),
        ));
    }
    let [x, y, bw, bh] = bbox;
    let what = if filled_bbox {
        "bbox (from the mask)"
    } else {
        "bbox"
    };
    if bw <= 0.0 || bh <= 0.0 {
        return Err(problem(
            "degenerate_bbox",
            format!("{what} {bbox:?} has no area"),
        ));
    }
    if let Some((_, 0)) = mask {
        return Err(problem(
            "empty_mask",
            format!("segmentation covers no pixel of the {w}×{h} image"),
        ));
    }
    let (iw, ih) = (f64::from(w), f64::from(h));
    // A filled box is the polygon's extent exactly (COCO's rule), even where the polygon
    // runs past the image edge; only boxes given in the file are held to the image.
    let over = if filled_bbox {
        0.0
    } else {
        (-x).max(-y).max(x + bw - iw).max(y + bh - ih)
    };
    if over > BOX_SLACK {
        return Err(problem(
            "bbox_outside_image",
            format!("{what} {bbox:?} lies outside the {w}×{h} image by {over} px"),
        ));
    }
    let bbox = if over > 0.0 {
        clipped_bbox = true;
        let (x0, y0) = (x.max(0.0), y.max(0.0));
        let (x1, y1) = ((x + bw).min(iw), (y + bh).min(ih));
        [x0, y0, x1 - x0, y1 - y0]
    } else {
        bbox
    };
    if filled_bbox || clipped_bbox {
        a.bbox = Some(bbox.to_vec());
    }
    let filled_area = a.area.is_none();
    if filled_area {
        a.area = Some(match &mask {
            Some((_, area)) => *area as f64,
            None => bbox[2] * bbox[3],
        });
    }
    Ok(Checked {
        ann: a,
        filled_bbox,
        filled_area,
        clipped_bbox,
    })
}

fn summarise(
    coco: &Coco,
    mut problems: Vec<Problem>,
    filled: [usize; 3],
    skipped: [usize; 3],
) -> Report {
    let classes = ClassMap::from_coco(coco);
    let mut instances = vec![0usize; classes.len()];
    let mut images_of: Vec<HashSet<u64>> = vec![HashSet::new(); classes.len()];
    let mut with_annotations = HashSet::new();
    for a in &coco.annotations {
        if let Some(c) = classes.index(a.category_id) {
            instances[c] += 1;
            images_of[c].insert(a.image_id);
        }
        with_annotations.insert(a.image_id);
    }
    let with_masks = coco
        .annotations
        .iter()
        .filter(|a| a.mask().is_some())
        .count();
    let n = coco.annotations.len();
    let has_masks = n > 0 && with_masks == n;
    let mut warnings = Vec::new();
    if with_masks > 0 && with_masks < n {
        warnings.push(format!(
            "{with_masks} of {n} annotations have masks: training uses boxes only; add masks to the other {} for segmentation",
            n - with_masks
        ));
    }
    for (c, name) in classes.names.iter().enumerate() {
        if instances[c] == 0 {
            warnings.push(format!(
                "class {name:?} (id {}) has no annotations",
                classes.ids[c]
            ));
        }
    }
    // Images, then annotations, then categories, each in file order.
    problems.sort_by_key(|p| (p.kind, p.index));
    let mut problem_counts = std::collections::BTreeMap::new();
    for p in &problems {
        *problem_counts.entry(p.code.to_string()).or_insert(0) += 1;
    }
    Report {
        images: coco.images.len(),
        annotations: n,
        crowd_annotations: coco.annotations.iter().filter(|a| a.is_crowd()).count(),
        annotations_with_masks: with_masks,
        images_without_annotations: coco
            .images
            .iter()
            .filter(|im| !with_annotations.contains(&im.id))
            .count(),
        num_classes: classes.len(),
        classes: (0..classes.len())
            .map(|c| ClassCount {
                id: classes.ids[c],
                name: classes.names[c].clone(),
                instances: instances[c],
                images: images_of[c].len(),
            })
            .collect(),
        has_boxes: n > 0,
        has_masks,
        mode: if has_masks { "boxes+masks" } else { "boxes" }.into(),
        filled_bbox: filled[0],
        filled_area: filled[1],
        clipped_bbox: filled[2],
        skipped_images: skipped[0],
        skipped_annotations: skipped[1],
        skipped_categories: skipped[2],
        problem_counts,
        problems,
        warnings,
    }
}
