//! COCO → YOLO label files (see the module docs of `data::convert`).
use super::ConvertProblem;
use crate::data::coco::{Annotation, Category, Coco, Segmentation};
use crate::data::problem::{Problem, RecordKind};
use crate::data::progress::Progress;
use crate::data::seg_mask::segmentation_rle;
use crate::data::yolo_txt::{YoloLabel, YoloShape, write_line};
use crate::io::atomic::write_atomic;
use crate::{Error, Result};
use rayon::prelude::*;
use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

/// What [`coco_to_yolo`] did (or, from [`plan_coco_to_yolo`], will do).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CocoToYoloReport {
    /// Label files (one per image).
    pub label_files: usize,
    pub detection_lines: usize,
    pub segmentation_lines: usize,
    /// Annotations with only an RLE mask, written as their box.
    pub rle_as_boxes: usize,
    /// Polygons of several parts joined into one.
    pub multi_part_polygons: usize,
    /// Crowd annotations left out.
    pub crowd_skipped: usize,
    /// Annotations whose normalised coordinates were clipped to [0, 1].
    pub clipped: usize,
    /// Annotations not converted (each has a problem).
    pub annotations_skipped: usize,
    /// Images without a label file (each has a problem).
    pub images_skipped: usize,
    pub problems: Vec<ConvertProblem>,
}

impl CocoToYoloReport {
    /// The closing summary, one fact per line.
    pub fn summary(&self) -> Vec<String> {
        vec![
            format!("label files: {}", self.label_files),
            format!(
                "lines: {} ({} boxes, {} polygons)",
                self.detection_lines + self.segmentation_lines,
                self.detection_lines,
                self.segmentation_lines
            ),
            format!("rle masks written as boxes: {}", self.rle_as_boxes),
            format!("multi-part polygons joined: {}", self.multi_part_polygons),
            format!("crowd annotations skipped: {}", self.crowd_skipped),
            format!("annotations clipped to the image: {}", self.clipped),
            format!("annotations skipped: {}", self.annotations_skipped),
            format!("images skipped: {}", self.images_skipped),
            format!("problems: {}", self.problems.len()),
        ]
    }
}

/// A label file to write: path relative to the labels folder, and its text.
#[derive(Clone, Debug, PartialEq)]
pub struct LabelFile {
    pub rel: PathBuf,
    pub text: String,
}

