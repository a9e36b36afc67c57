//! A COCO results file (a JSON list of `{image_id, category_id, score, bbox and/or
//! segmentation}`) loaded as pycocotools' `COCO.loadRes` loads it, checked against the
//! ground truth it will be evaluated on.
//!
//! loadRes' rules, reproduced because they change the numbers:
//! - ids are the 1-based positions in the list (any `id` in the file is ignored);
//! - the **first** record decides the mode for all: when it has a non-empty `bbox`, every
//!   record's `area` is `w·h` of its box, even when it also has a mask and the evaluation
//!   is on masks; otherwise every record needs a `segmentation`, its `area` is the mask's
//!   pixel count and a missing `bbox` is the mask's `toBbox`;
//! - `iscrowd` is 0 for every detection.
//!
//! Masks may be compressed or uncompressed RLE (their `size` must be the image's
//! `[height, width]`) or polygons, which are rasterised at the image size as `annToRLE`
//! does. (pycocotools' `maskUtils.area` takes only compressed RLE in segm mode; polygons
//! and plain run lists there are an extension.)
//!
//! Where pycocotools would crash or quietly drop records, this returns an error naming the
//! record (`results[i] (image_id N)`, `i` 0-based): an image id not in the ground truth,
//! a category id not in it, a NaN or infinite score, a malformed box or RLE, an RLE whose
//! size is not the image's, a record without the `bbox` or `segmentation` its mode needs.
//! A missing mask in bbox mode is only an error when masks are evaluated
//! ([`Results::masks_for`]).
use crate::data::coco::{Coco, Segmentation};
use crate::data::masks::Rle;
use crate::data::seg_mask::segmentation_rle;
use crate::{Error, Result};
use rayon::prelude::*;
use serde::Deserialize;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::path::Path;

/// One record of a results file, before loadRes' rules (what a model's output gives too).
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct ResultRecord {
    pub image_id: u64,
    pub category_id: u64,
    pub score: f64,
    /// `[x, y, w, h]`; `[]` counts as absent.
    #[serde(default)]
    pub bbox: Option<Vec<f64>>,
    /// `[]` counts as absent.
    #[serde(default)]
    pub segmentation: Option<Segmentation>,
}

/// One detection as COCOeval sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct Detection {
    /// 1-based position in the results list (loadRes' id); the record is `results[id - 1]`.
    pub id: u64,
    pub image_id: u64,
    pub category_id: u64,
    pub score: f64,
    /// `[x, y, w, h]`: as given, or `toBbox` of the mask (segm mode without a box).
    pub bbox: Option<[f64; 4]>,
    /// loadRes' area: box `w·h` in bbox mode, mask pixels in segm mode.
    pub area: f64,
    /// The mask at its image's size.
    pub mask: Option<Rle>,
}

/// Which rule set loadRes applied (decided by the first record).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResultsMode {
    /// The first record has a box: areas are box areas, every record needs a box.
    Bbox,
    /// The first record has no box: areas are mask areas, every record needs a mask.
    Segm,
}

/// Detections checked against a ground truth, in file order.
#[derive(Clone, Debug, PartialEq)]
pub struct Results {
    /// File name (or other label) used in errors.
    pub source: String,
    pub mode: ResultsMode,
    pub detections: Vec<Detection>,
}

