//! The window bookkeeping of Swin on [B, H, W, C] maps: zero padding at the bottom/right,
//! the cyclic shift, window partition and its inverse, the shifted-window attention mask
//! and the relative-position index, all as transformers' SwinLayer computes them.
use crate::{DType, Result, Tensor};

/// Zero-pad [B, H, W, C] by `ph` rows at the bottom and `pw` columns at the right.
pub fn pad_bottom_right(x: &Tensor, ph: usize, pw: usize) -> Result<Tensor> {
    let (b, h, w, c) = (x.dims()[0], x.dims()[1], x.dims()[2], x.dims()[3]);
    let mut x = x.clone();
    if pw > 0 {
        x = Tensor::cat(&[&x, &Tensor::zeros([b, h, pw, c], x.dtype())], 2)?;
    }
    if ph > 0 {
        x = Tensor::cat(&[&x, &Tensor::zeros([b, ph, w + pw, c], x.dtype())], 1)?;
    }
    Ok(x)
}

/// torch.roll(x, shifts=(k, k), dims=(1, 2)) for a signed `k`.
pub fn roll_hw(x: &Tensor, k: isize) -> Result<Tensor> {
    let mut x = x.clone();
    for dim in [1usize, 2] {
        let n = x.dims()[dim];
        let s = k.rem_euclid(n as isize) as usize;
        if s == 0 {
            continue;
        }
        // out[i] = x[(i − s) mod n]: the last s entries come first.
        let head = x.narrow(dim as isize, n - s, s)?;
        let tail = x.narrow(dim as isize, 0, n - s)?;
        x = Tensor::cat(&[&head, &tail], dim as isize)?;
    }
    Ok(x)
}

/// [B, Hp, Wp, C] (multiples of `ws`) → [B·nW, ws·ws, C], windows in row-major order.
pub fn partition(x: &Tensor, ws: usize) -> Result<Tensor> {
    let (b, h, w, c) = (x.dims()[0], x.dims()[1], x.dims()[2], x.dims()[3]);
    x.reshape([b, h / ws, ws, w / ws, ws, c])?
        .permute(&[0, 1, 3, 2, 4, 5])?
        .reshape([b * (h / ws) * (w / ws), ws * ws, c])
}

/// Inverse of `partition`: [B·nW, ws·ws, C] → [B, Hp, Wp, C].
pub fn unpartition(win: &Tensor, ws: usize, h: usize, w: usize) -> Result<Tensor> {
    let c = win.dims()[2];
    let b = win.dims()[0] / ((h / ws) * (w / ws));
    win.reshape([b, h / ws, w / ws, ws, ws, c])?
        .permute(&[0, 1, 3, 2, 4, 5])?
        .reshape([b, h, w, c])
}

/// The shifted-window mask [nW, N, N]: 0 within a region, −100 across regions (the nine
/// regions the cyclic shift glues together), for a padded Hp × Wp map.
pub fn shift_mask(h: usize, w: usize, ws: usize, shift: usize) -> Result<Tensor> {
    let region =
        |i: usize, n: usize| (i >= n - ws.min(n)) as usize + (i >= n - shift.min(n)) as usize;
    let (nh, nw) = (h / ws, w / ws);
    let n = ws * ws;
    let mut out = Vec::with_capacity(nh * nw * n * n);
    for wy in 0..nh {
        for wx in 0..nw {
            let ids: Vec<usize> = (0..n)
                .map(|t| {
                    let (y, x) = (wy * ws + t / ws, wx * ws + t % ws);
                    region(y, h) * 3 + region(x, w)
                })
                .collect();
            for &a in &ids {
                for &bb in &ids {
                    out.push(if a == bb { 0.0f32 } else { -100.0 });
                }
            }
        }
    }
    Tensor::from_vec(out, [nh * nw, n, n])
}

/// Index into the (2ws−1)² relative-position table for every (query, key) pair of a
/// window, flattened [N·N] (transformers' relative_position_index).
pub fn relative_position_index(ws: usize) -> Result<Tensor> {
    let n = ws * ws;
    let mut idx = Vec::with_capacity(n * n);
    for i in 0..n {
        for j in 0..n {
            let dy = (i / ws) as isize - (j / ws) as isize + ws as isize - 1;
            let dx = (i % ws) as isize - (j % ws) as isize + ws as isize - 1;
            idx.push(dy as i64 * (2 * ws as i64 - 1) + dx as i64);
        }
    }
    Tensor::from_vec(idx, [n * n])?.to_dtype(DType::I64)
}
