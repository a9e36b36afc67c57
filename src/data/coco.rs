//! COCO instance annotations: reading, writing, and the record types. Unknown fields (at
//! the top level and on every image, annotation and category) are kept and written back,
//! so a file passes through edgedistill without losing what its annotation tool stored.
//!
//! Reading never aborts on one bad record: a record that does not fit the schema (a
//! string where a number belongs, a missing `id`) becomes a [`Problem`] naming it, and
//! the caller decides (validation skips and counts it, `--strict` fails). Only a file
//! that is not JSON, or whose top level is not a COCO object, is an error outright.
use super::problem::{Problem, RecordKind};
use crate::io::atomic::write_atomic;
use crate::{Error, Result};
use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use std::path::Path;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Coco {
    #[serde(default)]
    pub images: Vec<Image>,
    #[serde(default)]
    pub annotations: Vec<Annotation>,
    #[serde(default)]
    pub categories: Vec<Category>,
    /// `info`, `licenses` and anything else, written back unchanged.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Image {
    pub id: u64,
    #[serde(default)]
    pub file_name: String,
    /// Optional here so a file lacking them still loads; validation reports or fills them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Annotation {
    pub id: u64,
    pub image_id: u64,
    pub category_id: u64,
    /// `[x, y, w, h]` in pixels when present. Kept as read (any length) so validation can
    /// name a malformed one instead of the parser rejecting the record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bbox: Option<Vec<f64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub area: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segmentation: Option<Segmentation>,
    /// 0 or 1 (a JSON bool is accepted and written back as 0/1).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_iscrowd"
    )]
    pub iscrowd: Option<u8>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Category {
    pub id: u64,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supercategory: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A COCO `segmentation`: polygon parts (`[[x1, y1, x2, y2, ...], ...]`, pixel
/// coordinates) or run-length encoding (column-major, pycocotools' layout).
#[derive(Clone, Debug, PartialEq)]
pub enum Segmentation {
    Polygons(Vec<Vec<f64>>),
    Rle { size: [u32; 2], counts: RleCounts },
}

/// RLE counts as stored: pycocotools' compressed string, or the plain run list that
/// annotation tools write for crowd regions.
#[derive(Clone, Debug, PartialEq)]
pub enum RleCounts {
    Compressed(String),
    Uncompressed(Vec<u64>),
}

impl Segmentation {
    /// `[h, w]` of an RLE; `None` for polygons.
    pub fn rle_size(&self) -> Option<[u32; 2]> {
        match self {
            Segmentation::Rle { size, .. } => Some(*size),
            Segmentation::Polygons(_) => None,
        }
    }
    /// False for `[]`, which box-only exports write in place of a mask.
    pub fn is_present(&self) -> bool {
        match self {
            Segmentation::Polygons(p) => !p.is_empty(),
            Segmentation::Rle { .. } => true,
        }
    }
}

impl Annotation {
    pub fn is_crowd(&self) -> bool {
        self.iscrowd.unwrap_or(0) != 0
    }
    /// The segmentation when it holds a mask (not `[]`).
    pub fn mask(&self) -> Option<&Segmentation> {
        self.segmentation.as_ref().filter(|s| s.is_present())
    }
}

impl Serialize for Segmentation {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            Segmentation::Polygons(p) => p.serialize(s),
            Segmentation::Rle { size, counts } => {
                #[derive(Serialize)]
                struct Out<'a, C: Serialize> {
                    size: &'a [u32; 2],
                    counts: &'a C,
                }
                match counts {
                    RleCounts::Compressed(c) => Out { size, counts: c }.serialize(s),
                    RleCounts::Uncompressed(c) => Out { size, counts: c }.serialize(s),
                }
            }
        }
    }
}

impl<'de> Deserialize<'de> for Segmentation {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        segmentation_from_value(Value::deserialize(d)?).map_err(D::Error::custom)
    }
}

/// One parse with messages that say which form was expected, instead of serde's
/// "did not match any variant".
fn segmentation_from_value(v: Value) -> std::result::Result<Segmentation, String> {
    match v {
        Value::Array(parts) => {
            let mut polys = Vec::with_capacity(parts.len());
            for (i, part) in parts.into_iter().enumerate() {
                let Value::Array(coords) = part else {
                    return Err(format!(
                        "segmentation polygon part {i} is not a list of numbers"
                    ));
                };
                let xy: Option<Vec<f64>> = coords.iter().map(Value::as_f64).collect();
                polys.push(xy.ok_or_else(|| {
                    format!("segmentation polygon part {i} holds a value that is not a number")
                })?);
            }
            Ok(Segmentation::Polygons(polys))
        }
        Value::Object(mut o) => {
            let size = o
                .remove("size")
                .and_then(|s| serde_json::from_value::<[u32; 2]>(s).ok())
                .ok_or("segmentation RLE needs \"size\": [height, width]")?;
            let counts = match o.remove("counts") {
                Some(Value::String(s)) => RleCounts::Compressed(s),
                Some(Value::Array(a)) => RleCounts::Uncompressed(
                    a.iter()
                        .map(Value::as_u64)
                        .collect::<Option<_>>()
                        .ok_or("segmentation RLE counts must be non-negative integers")?,
                ),
                _ => return Err("segmentation RLE needs \"counts\" (string or list)".into()),
            };
            Ok(Segmentation::Rle { size, counts })
        }
        other => Err(format!(
            "segmentation must be a list of polygons or an RLE object, found {}",
            json_kind(&other)
        )),
    }
}

fn de_iscrowd<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<u8>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        Value::Bool(b) => Ok(Some(u8::from(b))),
        Value::Number(n) if n.as_u64() == Some(0) || n.as_u64() == Some(1) => {
            Ok(n.as_u64().map(|v| v as u8))
        }
        other => Err(D::Error::custom(format!(
            "iscrowd must be 0 or 1, found {other}"
        ))),
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

