//! YOLO label files + images → COCO (see the module docs of `data::convert`).
use super::{ConvertProblem, IMAGE_EXTENSIONS};
use crate::data::coco::{Annotation, Category, Coco, Image, Segmentation};
use crate::data::image::read_header;
use crate::data::progress::Progress;
use crate::data::yolo_txt::{YoloLabel, YoloShape, parse_labels};
use crate::{Error, Result};
use rayon::prelude::*;
use serde_json::Map;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What [`yolo_to_coco`] did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct YoloToCocoReport {
    /// Images written to the COCO file.
    pub images: usize,
    /// Annotations written (detection + segmentation lines).
    pub annotations: usize,
    pub detection_lines: usize,
    pub segmentation_lines: usize,
    /// Label lines not converted (each has a problem).
    pub skipped_lines: usize,
    /// Images with no label file (kept, with no objects).
    pub images_without_labels: usize,
    /// Label files with no image (not converted; each has a problem).
    pub labels_without_images: usize,
    /// Images whose header could not be read, and ambiguous stems (left out).
    pub images_skipped: usize,
    /// Files in the images folder that are not jpg/jpeg/png/bmp (ignored).
    pub other_files: usize,
    pub problems: Vec<ConvertProblem>,
}

impl YoloToCocoReport {
    /// The closing summary, one fact per line.
    pub fn summary(&self) -> Vec<String> {
        vec![
            format!("images: {}", self.images),
            format!(
                "annotations: {} ({} boxes, {} polygons)",
                self.annotations, self.detection_lines, self.segmentation_lines
            ),
            format!("skipped lines: {}", self.skipped_lines),
            format!("images without labels: {}", self.images_without_labels),
            format!("labels without images: {}", self.labels_without_images),
            format!(
                "images skipped (unreadable or ambiguous): {}",
                self.images_skipped
            ),
            format!(
                "other files in the images folder (ignored): {}",
                self.other_files
            ),
            format!("problems: {}", self.problems.len()),
        ]
    }
}

/// A file found under a root: its path relative to the root, and the full path.
struct Found {
    rel: PathBuf,
    full: PathBuf,
}

/// Every regular file under `root` (symlinks to files included), sorted by relative path.
/// Symlinked folders are not followed (a loop would never end); each is a problem.
fn walk(root: &Path, problems: &mut Vec<ConvertProblem>) -> Result<Vec<Found>> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let dir = root.join(&rel);
        let io = |source| Error::Io {
            path: dir.clone(),
            source,
        };
        for entry in std::fs::read_dir(&dir).map_err(io)? {
            let entry = entry.map_err(io)?;
            let rel = rel.join(entry.file_name());
            let full = entry.path();
            let ty = entry.file_type().map_err(io)?;
            if ty.is_dir() {
                stack.push(rel);
            } else if ty.is_file() {
                out.push(Found { rel, full });
            } else if ty.is_symlink() {
                match std::fs::metadata(&full) {
                    Ok(m) if m.is_file() => out.push(Found { rel, full }),
                    Ok(m) if m.is_dir() => problems.push(ConvertProblem::file(
                        &full,
                        "symlinked_folder",
                        "symlinked folder not followed".into(),
                    )),
                    Ok(_) => {}
                    Err(e) => problems.push(ConvertProblem::file(
                        &full,
                        "broken_link",
                        format!("cannot follow link: {e}"),
                    )),
                }
            }
        }
    }
    out.sort_by(|a, b| a.rel.cmp(&b.rel));
    Ok(out)
}

fn has_ext(p: &Path, exts: &[&str]) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| exts.iter().any(|x| e.eq_ignore_ascii_case(x)))
}

/// One image's result, made in parallel and merged in order.
struct ImageOut {
    image: Option<Image>,
    labels: Vec<YoloLabel>,
    problems: Vec<ConvertProblem>,
    skipped_lines: usize,
}

