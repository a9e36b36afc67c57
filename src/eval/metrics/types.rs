//! Inputs of the ultralytics-style evaluation: the ground truth and the predictions of one
//! image, in pixels, independent of COCO ids (a converter from COCO GT + results can fill
//! them). Ground truth here has no crowd flag: ultralytics drops crowd annotations when it
//! converts COCO, and so should the converter.
use crate::data::masks::{MAX_COORD, Rle};
use crate::{Error, Result};

/// One ground-truth object.
#[derive(Clone, Debug, PartialEq)]
pub struct GtObject {
    /// `[x1, y1, x2, y2]` in pixels, `x1 <= x2`, `y1 <= y2`.
    pub bbox: [f64; 4],
    /// Class index, `< nc`.
    pub class: usize,
    /// Instance mask at the image's size; all objects of an evaluation have one or none do.
    pub mask: Option<Rle>,
}

/// One prediction.
#[derive(Clone, Debug, PartialEq)]
pub struct Detection {
    /// `[x1, y1, x2, y2]` in pixels.
    pub bbox: [f64; 4],
    pub class: usize,
    /// Confidence; finite. ultralytics' scores are f32, so f32 values give its exact results.
    pub score: f64,
    pub mask: Option<Rle>,
}

/// Ground truth and predictions of one image. `name` (file name or id) names the image in
/// errors and in the per-image records.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ImageEval {
    pub name: String,
    pub gt: Vec<GtObject>,
    pub pred: Vec<Detection>,
}

impl ImageEval {
    fn err(&self, record: String, msg: String) -> Error {
        Error::Format {
            path: self.name.clone(),
            record,
            msg,
        }
    }

    /// Checks classes against `nc`, boxes (finite, within ±`MAX_COORD`, not inverted),
    /// scores (finite) and that the masks present share one size.
    pub fn validate(&self, nc: usize) -> Result<()> {
        let objs = self
            .gt
            .iter()
            .enumerate()
            .map(|(i, g)| (format!("gt {i}"), g.bbox, g.class, None, g.mask.as_ref()))
            .chain(self.pred.iter().enumerate().map(|(i, d)| {
                (
                    format!("prediction {i}"),
                    d.bbox,
                    d.class,
                    Some(d.score),
                    d.mask.as_ref(),
                )
            }));
        let mut size: Option<(u32, u32, String)> = None;
        for (rec, b, class, score, mask) in objs {
            if class >= nc {
                return Err(self.err(rec, format!("class {class} is not below nc = {nc}")));
            }
            if let Some(v) = b.iter().find(|v| !v.is_finite() || v.abs() > MAX_COORD) {
                return Err(self.err(
                    rec,
                    format!("box {b:?}: coordinate {v} is not a finite value within ±{MAX_COORD}"),
                ));
            }
            if b[2] < b[0] || b[3] < b[1] {
                return Err(self.err(
                    rec,
                    format!("box {b:?} is not [x1, y1, x2, y2] with x1 <= x2, y1 <= y2"),
                ));
            }
            if let Some(s) = score.filter(|s| !s.is_finite()) {
                return Err(self.err(rec, format!("score {s} is not finite")));
            }
            if let Some(m) = mask {
                match &size {
                    None => size = Some((m.h(), m.w(), rec)),
                    Some((h, w, first)) if (m.h(), m.w()) != (*h, *w) => {
                        return Err(self.err(
                            rec,
                            format!("mask is {}×{} but {first}'s mask is {h}×{w}", m.h(), m.w()),
                        ));
                    }
                    Some(_) => {}
                }
            }
        }
        Ok(())
    }

    /// `Some(first object without a mask)` when some objects have masks and others not.
    fn mask_gap(&self) -> (usize, Option<String>) {
        let with = self.gt.iter().filter(|g| g.mask.is_some()).count()
            + self.pred.iter().filter(|d| d.mask.is_some()).count();
        let missing = self
            .gt
            .iter()
            .position(|g| g.mask.is_none())
            .map(|i| format!("gt {i}"))
            .or_else(|| {
                self.pred
                    .iter()
                    .position(|d| d.mask.is_none())
                    .map(|i| format!("prediction {i}"))
            });
        (with, missing)
    }
}

/// Whether masks are evaluated: every object of every image has one (and there is at least
/// one), or none has. A mix is an error naming the first object without a mask.
pub fn masks_present(images: &[ImageEval]) -> Result<bool> {
    let mut any = false;
    let mut first_missing: Option<(usize, String)> = None;
    for (i, img) in images.iter().enumerate() {
        let (with, missing) = img.mask_gap();
        any |= with > 0;
        if first_missing.is_none() {
            first_missing = missing.map(|m| (i, m));
        }
        if let (true, Some((im, rec))) = (any, &first_missing) {
            let name = &images[*im].name;
            return Err(Error::Format {
                path: name.clone(),
                record: rec.clone(),
                msg: "has no mask while other objects have masks (evaluate masks for all \
                      objects or none)"
                    .into(),
            });
        }
    }
    Ok(any)
}
