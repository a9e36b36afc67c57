//! COCOeval's `summarize`: the 12 numbers and the 12 lines pycocotools prints, plus
//! per-category AP. Means are numpy's (`np.mean`: pairwise summation, then one division),
//! so the numbers agree to the last bit, not just to rounding.
use super::accumulate::Accumulated;
use super::params::Params;
pub use crate::backend::cpu::math::pairwise_sum;

/// One of the 12 summary rows: AP or AR, at an IoU (None = mean over all thresholds), an
/// area label and a detection limit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StatSpec {
    pub ap: bool,
    pub iou: Option<f64>,
    pub area: &'static str,
    pub max_dets: usize,
}

/// The 12 rows of `_summarizeDets`, in order.
pub fn stat_specs(p: &Params) -> [StatSpec; 12] {
    let md = |i: usize| p.max_dets.get(i).copied().unwrap_or(0);
    let s = |ap, iou, area, max_dets| StatSpec {
        ap,
        iou,
        area,
        max_dets,
    };
    [
        s(true, None, "all", md(2)),
        s(true, Some(0.5), "all", md(2)),
        s(true, Some(0.75), "all", md(2)),
        s(true, None, "small", md(2)),
        s(true, None, "medium", md(2)),
        s(true, None, "large", md(2)),
        s(false, None, "all", md(0)),
        s(false, None, "all", md(1)),
        s(false, None, "all", md(2)),
        s(false, None, "small", md(2)),
        s(false, None, "medium", md(2)),
        s(false, None, "large", md(2)),
    ]
}

/// pycocotools' `_summarize`: the mean of the selected precision (or recall) cells greater
/// than −1, or −1 when there are none. Cells are visited in numpy's C order (threshold,
/// recall point, category), the order in which `s[s > -1]` flattens them.
pub fn summarize_one(e: &Accumulated, p: &Params, s: &StatSpec) -> f64 {
    let [t_n, r_n, k_n, _, _] = e.dims;
    let ts: Vec<usize> = (0..t_n)
        .filter(|&t| s.iou.is_none_or(|v| p.iou_thrs[t] == v))
        .collect();
    let a_sel: Vec<usize> = (0..p.area_rng_lbl.len())
        .filter(|&a| p.area_rng_lbl[a] == s.area)
        .collect();
    let m_sel: Vec<usize> = (0..p.max_dets.len())
        .filter(|&m| p.max_dets[m] == s.max_dets)
        .collect();
    // numpy broadcasts the two index lists against each other.
    let pairs: Vec<(usize, usize)> = match (a_sel.len(), m_sel.len()) {
        (0, _) | (_, 0) => Vec::new(),
        (1, _) => m_sel.iter().map(|&m| (a_sel[0], m)).collect(),
        (_, 1) => a_sel.iter().map(|&a| (a, m_sel[0])).collect(),
        _ => a_sel.iter().copied().zip(m_sel.iter().copied()).collect(),
    };
    let mut vals = Vec::new();
    for &t in &ts {
        if s.ap {
            for r in 0..r_n {
                for k in 0..k_n {
                    for &(a, m) in &pairs {
                        vals.push(e.precision_at(t, r, k, a, m));
                    }
                }
            }
        } else {
            for k in 0..k_n {
                for &(a, m) in &pairs {
                    vals.push(e.recall_at(t, k, a, m));
                }
            }
        }
    }
    vals.retain(|&v| v > -1.0);
    if vals.is_empty() {
        -1.0
    } else {
        np_mean(&vals)
    }
}

/// The line pycocotools prints for one row, e.g.
/// ` Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 0.503`.
pub fn summary_line(p: &Params, s: &StatSpec, value: f64) -> String {
    let (title, kind) = if s.ap {
        ("Average Precision", "(AP)")
    } else {
        ("Average Recall", "(AR)")
    };
    let iou = match s.iou {
        Some(v) => format!("{v:.2}"),
        None => format!(
            "{:.2}:{:.2}",
            p.iou_thrs.first().copied().unwrap_or(f64::NAN),
            p.iou_thrs.last().copied().unwrap_or(f64::NAN)
        ),
    };
    format!(
        " {title:<18} {kind} @[ IoU={iou:<9} | area={:>6} | maxDets={:>3} ] = {value:.3}",
        s.area, s.max_dets
    )
}

/// Per-category AP (mean over thresholds) and AP at IoU 0.5, area "all", the largest
/// detection limit: `precision[:, :, k, 0, -1]` without the −1 cells (detectron2's
/// per-category table); −1 for a category with no ground truth.
pub fn class_ap(e: &Accumulated, p: &Params, k: usize) -> (f64, f64) {
    let [t_n, r_n, _, _, m_n] = e.dims;
    let a = p.area_rng_lbl.iter().position(|l| l == "all").unwrap_or(0);
    let m = m_n.saturating_sub(1);
    let mean_over = |ts: &mut dyn Iterator<Item = usize>| {
        let mut v = Vec::new();
        for t in ts {
            v.extend(
                (0..r_n)
                    .map(|r| e.precision_at(t, r, k, a, m))
                    .filter(|&x| x > -1.0),
            );
        }
        if v.is_empty() { -1.0 } else { np_mean(&v) }
    };
    let ap = mean_over(&mut (0..t_n));
    let ap50 = mean_over(&mut (0..t_n).filter(|&t| p.iou_thrs[t] == 0.5));
    (ap, ap50)
}

/// `np.mean` of a contiguous f64 array: numpy's pairwise sum divided by the length.
pub fn np_mean(v: &[f64]) -> f64 {
    pairwise_sum(v) / v.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairwise_sum_order_is_numpys() {
        // numpy: np.sum([1e16] + [1.0] * 15) == 1.0000000000000014e16 (8 accumulators:
        // 1e16 + 1 rounds back to 1e16, the other seven reach 2 each); a left-to-right sum
        // gives 1e16.
        let mut v = vec![1e16];
        v.extend([1.0; 15]);
        assert_eq!(pairwise_sum(&v), 1.0000000000000014e16);
        assert_eq!(np_mean(&v), 625000000000000.9);
        assert_eq!(np_mean(&[1.0, 2.0, 3.0, 4.0]), 2.5);
    }

    #[test]
    fn line_format() {
        let p = Params::new(super::super::IouType::Bbox);
        let sp = stat_specs(&p);
        assert_eq!(
            summary_line(&p, &sp[0], 0.5034),
            " Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 0.503"
        );
        assert_eq!(
            summary_line(&p, &sp[1], -1.0),
            " Average Precision  (AP) @[ IoU=0.50      | area=   all | maxDets=100 ] = -1.000"
        );
        assert_eq!(
            summary_line(&p, &sp[6], 0.25),
            " Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets=  1 ] = 0.250"
        );
        // Ties round half to even on the exact binary value, as Python's format does.
        assert_eq!(format!("{:.3}", 0.0625), "0.062");
        assert_eq!(format!("{:.3}", 0.1875), "0.188");
        assert_eq!(format!("{:.3}", 0.3125), "0.312");
    }
}
