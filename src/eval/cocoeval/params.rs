//! COCOeval's parameters (pycocotools `Params.setDetParams`), with its threshold values
//! bit for bit: `np.linspace` computes `i·step + start` and sets the last point to `stop`,
//! which is not `.5 + .05·i` (0.8999999999999999, not 0.9, at i = 8).
use crate::{Error, Result};

/// Which geometry the IoU is taken on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IouType {
    /// `[x, y, w, h]` boxes, maskApi `bbIou`.
    Bbox,
    /// Run-length masks, maskApi `rleIou`.
    Segm,
}

impl IouType {
    /// pycocotools' name: `"bbox"` or `"segm"`.
    pub fn as_str(self) -> &'static str {
        match self {
            IouType::Bbox => "bbox",
            IouType::Segm => "segm",
        }
    }

    /// Parses `"bbox"` / `"segm"`.
    pub fn parse(s: &str) -> Result<IouType> {
        match s {
            "bbox" => Ok(IouType::Bbox),
            "segm" => Ok(IouType::Segm),
            _ => Err(Error::msg(format!(
                "unknown iou type {s:?}: expected \"bbox\" or \"segm\""
            ))),
        }
    }
}

/// Evaluation settings. [`Params::new`] gives pycocotools' defaults; the summary
/// (`stats`) looks its rows up by value as pycocotools does (IoU 0.5 and 0.75, area labels
/// `all`/`small`/`medium`/`large`, the three `max_dets`), so it is meant for the defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct Params {
    pub iou_type: IouType,
    /// T IoU thresholds, `np.linspace(.5, .95, 10)`.
    pub iou_thrs: Vec<f64>,
    /// R recall points, `np.linspace(0, 1, 101)`.
    pub rec_thrs: Vec<f64>,
    /// M detection limits per image and category, ascending: `[1, 10, 100]`.
    pub max_dets: Vec<usize>,
    /// A area ranges `[lo, hi]`, both ends inclusive: all, small, medium, large.
    pub area_rng: Vec<[f64; 2]>,
    /// Labels of `area_rng`.
    pub area_rng_lbl: Vec<String>,
}

impl Params {
    /// pycocotools' defaults for `iou_type`.
    pub fn new(iou_type: IouType) -> Params {
        Params {
            iou_type,
            iou_thrs: linspace(0.5, 0.95, 10),
            rec_thrs: linspace(0.0, 1.0, 101),
            max_dets: vec![1, 10, 100],
            area_rng: vec![[0.0, 1e10], [0.0, 1024.0], [1024.0, 9216.0], [9216.0, 1e10]],
            area_rng_lbl: ["all", "small", "medium", "large"]
                .map(String::from)
                .to_vec(),
        }
    }

    /// Errors on settings the evaluation cannot run with (pycocotools sorts `max_dets`
    /// itself; here unsorted limits are an error so the caller's indices stay valid).
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::msg(format!("COCOeval params: {m}")));
        if self.iou_thrs.is_empty() || self.rec_thrs.is_empty() || self.area_rng.is_empty() {
            return bad("iou_thrs, rec_thrs and area_rng must not be empty".into());
        }
        if self.max_dets.len() < 3 || !self.max_dets.is_sorted() {
            return bad(format!(
                "max_dets {:?} must hold at least 3 ascending limits (the summary reads 3)",
                self.max_dets
            ));
        }
        if self.area_rng_lbl.len() != self.area_rng.len() {
            return bad(format!(
                "{} area labels for {} area ranges",
                self.area_rng_lbl.len(),
                self.area_rng.len()
            ));
        }
        let finite = |v: &[f64]| v.iter().all(|x| x.is_finite());
        if !finite(&self.iou_thrs) || !finite(&self.rec_thrs) {
            return bad("thresholds must be finite".into());
        }
        if !self.rec_thrs.is_sorted() {
            return bad("rec_thrs must be ascending".into());
        }
        Ok(())
    }

    /// The largest detection limit (detections per image and category kept for matching).
    pub fn max_det(&self) -> usize {
        self.max_dets.last().copied().unwrap_or(0)
    }
}

/// `np.linspace(start, stop, num)` (endpoint included) with numpy's exact arithmetic:
/// `i·((stop − start)/(num − 1)) + start`, the last point set to `stop`.
pub fn linspace(start: f64, stop: f64, num: usize) -> Vec<f64> {
    if num == 0 {
        return Vec::new();
    }
    if num == 1 {
        return vec![start];
    }
    let step = (stop - start) / (num - 1) as f64;
    let mut v: Vec<f64> = (0..num).map(|i| i as f64 * step + start).collect();
    v[num - 1] = stop;
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_are_numpys() {
        let t = linspace(0.5, 0.95, 10);
        // np.linspace(.5, .95, 10)[8] is 0.8999999999999999, [5] is exactly 0.75.
        assert_eq!(t[8], 0.8999999999999999);
        assert_eq!(t[5], 0.75);
        assert_eq!(t[0], 0.5);
        assert_eq!(t[9], 0.95);
        let r = linspace(0.0, 1.0, 101);
        assert_eq!(r[1], 0.01);
        assert_eq!(r[100], 1.0);
        assert_eq!(r[29], 29.0 * 0.01);
        assert!(Params::new(IouType::Segm).validate().is_ok());
        let mut p = Params::new(IouType::Bbox);
        p.max_dets = vec![100, 10, 1];
        assert!(p.validate().is_err());
    }
}
