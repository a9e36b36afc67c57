//! Box IoU matrices in the three conventions users compare against:
//! - [`box_iou`]: torchvision's `box_iou` on xyxy boxes in f64 (the accurate one);
//! - [`box_iou_ultralytics`]: ultralytics' `utils.metrics.box_iou` bit for bit — float32
//!   arithmetic, `eps = 1e-7` in the denominator — which its validator thresholds, so the
//!   ultralytics-style summary uses it to make the same match decisions;
//! - [`box_iou_coco`]: pycocotools' `maskUtils.iou` on xywh boxes with `iscrowd` (maskApi's
//!   `bbIou`), in f64.
//!
//! Every result is row-major `[a.len(), b.len()]`. IoU is symmetric in its two box sets
//! (min/max and the area sum are exact or commutative), so `box_iou_ultralytics(dt, gt)` is
//! ultralytics' `box_iou(gt, dt)` transposed, bit for bit.
use rayon::prelude::*;

/// Pairs from which the matrix is filled in parallel (below, one thread is faster).
const PAR_MIN_PAIRS: usize = 1 << 16;

fn fill<T: Send + Copy + Default>(
    n: usize,
    m: usize,
    row: impl Fn(usize, &mut [T]) + Sync + Send,
) -> Vec<T> {
    let mut out = vec![T::default(); n * m];
    if m == 0 {
        return out;
    }
    if n * m >= PAR_MIN_PAIRS {
        out.par_chunks_mut(m)
            .enumerate()
            .for_each(|(i, r)| row(i, r));
    } else {
        out.chunks_mut(m).enumerate().for_each(|(i, r)| row(i, r));
    }
    out
}

/// IoU of xyxy boxes `a[i]` × `b[j]` in f64, torchvision's formula
/// `inter / (area_a + area_b − inter)` with the intersection's sides clamped at 0. Where
/// the union is not positive (two degenerate boxes) the IoU is 0, not torchvision's NaN.
pub fn box_iou(a: &[[f64; 4]], b: &[[f64; 4]]) -> Vec<f64> {
    fill(a.len(), b.len(), |i, row| {
        let p = a[i];
        let area_p = (p[2] - p[0]) * (p[3] - p[1]);
        for (o, q) in row.iter_mut().zip(b) {
            let w = (p[2].min(q[2]) - p[0].max(q[0])).max(0.0);
            let h = (p[3].min(q[3]) - p[1].max(q[1])).max(0.0);
            let inter = w * h;
            let union = area_p + (q[2] - q[0]) * (q[3] - q[1]) - inter;
            *o = if union > 0.0 { inter / union } else { 0.0 };
        }
    })
}

/// ultralytics 8.4.190 `box_iou(a, b)` exactly: the boxes are rounded to f32 (`.float()`),
/// then, each step rounded to f32 as torch's eager ops do,
/// `wh = (min(a2, b2) − max(a1, b1)).clamp(0)`, `inter = wh.x·wh.y`,
/// `iou = inter / (((area_a + area_b) − inter) + 1e-7)`.
pub fn box_iou_ultralytics(a: &[[f64; 4]], b: &[[f64; 4]]) -> Vec<f32> {
    const EPS: f32 = 1e-7;
    let f = |q: &[f64; 4]| q.map(|v| v as f32);
    let b32: Vec<[f32; 4]> = b.iter().map(f).collect();
    fill(a.len(), b.len(), |i, row| {
        let p = f(&a[i]);
        let area_p = (p[2] - p[0]) * (p[3] - p[1]);
        for (o, q) in row.iter_mut().zip(&b32) {
            // torch.min/max and clamp_(0): exact; f32::min/max agree on non-NaN input.
            let w = (p[2].min(q[2]) - p[0].max(q[0])).max(0.0);
            let h = (p[3].min(q[3]) - p[1].max(q[1])).max(0.0);
            let inter = w * h;
            let area_q = (q[2] - q[0]) * (q[3] - q[1]);
            *o = inter / (((area_p + area_q) - inter) + EPS);
        }
    })
}

/// pycocotools `maskUtils.iou(dt, gt, iscrowd)` on boxes (maskApi `bbIou`): boxes are COCO
/// `[x, y, w, h]`; pairs that do not overlap with positive width and height are 0; for a
/// crowd `gt[j]` the union is the area of `dt[i]` alone. Result `[dt.len(), gt.len()]`.
/// `gt_crowd` shorter than `gt` counts the missing flags as not crowd (pycocotools takes
/// a flag per gt; callers pass one).
pub fn box_iou_coco(dt: &[[f64; 4]], gt: &[[f64; 4]], gt_crowd: &[bool]) -> Vec<f64> {
    fill(dt.len(), gt.len(), |i, row| {
        let d = dt[i];
        let da = d[2] * d[3];
        for (j, (o, g)) in row.iter_mut().zip(gt).enumerate() {
            // Same operations, in the same order, as bbIou.
            let w = (d[2] + d[0]).min(g[2] + g[0]) - d[0].max(g[0]);
            if w <= 0.0 {
                continue;
            }
            let h = (d[3] + d[1]).min(g[3] + g[1]) - d[1].max(g[1]);
            if h <= 0.0 {
                continue;
            }
            let inter = w * h;
            let u = if gt_crowd.get(j).copied().unwrap_or(false) {
                da
            } else {
                da + g[2] * g[3] - inter
            };
            *o = inter / u;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_example() {
        // 2×2 at the origin vs 2×2 shifted by 1 in x: inter 2, union 6.
        let a = [[0.0, 0.0, 2.0, 2.0]];
        let b = [[1.0, 0.0, 3.0, 2.0], [5.0, 5.0, 6.0, 6.0]];
        assert_eq!(box_iou(&a, &b), vec![2.0 / 6.0, 0.0]);
        let u = box_iou_ultralytics(&a, &b);
        assert_eq!(u[0], 2.0f32 / (6.0f32 + 1e-7));
        assert_eq!(u[1], 0.0);
    }
}