/// The YOLO side of a COCO dataset, not yet written: class names (categories sorted by
/// id), one label file per image, and the report. `source` names the COCO file in
/// problems. Category names that cannot be a names.txt line (empty, a line break, given
/// twice) are an error: class indices would shift.
pub fn plan_coco_to_yolo(
    coco: &Coco,
    source: &Path,
) -> Result<(Vec<String>, Vec<LabelFile>, CocoToYoloReport)> {
    let mut report = CocoToYoloReport::default();
    let src = source.display().to_string();
    let problem = |kind, id: u64, code, msg: String| ConvertProblem {
        path: source.to_path_buf(),
        problem: Problem::new(kind, Some(id), code, msg),
    };

    let mut cats: Vec<&Category> = coco.categories.iter().collect();
    cats.sort_by_key(|c| c.id);
    let mut class_of = HashMap::new();
    let mut names: Vec<String> = Vec::new();
    for c in cats {
        let err = |msg: String| Error::Format {
            path: src.clone(),
            record: format!("category {}", c.id),
            msg,
        };
        if class_of.contains_key(&c.id) {
            return Err(err("category id given twice".into()));
        }
        let name = c.name.trim();
        if name.is_empty() || name.contains(['\n', '\r']) {
            return Err(err(format!(
                "name {:?} cannot be a names.txt line (empty or a line break)",
                c.name
            )));
        }
        if let Some(first) = names.iter().position(|n| n == name) {
            return Err(err(format!(
                "name \"{name}\" is also the name of class {first}; YOLO names must be unique"
            )));
        }
        class_of.insert(c.id, names.len());
        names.push(name.to_string());
    }

    // Images by id, each with its label path; two images on one label path keep the first.
    let mut by_id: HashMap<u64, usize> = HashMap::new();
    let mut taken: HashMap<PathBuf, u64> = HashMap::new();
    let mut usable: Vec<Option<PathBuf>> = vec![None; coco.images.len()];
    for (i, img) in coco.images.iter().enumerate() {
        // Every way an image is left out: counted, and a problem naming it.
        let mut skip = |code: &'static str, msg: String| {
            report.images_skipped += 1;
            report
                .problems
                .push(problem(RecordKind::Image, img.id, code, msg));
        };
        if by_id.contains_key(&img.id) {
            skip(
                "duplicate_image_id",
                "image id given twice; the later record is left out".into(),
            );
            continue;
        }
        by_id.insert(img.id, i);
        let rel = match label_rel_path(&img.file_name) {
            Ok(r) => r,
            Err(msg) => {
                skip("bad_file_name", msg);
                continue;
            }
        };
        if let Some(&other) = taken.get(&rel) {
            skip(
                "label_path_clash",
                format!(
                    "{} has the label path {} of image {other}; left out",
                    img.file_name,
                    rel.display()
                ),
            );
            continue;
        }
        taken.insert(rel.clone(), img.id);
        match (img.width, img.height) {
            (Some(w), Some(h)) if w > 0 && h > 0 => usable[i] = Some(rel),
            _ => skip(
                "no_size",
                "no positive width/height (needed to normalise; run ed-validate first)".into(),
            ),
        }
    }
    // Annotations go to the first image record of their id.
    let mut anns_of: Vec<Vec<&Annotation>> = vec![Vec::new(); coco.images.len()];
    for a in &coco.annotations {
        match by_id.get(&a.image_id) {
            Some(&i) if usable[i].is_some() => anns_of[i].push(a),
            Some(_) => {
                report.annotations_skipped += 1;
                report.problems.push(problem(
                    RecordKind::Annotation,
                    a.id,
                    "image_skipped",
                    format!(
                        "its image {} is left out (see that image's problem)",
                        a.image_id
                    ),
                ));
            }
            None => {
                report.annotations_skipped += 1;
                report.problems.push(problem(
                    RecordKind::Annotation,
                    a.id,
                    "unknown_image_id",
                    format!("image_id {} is not an image of this file", a.image_id),
                ));
            }
        }
    }

    let results: Vec<(LabelFile, Vec<LineOutcome>)> = coco
        .images
        .par_iter()
        .zip(usable.par_iter())
        .zip(anns_of.par_iter())
        .filter_map(|((img, rel), anns)| {
            let rel = rel.as_ref()?;
            let (w, h) = (img.width.unwrap_or(1), img.height.unwrap_or(1));
            let mut text = String::new();
            let outcomes = anns
                .iter()
                .map(|a| {
                    let o = annotation_to_label(a, &class_of, w, h);
                    if let LineOutcome::Line { label, .. } = &o {
                        write_line(&mut text, label);
                    }
                    o
                })
                .collect();
            Some((
                LabelFile {
                    rel: rel.clone(),
                    text,
                },
                outcomes,
            ))
        })
        .collect();

    let mut files = Vec::with_capacity(results.len());
    for (file, outcomes) in results {
        for o in outcomes {
            match o {
                LineOutcome::Line {
                    label,
                    from_rle,
                    parts,
                    clipped,
                } => {
                    match label.shape {
                        YoloShape::Box { .. } => report.detection_lines += 1,
                        YoloShape::Polygon(_) => report.segmentation_lines += 1,
                    }
                    report.rle_as_boxes += usize::from(from_rle);
                    report.multi_part_polygons += usize::from(parts > 1);
                    report.clipped += usize::from(clipped);
                }
                LineOutcome::Crowd => report.crowd_skipped += 1,
                LineOutcome::Skip { id, code, msg } => {
                    report.annotations_skipped += 1;
                    report
                        .problems
                        .push(problem(RecordKind::Annotation, id, code, msg));
                }
            }
        }
        files.push(file);
    }
    report.label_files = files.len();
    Ok((names, files, report))
}

