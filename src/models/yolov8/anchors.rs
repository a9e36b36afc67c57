//! Anchor points and the distance ↔ box conversions (ultralytics `utils/tal.py`), shared by
//! the head's decode and the loss.
use crate::{Result, Tensor};

/// Anchor centres as three columns — x + offset, y + offset (grid units) and the level's
/// stride — level after level, row-major within a level: the plain values behind
/// `make_anchors`, for the eval decode and the CUDA engine.
pub fn anchor_columns(sizes: &[(usize, usize)], strides: &[f32], offset: f32) -> [Vec<f32>; 3] {
    let total: usize = sizes.iter().map(|(h, w)| h * w).sum();
    let mut cols = [
        Vec::with_capacity(total),
        Vec::with_capacity(total),
        Vec::with_capacity(total),
    ];
    for (&(h, w), &s) in sizes.iter().zip(strides) {
        for y in 0..h {
            for x in 0..w {
                cols[0].push(x as f32 + offset);
                cols[1].push(y as f32 + offset);
                cols[2].push(s);
            }
        }
    }
    cols
}

/// Anchor centres `(x + offset, y + offset)` in grid units, level after level, row-major
/// within a level (`[A, 2]` f32), and each anchor's stride (`[A, 1]` f32): ultralytics
/// `make_anchors` for feature maps of `sizes` (h, w) with `strides`.
pub fn make_anchors(
    sizes: &[(usize, usize)],
    strides: &[f32],
    offset: f32,
) -> Result<(Tensor, Tensor)> {
    if sizes.len() != strides.len() {
        return Err(crate::Error::msg(format!(
            "make_anchors: {} feature sizes but {} strides",
            sizes.len(),
            strides.len()
        )));
    }
    let [ax, ay, stride] = anchor_columns(sizes, strides, offset);
    let total = stride.len();
    let points: Vec<f32> = ax.iter().zip(&ay).flat_map(|(&x, &y)| [x, y]).collect();
    Ok((
        Tensor::from_vec(points, [total, 2])?,
        Tensor::from_vec(stride, [total, 1])?,
    ))
}

/// ultralytics `dist2bbox`: distances (left, top, right, bottom) along `dim` (size 4) from
/// `anchor_points` (broadcastable, same layout with 2 along `dim`) to boxes, as xywh
/// (centre, size) or xyxy. Differentiable.
pub fn dist2bbox(
    distance: &Tensor,
    anchor_points: &Tensor,
    xywh: bool,
    dim: isize,
) -> Result<Tensor> {
    let lt_rb = distance.chunk(2, dim)?;
    let x1y1 = anchor_points.sub(&lt_rb[0])?;
    let x2y2 = anchor_points.add(&lt_rb[1])?;
    if xywh {
        let c = x1y1.add(&x2y2)?.mul_scalar(0.5)?;
        let wh = x2y2.sub(&x1y1)?;
        Tensor::cat(&[&c, &wh], dim)
    } else {
        Tensor::cat(&[&x1y1, &x2y2], dim)
    }
}

/// ultralytics `bbox2dist`: xyxy boxes (last dim 4) to (left, top, right, bottom) distances
/// from `anchor_points` (last dim 2), clamped to `[0, reg_max - 0.01]`.
pub fn bbox2dist(anchor_points: &Tensor, bbox: &Tensor, reg_max: f32) -> Result<Tensor> {
    let xy = bbox.chunk(2, -1)?;
    let lt = anchor_points.sub(&xy[0])?;
    let rb = xy[1].sub(anchor_points)?;
    Tensor::cat(&[&lt, &rb], -1)?.clamp(0.0, reg_max as f64 - 0.01)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchors_are_cell_centres_level_by_level() {
        let (p, s) = make_anchors(&[(2, 3), (1, 1)], &[8.0, 16.0], 0.5).unwrap();
        assert_eq!(p.dims(), &[7, 2]);
        let p = p.to_vec_f32().unwrap();
        assert_eq!(&p[..6], &[0.5, 0.5, 1.5, 0.5, 2.5, 0.5]);
        assert_eq!(&p[6..8], &[0.5, 1.5]);
        assert_eq!(&p[12..], &[0.5, 0.5]);
        assert_eq!(s.to_vec_f32().unwrap(), vec![8., 8., 8., 8., 8., 8., 16.]);
        assert!(make_anchors(&[(1, 1)], &[8.0, 16.0], 0.5).is_err());
    }

    #[test]
    fn dist2bbox_and_bbox2dist_invert_each_other() {
        let a = Tensor::from_vec(vec![4.0f32, 5.0], [1, 2]).unwrap();
        let d = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 1.5], [1, 4]).unwrap();
        let xyxy = dist2bbox(&d, &a, false, -1).unwrap();
        assert_eq!(xyxy.to_vec_f32().unwrap(), vec![3.0, 3.0, 7.0, 6.5]);
        let xywh = dist2bbox(&d, &a, true, -1).unwrap();
        assert_eq!(xywh.to_vec_f32().unwrap(), vec![5.0, 4.75, 4.0, 3.5]);
        let back = bbox2dist(&a, &xyxy, 16.0).unwrap();
        assert_eq!(back.to_vec_f32().unwrap(), vec![1.0, 2.0, 3.0, 1.5]);
        let clamped = bbox2dist(&a, &xyxy, 2.0).unwrap().to_vec_f32().unwrap();
        assert!((clamped[2] - 1.99).abs() < 1e-6 && clamped[0] == 1.0);
    }
}