impl Coco {
    /// Reads a COCO file. Records that do not fit the schema are returned as problems
    /// (and left out of the result); a file that is not a JSON object is an error.
    pub fn read(path: &Path) -> Result<(Coco, Vec<Problem>)> {
        let bytes = std::fs::read(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_slice(&bytes, &path.display().to_string())
    }

    /// Like [`Coco::read`], but any problem is an error naming its record.
    pub fn read_strict(path: &Path) -> Result<Coco> {
        let (coco, problems) = Self::read(path)?;
        match problems.into_iter().next() {
            Some(p) => Err(p.into_error(&path.display().to_string())),
            None => Ok(coco),
        }
    }

    /// Parses COCO JSON bytes; `name` is used in errors.
    pub fn from_slice(bytes: &[u8], name: &str) -> Result<(Coco, Vec<Problem>)> {
        // Fast path: a well-formed file deserialises straight into the types.
        if let Ok(coco) = serde_json::from_slice::<Coco>(bytes) {
            return Ok((coco, Vec::new()));
        }
        // Slow path: find and name every record that does not fit.
        let value: Value = serde_json::from_slice(bytes).map_err(|e| Error::Format {
            path: name.into(),
            record: format!("line {}, column {}", e.line(), e.column()),
            msg: format!("not valid JSON: {e}"),
        })?;
        let Value::Object(mut top) = value else {
            return Err(Error::Format {
                path: name.into(),
                record: "top level".into(),
                msg: format!("a COCO file is a JSON object, found {}", json_kind(&value)),
            });
        };
        let mut problems = Vec::new();
        let images = take_records(&mut top, "images", RecordKind::Image, name, &mut problems)?;
        let annotations = take_records(
            &mut top,
            "annotations",
            RecordKind::Annotation,
            name,
            &mut problems,
        )?;
        let categories = take_records(
            &mut top,
            "categories",
            RecordKind::Category,
            name,
            &mut problems,
        )?;
        let coco = Coco {
            images,
            annotations,
            categories,
            extra: top,
        };
        Ok((coco, problems))
    }

    /// Compact JSON (as pycocotools and annotation tools write it). Deterministic: the
    /// same dataset always gives the same bytes.
    pub fn to_vec(&self) -> Result<Vec<u8>> {
        serde_json::to_vec(self).map_err(|e| Error::msg(format!("writing COCO JSON: {e}")))
    }

    /// Writes to a temporary file and renames it into place.
    pub fn write(&self, path: &Path) -> Result<()> {
        let bytes = self.to_vec()?;
        write_atomic(path, |w| {
            w.write_all(&bytes).map_err(|source| Error::Io {
                path: path.to_path_buf(),
                source,
            })
        })
    }
}

/// Deserialises `top[key]` record by record; a record that fails becomes a problem
/// naming its id (when readable) and index.
fn take_records<T: DeserializeOwned>(
    top: &mut Map<String, Value>,
    key: &str,
    kind: RecordKind,
    name: &str,
    problems: &mut Vec<Problem>,
) -> Result<Vec<T>> {
    let records = match top.remove(key) {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(a)) => a,
        Some(other) => {
            return Err(Error::Format {
                path: name.into(),
                record: format!("\"{key}\""),
                msg: format!("must be a list, found {}", json_kind(&other)),
            });
        }
    };
    let mut out = Vec::with_capacity(records.len());
    for (i, rec) in records.into_iter().enumerate() {
        let id = rec.get("id").and_then(Value::as_u64);
        let field = bad_field(kind, &rec);
        match serde_json::from_value::<T>(rec) {
            Ok(r) => out.push(r),
            Err(e) => {
                // serde cannot name the field through `flatten`; `bad_field` does.
                let msg = match field {
                    Some((f, why)) => format!("field \"{f}\": {why}"),
                    None => e.to_string(),
                };
                problems.push(Problem::new(kind, id, "schema", msg).at(i))
            }
        }
    }
    Ok(out)
}

/// The first known field of a record whose value has the wrong type, with serde's reason.
fn bad_field(kind: RecordKind, rec: &Value) -> Option<(&'static str, String)> {
    fn check<T: DeserializeOwned>(rec: &Value, f: &'static str) -> Option<(&'static str, String)> {
        let v = rec.get(f)?;
        serde_json::from_value::<T>(v.clone())
            .err()
            .map(|e| (f, e.to_string()))
    }
    #[derive(Deserialize)]
    struct Crowd(
        #[serde(deserialize_with = "de_iscrowd")]
        #[allow(dead_code)]
        Option<u8>,
    );
    let u = check::<u64>;
    match kind {
        RecordKind::Image => u(rec, "id")
            .or_else(|| check::<String>(rec, "file_name"))
            .or_else(|| check::<u32>(rec, "width"))
            .or_else(|| check::<u32>(rec, "height")),
        RecordKind::Annotation => u(rec, "id")
            .or_else(|| u(rec, "image_id"))
            .or_else(|| u(rec, "category_id"))
            .or_else(|| check::<Option<Vec<f64>>>(rec, "bbox"))
            .or_else(|| check::<Option<f64>>(rec, "area"))
            .or_else(|| check::<Segmentation>(rec, "segmentation"))
            .or_else(|| check::<Crowd>(rec, "iscrowd")),
        RecordKind::Category => u(rec, "id")
            .or_else(|| check::<String>(rec, "name"))
            .or_else(|| check::<Option<String>>(rec, "supercategory")),
        RecordKind::File | RecordKind::Line => None,
    }
}