/// Writes the planned label files under `labels_dir` and the names file, each atomically.
pub fn write_yolo(
    labels_dir: &Path,
    names_path: &Path,
    names: &[String],
    files: &[LabelFile],
    progress: &Progress,
) -> Result<()> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io { path, source }
    };
    std::fs::create_dir_all(labels_dir).map_err(io(labels_dir))?;
    if let Some(parent) = names_path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(io(parent))?;
    }
    files.par_iter().try_for_each(|f| {
        let path = labels_dir.join(&f.rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        write_atomic(&path, |w| w.write_all(f.text.as_bytes()).map_err(io(&path)))?;
        progress.inc(1);
        Ok::<_, Error>(())
    })?;
    progress.finish();
    let text = crate::data::yolo_txt::names_text(names);
    write_atomic(names_path, |w| {
        w.write_all(text.as_bytes()).map_err(io(names_path))
    })
}

/// Plans and writes in one call: see [`plan_coco_to_yolo`] and [`write_yolo`].
pub fn coco_to_yolo(
    coco: &Coco,
    source: &Path,
    labels_dir: &Path,
    names_path: &Path,
    progress: &Progress,
) -> Result<CocoToYoloReport> {
    let (names, files, report) = plan_coco_to_yolo(coco, source)?;
    write_yolo(labels_dir, names_path, &names, &files, progress)?;
    Ok(report)
}

/// `file_name` → relative label path (`a/b.jpg` → `a/b.txt`). Refuses absolute paths and
/// `..`, which would write outside the labels folder.
fn label_rel_path(file_name: &str) -> std::result::Result<PathBuf, String> {
    let p = Path::new(file_name);
    let mut rel = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(part) => rel.push(part),
            Component::CurDir => {}
            _ => {
                return Err(format!(
                    "file_name \"{file_name}\" is absolute or leaves its folder (..); \
                     the label file would be written outside the labels folder"
                ));
            }
        }
    }
    if rel.file_name().is_none() {
        return Err(format!("file_name \"{file_name}\" names no file"));
    }
    Ok(rel.with_extension("txt"))
}

enum LineOutcome {
    Line {
        label: YoloLabel,
        from_rle: bool,
        parts: usize,
        clipped: bool,
    },
    Crowd,
    Skip {
        id: u64,
        code: &'static str,
        msg: String,
    },
}