impl Results {
    /// Reads a results JSON file for evaluation against `gt`.
    pub fn read(path: &Path, gt: &Coco) -> Result<Results> {
        let bytes = std::fs::read(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_slice(&bytes, &path.display().to_string(), gt)
    }

    /// Parses results JSON bytes; `name` labels errors.
    pub fn from_slice(bytes: &[u8], name: &str, gt: &Coco) -> Result<Results> {
        let records = parse_records(bytes, name)?;
        Self::from_records(records, name, gt)
    }

    /// Applies loadRes' rules to records (from a file or a model) and checks them against
    /// `gt`; masks are decoded here, in parallel (errors are reported for the first bad
    /// record in list order, whatever the thread count).
    pub fn from_records(records: Vec<ResultRecord>, name: &str, gt: &Coco) -> Result<Results> {
        let images: HashMap<u64, (Option<u32>, Option<u32>)> = gt
            .images
            .iter()
            .map(|im| (im.id, (im.height, im.width)))
            .collect();
        let cats: HashSet<u64> = gt.categories.iter().map(|c| c.id).collect();
        let has_box = |r: &ResultRecord| r.bbox.as_ref().is_some_and(|b| !b.is_empty());
        let has_seg = |r: &ResultRecord| r.segmentation.as_ref().is_some_and(|s| s.is_present());
        let mode = match records.first() {
            None => ResultsMode::Bbox,
            Some(r) if has_box(r) => ResultsMode::Bbox,
            Some(r) if has_seg(r) => ResultsMode::Segm,
            Some(r) => {
                return Err(record_err(
                    name,
                    0,
                    Some(r.image_id),
                    "has neither a bbox nor a segmentation".into(),
                ));
            }
        };
        let one =
            |(i, r): (usize, ResultRecord)| -> Result<Detection> {
                let err = |msg: String| record_err(name, i, Some(r.image_id), msg);
                let Some(&(h, w)) = images.get(&r.image_id) else {
                    return Err(err(format!(
                        "image_id {} is not an image of the ground truth (pycocotools: \
                     \"Results do not correspond to current coco set\")",
                        r.image_id
                    )));
                };
                if !cats.contains(&r.category_id) {
                    return Err(err(format!(
                        "category_id {} is not a category of the ground truth",
                        r.category_id
                    )));
                }
                if !r.score.is_finite() {
                    return Err(err(format!("score is {}, not a finite number", r.score)));
                }
                let bbox = match &r.bbox {
                    Some(b) if !b.is_empty() => Some(box4(b).map_err(err)?),
                    _ => None,
                };
                let mask = match &r.segmentation {
                    Some(s) if s.is_present() => {
                        let (Some(h), Some(w)) = (h, w) else {
                            return Err(err(format!(
                                "image {} has no width/height in the ground truth, needed to \
                             read the segmentation",
                                r.image_id
                            )));
                        };
                        let m = segmentation_rle(s, h, w)
                            .map_err(|e| err(format!("segmentation: {e}")))?;
                        Some(m)
                    }
                    _ => None,
                };
                let (bbox, area) =
                    match mode {
                        ResultsMode::Bbox => {
                            let b = bbox.ok_or_else(|| {
                        err("has no bbox, but the first result has one, so (as pycocotools' \
                             loadRes) every result needs one"
                            .into())
                    })?;
                            (Some(b), b[2] * b[3])
                        }
                        ResultsMode::Segm => {
                            let m = mask.as_ref().ok_or_else(|| {
                                err("has no segmentation, but the first result has no bbox, so (as \
                             pycocotools' loadRes) every result needs a segmentation"
                            .into())
                            })?;
                            (Some(bbox.unwrap_or_else(|| m.to_bbox())), m.area() as f64)
                        }
                    };
                Ok(Detection {
                    id: i as u64 + 1,
                    image_id: r.image_id,
                    category_id: r.category_id,
                    score: r.score,
                    bbox,
                    area,
                    mask,
                })
            };
        let out: Vec<Result<Detection>> = records.into_par_iter().enumerate().map(one).collect();
        let detections = out.into_iter().collect::<Result<Vec<_>>>()?;
        Ok(Results {
            source: name.to_string(),
            mode,
            detections,
        })
    }

    /// Number of detections.
    pub fn len(&self) -> usize {
        self.detections.len()
    }

    pub fn is_empty(&self) -> bool {
        self.detections.is_empty()
    }

    /// Errors, naming the first record, unless every detection has a mask (what a segm
    /// evaluation needs).
    pub fn masks_for(&self, what: &str) -> Result<()> {
        match self.detections.iter().position(|d| d.mask.is_none()) {
            None => Ok(()),
            Some(i) => Err(record_err(
                &self.source,
                i,
                Some(self.detections[i].image_id),
                format!("has no segmentation, which {what} needs"),
            )),
        }
    }
}

/// The error for record `i` of a results list.
fn record_err(name: &str, i: usize, image_id: Option<u64>, msg: String) -> Error {
    Error::Format {
        path: name.to_string(),
        record: match image_id {
            Some(id) => format!("results[{i}] (image_id {id})"),
            None => format!("results[{i}]"),
        },
        msg,
    }
}

fn box4(b: &[f64]) -> std::result::Result<[f64; 4], String> {
    let a: [f64; 4] = b
        .try_into()
        .map_err(|_| format!("bbox has {} numbers, expected [x, y, w, h]", b.len()))?;
    if let Some(v) = a.iter().find(|v| !v.is_finite()) {
        return Err(format!("bbox holds {v}, not a finite number"));
    }
    Ok(a)
}

/// Marks a non-finite literal rewritten into a string (see [`rewrite_non_finite`]).
const NON_FINITE: char = '\u{0}';

/// Records of a results file. Fast path: straight into the types. When that fails the
/// file is read as JSON values and the first bad record is named; Python's `json` writes
/// NaN and infinities as bare `NaN` / `Infinity`, which are not JSON, so those are turned
/// into marked strings first to be reported as the score (or box) they are.
fn parse_records(bytes: &[u8], name: &str) -> Result<Vec<ResultRecord>> {
    if let Ok(r) = serde_json::from_slice::<Vec<ResultRecord>>(bytes) {
        return Ok(r);
    }
    let value: Value = match serde_json::from_slice(bytes) {
        Ok(v) => v,
        Err(e) => {
            serde_json::from_slice(&rewrite_non_finite(bytes)).map_err(|_| Error::Format {
                path: name.into(),
                record: format!("line {}, column {}", e.line(), e.column()),
                msg: format!("not valid JSON: {e}"),
            })?
        }
    };
    let Value::Array(items) = value else {
        return Err(Error::Format {
            path: name.into(),
            record: "top level".into(),
            msg: "a results file is a JSON list of objects (pycocotools: \"results in not \
                  an array of objects\")"
                .into(),
        });
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, v)| record_from_value(i, v, name))
        .collect()
}