/// Converts a YOLO dataset to COCO (see the module docs for every rule). `names` are the
/// class names in class order. Fatal only when a folder cannot be listed; everything else
/// is a problem in the report.
pub fn yolo_to_coco(
    images_dir: &Path,
    labels_dir: &Path,
    names: &[String],
    progress: &Progress,
) -> Result<(Coco, YoloToCocoReport)> {
    let mut report = YoloToCocoReport::default();
    let mut problems = Vec::new();
    let (images, others): (Vec<Found>, Vec<Found>) = walk(images_dir, &mut problems)?
        .into_iter()
        .partition(|f| has_ext(&f.rel, &IMAGE_EXTENSIONS));
    // Label files keyed by their extension-less relative path.
    let mut labels: BTreeMap<PathBuf, Found> = walk(labels_dir, &mut problems)?
        .into_iter()
        .filter(|f| has_ext(&f.rel, &["txt"]))
        .map(|f| (f.rel.with_extension(""), f))
        .collect();
    // When labels sit beside the images, the images folder's .txt files are labels, not
    // "other files".
    let same_dir = images_dir.canonicalize().ok() == labels_dir.canonicalize().ok();
    report.other_files = others
        .iter()
        .filter(|f| !(same_dir && has_ext(&f.rel, &["txt"])))
        .count();

    // Group images by stem: one image per stem is a pair, more is ambiguous.
    let mut by_stem: BTreeMap<PathBuf, Vec<Found>> = BTreeMap::new();
    for f in images {
        by_stem.entry(f.rel.with_extension("")).or_default().push(f);
    }
    let mut work: Vec<(Found, Option<Found>)> = Vec::with_capacity(by_stem.len());
    for (stem, mut group) in by_stem {
        let label = labels.remove(&stem);
        if group.len() > 1 {
            let list: Vec<String> = group.iter().map(|f| f.rel.display().to_string()).collect();
            let lbl = label.as_ref().map_or("no label file".into(), |l| {
                format!("label {}", l.full.display())
            });
            problems.push(ConvertProblem::file(
                &images_dir.join(&stem),
                "ambiguous_stem",
                format!(
                    "images {} share one stem ({lbl}); all left out: rename so each stem is one image",
                    list.join(" and ")
                ),
            ));
            report.images_skipped += group.len();
            continue;
        }
        if let Some(img) = group.pop() {
            work.push((img, label));
        }
    }
    for (_, l) in labels {
        report.labels_without_images += 1;
        problems.push(ConvertProblem::file(
            &l.full,
            "label_without_image",
            format!(
                "no image with this stem (.{}) in {}; its lines are not converted",
                IMAGE_EXTENSIONS.join("/."),
                images_dir.display()
            ),
        ));
    }
    // file_name order decides image ids; relative paths sort the same way except for
    // separators, so sort on the string itself.
    let name_of = |p: &Path| {
        p.components()
            .map(|c| c.as_os_str().to_string_lossy())
            .collect::<Vec<_>>()
            .join("/")
    };
    work.sort_by_cached_key(|(img, _)| name_of(&img.rel));
    progress.set_total(work.len() as u64);
    report.images_without_labels = work.iter().filter(|(_, l)| l.is_none()).count();

    let outs: Vec<ImageOut> = work
        .par_iter()
        .map(|(img, label)| {
            let out = convert_one(img, label.as_ref(), &name_of(&img.rel), names.len());
            progress.inc(1);
            out
        })
        .collect();
    progress.finish();

    let mut coco = Coco {
        categories: names
            .iter()
            .enumerate()
            .map(|(i, n)| Category {
                id: i as u64 + 1,
                name: n.clone(),
                supercategory: None,
                extra: Map::new(),
            })
            .collect(),
        ..Coco::default()
    };
    for out in outs {
        problems.extend(out.problems);
        report.skipped_lines += out.skipped_lines;
        let Some(mut image) = out.image else {
            report.images_skipped += 1;
            continue;
        };
        image.id = coco.images.len() as u64 + 1;
        let (w, h) = (
            f64::from(image.width.unwrap_or(0)),
            f64::from(image.height.unwrap_or(0)),
        );
        for l in out.labels {
            let id = coco.annotations.len() as u64 + 1;
            match l.shape {
                YoloShape::Box { .. } => report.detection_lines += 1,
                YoloShape::Polygon(_) => report.segmentation_lines += 1,
            }
            coco.annotations
                .push(label_to_annotation(&l, id, image.id, w, h));
        }
        coco.images.push(image);
    }
    report.images = coco.images.len();
    report.annotations = coco.annotations.len();
    report.problems = problems;
    Ok((coco, report))
}

fn convert_one(img: &Found, label: Option<&Found>, file_name: &str, nc: usize) -> ImageOut {
    let mut out = ImageOut {
        image: None,
        labels: Vec::new(),
        problems: Vec::new(),
        skipped_lines: 0,
    };
    let header = match read_header(&img.full) {
        Ok(h) => h,
        Err(e) => {
            let msg = match e {
                Error::Format { msg, .. } => msg,
                other => other.to_string(),
            };
            let and_labels = label.map_or(String::new(), |l| {
                format!("; labels {} not converted", l.full.display())
            });
            out.problems.push(ConvertProblem::file(
                &img.full,
                "bad_image",
                format!("cannot read the image size: {msg}{and_labels}"),
            ));
            return out;
        }
    };
    let (w, h) = header.display_size();
    if let Some(l) = label {
        match std::fs::read(&l.full) {
            Ok(bytes) => {
                let (labels, problems) = parse_labels(&bytes, Some(nc));
                out.skipped_lines = problems.len();
                out.problems
                    .extend(problems.into_iter().map(|problem| ConvertProblem {
                        path: l.full.clone(),
                        problem,
                    }));
                out.labels = labels.into_iter().map(|(_, l)| l).collect();
            }
            Err(e) => out.problems.push(ConvertProblem::file(
                &l.full,
                "unreadable_labels",
                format!("cannot read the label file: {e}"),
            )),
        }
    }
    out.image = Some(Image {
        id: 0,
        file_name: file_name.into(),
        width: Some(w),
        height: Some(h),
        extra: Map::new(),
    });
    out
}

/// One YOLO label as a COCO annotation on a `w`×`h` image (rules in the module docs).
pub fn label_to_annotation(l: &YoloLabel, id: u64, image_id: u64, w: f64, h: f64) -> Annotation {
    let (bbox, area, segmentation) = match &l.shape {
        YoloShape::Box {
            cx,
            cy,
            w: bw,
            h: bh,
        } => {
            let (pw, ph) = (bw * w, bh * h);
            (
                vec![(cx - bw / 2.0) * w, (cy - bh / 2.0) * h, pw, ph],
                Some(pw * ph),
                None,
            )
        }
        YoloShape::Polygon(pts) => {
            let flat: Vec<f64> = pts.iter().flat_map(|[x, y]| [x * w, y * h]).collect();
            let [x0, y0, x1, y1] = l.extent();
            let bbox = vec![x0 * w, y0 * h, (x1 - x0) * w, (y1 - y0) * h];
            (bbox, None, Some(Segmentation::Polygons(vec![flat])))
        }
    };
    Annotation {
        id,
        image_id,
        category_id: l.class as u64 + 1,
        bbox: Some(bbox),
        area,
        segmentation,
        iscrowd: Some(0),
        extra: Map::new(),
    }
}