/// One annotation as a YOLO line on a `width`×`height` image (rules in the module docs).
fn annotation_to_label(
    a: &Annotation,
    class_of: &HashMap<u64, usize>,
    width: u32,
    height: u32,
) -> LineOutcome {
    let (w, h) = (f64::from(width), f64::from(height));
    let skip = |code, msg: String| LineOutcome::Skip {
        id: a.id,
        code,
        msg,
    };
    if a.is_crowd() {
        return LineOutcome::Crowd;
    }
    let Some(&class) = class_of.get(&a.category_id) else {
        return skip(
            "unknown_category_id",
            format!(
                "category_id {} is not a category of this file",
                a.category_id
            ),
        );
    };
    let mut clipped = false;
    let mut norm = |v: f64, size: f64| {
        let n = v / size;
        let c = n.clamp(0.0, 1.0);
        clipped |= c != n;
        c
    };
    match a.mask() {
        Some(Segmentation::Polygons(parts)) => {
            for (i, p) in parts.iter().enumerate() {
                if p.len() < 6 || p.len() % 2 != 0 || p.iter().any(|v| !v.is_finite()) {
                    return skip(
                        "bad_polygon",
                        format!(
                            "segmentation part {i} has {} values; a polygon needs an even \
                             number ≥ 6 of finite coordinates",
                            p.len()
                        ),
                    );
                }
            }
            let pts: Vec<[f64; 2]> = join_parts(parts)
                .into_iter()
                .map(|[x, y]| [norm(x, w), norm(y, h)])
                .collect();
            LineOutcome::Line {
                label: YoloLabel {
                    class,
                    shape: YoloShape::Polygon(pts),
                },
                from_rle: false,
                parts: parts.len(),
                clipped,
            }
        }
        mask => {
            let from_rle = mask.is_some();
            let bbox = match (&a.bbox, mask) {
                (Some(b), _) => b.clone(),
                (None, Some(rle @ Segmentation::Rle { .. })) => {
                    match segmentation_rle(rle, height, width) {
                        Ok(m) if m.area() == 0 => {
                            return skip("bad_rle", "RLE mask is empty (no pixels set)".into());
                        }
                        Ok(m) => m.to_bbox().to_vec(),
                        Err(e) => return skip("bad_rle", e.to_string()),
                    }
                }
                _ => {
                    return skip("no_geometry", "neither bbox nor segmentation".into());
                }
            };
            let [x, y, bw, bh] = bbox[..] else {
                return skip(
                    "bad_bbox",
                    format!("bbox has {} values (x, y, w, h expected)", bbox.len()),
                );
            };
            let finite = [x, y, bw, bh].iter().all(|v| v.is_finite());
            if !(finite && bw > 0.0 && bh > 0.0) {
                return skip(
                    "bad_bbox",
                    format!("bbox [{x}, {y}, {bw}, {bh}] is empty or not finite"),
                );
            }
            let (x0, y0, x1, y1) = (norm(x, w), norm(y, h), norm(x + bw, w), norm(y + bh, h));
            if x1 <= x0 || y1 <= y0 {
                return skip(
                    "bbox_outside",
                    format!("bbox [{x}, {y}, {bw}, {bh}] lies outside the {w}×{h} image"),
                );
            }
            LineOutcome::Line {
                label: YoloLabel {
                    class,
                    shape: YoloShape::Box {
                        cx: (x0 + x1) / 2.0,
                        cy: (y0 + y1) / 2.0,
                        w: x1 - x0,
                        h: y1 - y0,
                    },
                },
                from_rle,
                parts: 0,
                clipped,
            }
        }
    }
}

/// Joins polygon parts into one outline: each part closed back to its first point, a
/// bridge to the next part's first point, and after the last part the bridges walked
/// back, so every bridge is traversed once each way and adds no area.
pub fn join_parts(parts: &[Vec<f64>]) -> Vec<[f64; 2]> {
    let pts = |p: &Vec<f64>| -> Vec<[f64; 2]> { p.chunks_exact(2).map(|c| [c[0], c[1]]).collect() };
    if let [only] = parts {
        return pts(only);
    }
    let mut out = Vec::new();
    let mut firsts = Vec::new();
    for p in parts {
        let p = pts(p);
        if let Some(&first) = p.first() {
            out.extend_from_slice(&p);
            out.push(first);
            firsts.push(first);
        }
    }
    // Back over the bridges: last-but-one part's first point down to the second part's;
    // the polygon's own closing edge returns to the first part.
    if firsts.len() > 2 {
        out.extend(firsts[1..firsts.len() - 1].iter().rev());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joined_parts_add_no_area() {
        let shoelace = |p: &[[f64; 2]]| {
            (0..p.len())
                .map(|i| {
                    let (a, b) = (p[i], p[(i + 1) % p.len()]);
                    a[0] * b[1] - b[0] * a[1]
                })
                .sum::<f64>()
                / 2.0
        };
        let sq = |x: f64| vec![x, 0.0, x + 1.0, 0.0, x + 1.0, 1.0, x, 1.0];
        let joined = join_parts(&[sq(0.0), sq(3.0), sq(7.0)]);
        assert_eq!(joined.len(), 3 * 5 + 1);
        assert!((shoelace(&joined) - 3.0).abs() < 1e-12);
    }

    #[test]
    fn label_paths_stay_inside() {
        assert_eq!(label_rel_path("a/b.JPG").unwrap(), PathBuf::from("a/b.txt"));
        assert!(label_rel_path("../x.jpg").is_err());
        assert!(label_rel_path("/etc/x.jpg").is_err());
    }
}