fn record_from_value(i: usize, v: Value, name: &str) -> Result<ResultRecord> {
    let Value::Object(mut o) = v else {
        return Err(record_err(name, i, None, "is not a JSON object".into()));
    };
    let image_id = o.get("image_id").and_then(Value::as_u64);
    let err = |msg: String| record_err(name, i, image_id, msg);
    let id_field = |o: &serde_json::Map<String, Value>, f: &str| match o.get(f) {
        None => Err(err(format!("has no \"{f}\""))),
        Some(v) => v.as_u64().ok_or_else(|| {
            err(format!(
                "\"{f}\" must be a non-negative integer, found {}",
                show(v)
            ))
        }),
    };
    let image_id_v = id_field(&o, "image_id")?;
    let category_id = id_field(&o, "category_id")?;
    let score = match o.get("score") {
        None => return Err(err("has no \"score\"".into())),
        Some(v) => number(v).map_err(|m| err(format!("score {m}")))?,
    };
    let bbox = match o.remove("bbox") {
        None | Some(Value::Null) => None,
        Some(Value::Array(a)) => Some(
            a.iter()
                .enumerate()
                .map(|(k, v)| number(v).map_err(|m| err(format!("bbox[{k}] {m}"))))
                .collect::<Result<Vec<f64>>>()?,
        ),
        Some(other) => {
            return Err(err(format!(
                "bbox must be a list [x, y, w, h], found {}",
                show(&other)
            )));
        }
    };
    let segmentation = match o.remove("segmentation") {
        None | Some(Value::Null) => None,
        Some(s) => Some(
            serde_json::from_value::<Segmentation>(s)
                .map_err(|e| err(format!("malformed segmentation: {e}")))?,
        ),
    };
    Ok(ResultRecord {
        image_id: image_id_v,
        category_id,
        score,
        bbox,
        segmentation,
    })
}

/// A JSON number as f64; a rewritten non-finite literal as its value (so the caller
/// reports it as NaN / inf); anything else is an error message.
fn number(v: &Value) -> std::result::Result<f64, String> {
    match v {
        Value::Number(n) => n.as_f64().ok_or_else(|| format!("{n} is not a number")),
        Value::String(s) if s.starts_with(NON_FINITE) => Ok(match &s[1..] {
            "NaN" => f64::NAN,
            "-Infinity" => f64::NEG_INFINITY,
            _ => f64::INFINITY,
        }),
        other => Err(format!("must be a number, found {}", show(other))),
    }
}

/// A JSON value for a message, shortened.
fn show(v: &Value) -> String {
    match v {
        Value::String(s) if s.starts_with(NON_FINITE) => s[1..].to_string(),
        _ => {
            let s = v.to_string();
            if s.len() > 40 {
                format!("{}...", &s[..s.floor_char_boundary(40)])
            } else {
                s
            }
        }
    }
}

/// `bytes` with every bare `NaN`, `Infinity` and `-Infinity` outside strings replaced by
/// a string holding [`NON_FINITE`] and the literal.
fn rewrite_non_finite(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + 64);
    let (mut i, mut in_str, mut esc) = (0, false, false);
    while i < bytes.len() {
        let b = bytes[i];
        if in_str {
            out.push(b);
            match (esc, b) {
                (true, _) => esc = false,
                (false, b'\\') => esc = true,
                (false, b'"') => in_str = false,
                _ => {}
            }
            i += 1;
            continue;
        }
        let lit = [&b"NaN"[..], b"Infinity", b"-Infinity"]
            .into_iter()
            .find(|l| bytes[i..].starts_with(l));
        match lit {
            Some(l) => {
                out.extend_from_slice(b"\"\\u0000");
                out.extend_from_slice(l);
                out.push(b'"');
                i += l.len();
            }
            None => {
                in_str = b == b'"';
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_finite_literals_become_marked_strings() {
        let s = br#"[{"score": NaN, "x": "NaN\"Infinity", "b": [-Infinity, Infinity]}]"#;
        let v: Value = serde_json::from_slice(&rewrite_non_finite(s)).unwrap();
        assert!(number(&v[0]["score"]).unwrap().is_nan());
        assert_eq!(v[0]["x"], "NaN\"Infinity");
        assert_eq!(number(&v[0]["b"][0]).unwrap(), f64::NEG_INFINITY);
        assert_eq!(number(&v[0]["b"][1]).unwrap(), f64::INFINITY);
    }
}
