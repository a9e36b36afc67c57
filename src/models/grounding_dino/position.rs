//! Grounding DINO's fixed geometry: the sine position embedding of each feature map (with
//! its padding mask), the sinusoidal encoding of anchor boxes and text positions, valid
//! ratios, the encoder's reference points and the two-stage proposals. All of it is
//! constant with respect to the weights, so it is computed on plain vectors in f64 and
//! handed over as f32 tensors.
use crate::{Result, Tensor};
use std::f64::consts::PI;

/// A padding mask of one feature level: `valid[b][y·w + x]`.
#[derive(Clone, Debug)]
pub struct LevelMask {
    pub h: usize,
    pub w: usize,
    pub valid: Vec<Vec<bool>>,
}

impl LevelMask {
    /// `F.interpolate(pixel_mask, size=(h, w))` (nearest): source index ⌊i · in / out⌋.
    pub fn resize(pixel: &LevelMask, h: usize, w: usize) -> LevelMask {
        let (sy, sx) = (pixel.h as f32 / h as f32, pixel.w as f32 / w as f32);
        let valid = pixel
            .valid
            .iter()
            .map(|m| {
                let mut out = Vec::with_capacity(h * w);
                for y in 0..h {
                    let iy = ((y as f32 * sy).floor() as usize).min(pixel.h - 1);
                    for x in 0..w {
                        let ix = ((x as f32 * sx).floor() as usize).min(pixel.w - 1);
                        out.push(m[iy * pixel.w + ix]);
                    }
                }
                out
            })
            .collect();
        LevelMask { h, w, valid }
    }
    /// (valid width / w, valid height / h) per image, from the first row and column.
    pub fn valid_ratio(&self) -> Vec<(f64, f64)> {
        self.valid
            .iter()
            .map(|m| {
                let vh = (0..self.h).filter(|&y| m[y * self.w]).count();
                let vw = (0..self.w).filter(|&x| m[x]).count();
                (vw as f64 / self.w as f64, vh as f64 / self.h as f64)
            })
            .collect()
    }
}

/// `temperature^(2⌊i/2⌋/n)` for i in 0..n, as torch computes it in f32.
fn dim_t(n: usize, temperature: f64) -> Vec<f64> {
    (0..n)
        .map(|i| (temperature as f32).powf((2 * (i / 2)) as f32 / n as f32) as f64)
        .collect()
}

/// GroundingDinoSinePositionEmbedding for one level → [B, h·w, d_model] (pos_y then pos_x
/// channels, each interleaved sin/cos), normalised by the cumulative mask.
pub fn sine_image(mask: &LevelMask, d_model: usize, temperature: f64) -> Result<Tensor> {
    let (h, w) = (mask.h, mask.w);
    let half = d_model / 2;
    let dt = dim_t(half, temperature);
    let scale = 2.0 * PI;
    let mut out = Vec::with_capacity(mask.valid.len() * h * w * d_model);
    for m in &mask.valid {
        // cumsum down columns (y) and along rows (x), as float32 counts.
        let mut ye = vec![0f64; h * w];
        let mut xe = vec![0f64; h * w];
        for y in 0..h {
            for x in 0..w {
                let v = m[y * w + x] as u8 as f64;
                ye[y * w + x] = v + if y > 0 { ye[(y - 1) * w + x] } else { 0.0 };
                xe[y * w + x] = v + if x > 0 { xe[y * w + x - 1] } else { 0.0 };
            }
        }
        let eps = 1e-6;
        for y in 0..h {
            for x in 0..w {
                let yv = ye[y * w + x] / (ye[(h - 1) * w + x] + eps) * scale;
                let xv = xe[y * w + x] / (xe[y * w + w - 1] + eps) * scale;
                for v in [yv, xv] {
                    for (i, d) in dt.iter().enumerate() {
                        let a = v / d;
                        out.push(if i % 2 == 0 { a.sin() } else { a.cos() } as f32);
                    }
                }
            }
        }
    }
    Tensor::from_vec(out, [mask.valid.len(), h * w, d_model])
}

/// encode_sinusoidal_position_embedding (temperature 10000): each coordinate of `pos`
/// [n, k] → `feats` interleaved sin/cos values; x and y swapped when k ≥ 2. → [n, k·feats].
pub fn encode_sinusoidal(pos: &[f64], k: usize, feats: usize) -> Vec<f32> {
    let dt = dim_t(feats, 10000.0);
    let scale = 2.0 * PI;
    let mut out = Vec::with_capacity(pos.len() * feats);
    for row in pos.chunks(k) {
        let mut order: Vec<usize> = (0..k).collect();
        if k >= 2 {
            order.swap(0, 1);
        }
        for &c in &order {
            let v = row[c] as f32 as f64 * scale;
            for (i, d) in dt.iter().enumerate() {
                let a = v / d;
                out.push(if i % 2 == 0 { a.sin() } else { a.cos() } as f32);
            }
        }
    }
    out
}

/// The encoder's reference points [B, S, L, 2]: every cell centre of every level,
/// normalised by the valid region, then scaled into each level's valid ratio.
pub fn encoder_reference_points(
    levels: &[LevelMask],
    ratios: &[Vec<(f64, f64)>],
) -> Result<Tensor> {
    let b = levels[0].valid.len();
    let nl = levels.len();
    let s: usize = levels.iter().map(|l| l.h * l.w).sum();
    let mut out = Vec::with_capacity(b * s * nl * 2);
    for bi in 0..b {
        for (li, lv) in levels.iter().enumerate() {
            let (rw, rh) = ratios[li][bi];
            for y in 0..lv.h {
                for x in 0..lv.w {
                    let ry = (y as f64 + 0.5) / (rh * lv.h as f64);
                    let rx = (x as f64 + 0.5) / (rw * lv.w as f64);
                    for r in ratios.iter().take(nl) {
                        let (vw, vh) = r[bi];
                        out.push((rx * vw) as f32);
                        out.push((ry * vh) as f32);
                    }
                }
            }
        }
    }
    Tensor::from_vec(out, [b, s, nl, 2])
}

/// generate_encoder_output_proposals without the learned part: per token the proposal's
/// logit (cx, cy, w, h) — +inf where the token is padding or the proposal leaves
/// (0.01, 0.99) — and whether it is kept. → ([B, S, 4] logits, [B·S] kept).
pub fn proposals(levels: &[LevelMask]) -> Result<(Tensor, Vec<bool>)> {
    let b = levels[0].valid.len();
    let s: usize = levels.iter().map(|l| l.h * l.w).sum();
    let mut logits = Vec::with_capacity(b * s * 4);
    let mut keep = Vec::with_capacity(b * s);
    for bi in 0..b {
        for (li, lv) in levels.iter().enumerate() {
            let m = &lv.valid[bi];
            let vh = (0..lv.h).filter(|&y| m[y * lv.w]).count() as f32;
            let vw = (0..lv.w).filter(|&x| m[x]).count() as f32;
            let wh = 0.05f32 * 2f32.powi(li as i32);
            for y in 0..lv.h {
                for x in 0..lv.w {
                    let p = [(x as f32 + 0.5) / vw, (y as f32 + 0.5) / vh, wh, wh];
                    let ok = m[y * lv.w + x] && p.iter().all(|&v| v > 0.01 && v < 0.99);
                    keep.push(ok);
                    for v in p {
                        logits.push(if ok {
                            (v / (1.0 - v)).ln()
                        } else {
                            f32::INFINITY
                        });
                    }
                }
            }
        }
    }
    Ok((Tensor::from_vec(logits, [b, s, 4])?, keep))
}
