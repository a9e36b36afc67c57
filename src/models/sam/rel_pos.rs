//! SAM's decomposed relative position bias (from MViTv2): for a query at (qy, qx) and a key
//! at (ky, kx), bias = q·Rh[qy − ky] + q·Rw[qx − kx], added to the attention scores.
use crate::{DType, Error, Result, Tensor};

/// Rows of `rel_pos` [L, C] for every (query, key) pair along one axis: [q, k, C].
/// `rel_pos` is linearly resized to 2·max(q, k) − 1 rows first when its length differs
/// (torch's F.interpolate(mode="linear"), which is the identity at equal length).
pub fn get_rel_pos(q: usize, k: usize, rel_pos: &Tensor) -> Result<Tensor> {
    let max_dist = 2 * q.max(k) - 1;
    let (l, c) = (rel_pos.dims()[0], rel_pos.dims()[1]);
    let table = if l == max_dist {
        rel_pos.clone()
    } else {
        if l == 0 {
            return Err(Error::msg("relative position table is empty"));
        }
        // [L, C] → [1, C, 1, L], resized along the last axis, → [max_dist, C].
        rel_pos
            .t()?
            .reshape([1, c, 1, l])?
            .upsample_bilinear2d((1, max_dist), false)?
            .reshape([c, max_dist])?
            .t()?
    };
    // Coordinates scaled to the longer side, as in torch (truncation, all values ≥ 0).
    let qs = (k as f64 / q as f64).max(1.0);
    let ks = (q as f64 / k as f64).max(1.0);
    let mut idx = Vec::with_capacity(q * k);
    for i in 0..q {
        for j in 0..k {
            idx.push((i as f64 * qs - j as f64 * ks + (k as f64 - 1.0) * ks) as i64);
        }
    }
    let idx = Tensor::from_vec(idx, [q * k])?;
    table.index_select(0, &idx)?.reshape([q, k, c])
}

/// The bias for queries `q` [N, qh·qw, C] (N = batch·heads, unscaled q as SAM uses it) on a
/// (qh, qw) grid attending to keys on a (kh, kw) grid: [N, qh·qw, kh·kw].
pub fn decomposed_rel_pos(
    q: &Tensor,
    rel_pos_h: &Tensor,
    rel_pos_w: &Tensor,
    (qh, qw): (usize, usize),
    (kh, kw): (usize, usize),
) -> Result<Tensor> {
    let (n, c) = (q.dims()[0], q.dims()[2]);
    if q.dtype() != DType::F32 && q.dtype() != DType::F64 {
        return Err(Error::msg("decomposed_rel_pos: q must be f32 or f64"));
    }
    let rh = get_rel_pos(qh, kh, rel_pos_h)?; // [qh, kh, C]
    let rw = get_rel_pos(qw, kw, rel_pos_w)?; // [qw, kw, C]
    let r_q = q.reshape([n, qh, qw, c])?;
    // einsum("bhwc,hkc->bhwk"): batch over the row index h.
    let rel_h = r_q
        .permute(&[1, 0, 2, 3])?
        .reshape([qh, n * qw, c])?
        .matmul(&rh.transpose(1, 2)?)? // [qh, n·qw, kh]
        .reshape([qh, n, qw, kh])?
        .permute(&[1, 0, 2, 3])?; // [n, qh, qw, kh]
    // einsum("bhwc,wkc->bhwk"): batch over the column index w.
    let rel_w = r_q
        .permute(&[2, 0, 1, 3])?
        .reshape([qw, n * qh, c])?
        .matmul(&rw.transpose(1, 2)?)? // [qw, n·qh, kw]
        .reshape([qw, n, qh, kw])?
        .permute(&[1, 2, 0, 3])?; // [n, qh, qw, kw]
    rel_h
        .reshape([n, qh, qw, kh, 1])?
        .add(&rel_w.reshape([n, qh, qw, 1, kw])?)?
        .reshape([n, qh * qw, kh * kw])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_follow_the_offset_rule() {
        // L = 2·3 − 1 rows, row r holds the value r: entry (i, j) must be i − j + 2.
        let table = Tensor::from_vec((0..5).map(|v| v as f32).collect::<Vec<_>>(), [5, 1]).unwrap();
        let r = get_rel_pos(3, 3, &table).unwrap().to_vec::<f32>().unwrap();
        let want: Vec<f32> = (0..3)
            .flat_map(|i| (0..3).map(move |j| (i - j + 2) as f32))
            .collect();
        assert_eq!(r, want);
    }

    #[test]
    fn resize_is_linear_half_pixel() {
        // 3 rows resized to the 5 that q = k = 3 needs: torch samples at (i+0.5)·3/5 − 0.5 =
        // −0.2 (clamped to 0), 0.4, 1.0, 1.6, 2.2 (last row), giving [0, 0.4, 1, 1.6, 2].
        let table = Tensor::from_vec(vec![0.0f32, 1.0, 2.0], [3, 1]).unwrap();
        let r = get_rel_pos(3, 3, &table).unwrap().to_vec::<f32>().unwrap();
        // entry (0, 0) uses row 2 of the resized table = 1.0; (2, 0) row 4 = 2.0; (0, 2) row 0 = 0.
        assert!((r[0] - 1.0).abs() < 1e-6, "{r:?}");
        assert!((r[6] - 2.0).abs() < 1e-6, "{r:?}");
        assert!((r[2] - 0.0).abs() < 1e-6, "{r:?}");
        assert!((r[1] - 0.4).abs() < 1e-6, "{r:?}");
    }
}
