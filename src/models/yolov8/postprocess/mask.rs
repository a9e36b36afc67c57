//! ultralytics 8.4 `ops.process_mask(protos, coefs, boxes, shape, upsample=True)`, the
//! predictor's default (`retina_masks=False`): logits `coefs · protos` at prototype
//! resolution, bilinear upsample to the input size (align_corners False, [`super::interp`]),
//! `> 0` (sigmoid > 0.5), then crop to the box: pixel column `x` survives when
//! `x0 ≤ x < x1` (f32 compare), rows alike. 8.4 upsamples *before* cropping (#24272).
//!
//! We compute only inside the box, where the result can be nonzero, and keep each mask as
//! a [`CropMask`] (its box-sized window), so 300 detections at 640² do not need 120 MB.
//! The logits' dot product is accumulated in f64; torch's BLAS order differs, so a pixel
//! whose upsampled logit is within ~1e-6 of 0 may differ (none in our fixtures).
use super::interp::{Tap, axis_taps, lerp};
use super::nms::Detections;
use crate::{Error, Result, Tensor};
use image::GrayImage;
use rayon::prelude::*;

/// A binary (0/1) mask of a `width`×`height` image that is zero outside `rect`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CropMask {
    pub width: u32,
    pub height: u32,
    /// `[x0, y0, x1, y1)` in pixels, inside the image.
    pub rect: [u32; 4],
    /// Row-major values inside `rect`, 0 or 1.
    pub data: Vec<u8>,
}

impl CropMask {
    /// An all-zero mask.
    pub fn empty(width: u32, height: u32) -> Self {
        CropMask {
            width,
            height,
            ..Default::default()
        }
    }
    /// The value at `(x, y)` (0 outside the image).
    pub fn get(&self, x: u32, y: u32) -> u8 {
        let [x0, y0, x1, y1] = self.rect;
        if x < x0 || x >= x1 || y < y0 || y >= y1 {
            return 0;
        }
        let i = (y - y0) as usize * (x1 - x0) as usize + (x - x0) as usize;
        self.data.get(i).copied().unwrap_or(0)
    }
    /// Pixels set.
    pub fn area(&self) -> u64 {
        self.data.iter().map(|&v| v as u64).sum()
    }
    /// No pixel set (ultralytics' predictor drops such detections).
    pub fn is_empty(&self) -> bool {
        self.data.iter().all(|&v| v == 0)
    }
    /// The whole mask, row-major `height × width`, 0/1.
    pub fn to_full(&self) -> Vec<u8> {
        let (w, h) = (self.width as usize, self.height as usize);
        let mut out = vec![0u8; w * h];
        let [x0, y0, x1, _] = self.rect.map(|v| v as usize);
        let rw = x1 - x0;
        if rw > 0 {
            for (r, row) in self.data.chunks_exact(rw).enumerate() {
                let s = (y0 + r) * w + x0;
                out[s..s + rw].copy_from_slice(row);
            }
        }
        out
    }
    /// The whole mask as an image with values 0/1.
    pub fn to_gray(&self) -> GrayImage {
        GrayImage::from_raw(self.width, self.height, self.to_full()).unwrap_or_default()
    }
}

/// Pixel range `[lo, hi)` of `0..n` with `lo_f ≤ i < hi_f` (the reference's crop compare;
/// NaN gives an empty range).
pub(crate) fn crop_range(lo_f: f32, hi_f: f32, n: usize) -> (usize, usize) {
    let nf = n as f32;
    let lo = if lo_f.is_nan() {
        nf
    } else {
        lo_f.ceil().clamp(0.0, nf)
    };
    let hi = if hi_f.is_nan() {
        0.0
    } else {
        hi_f.ceil().clamp(0.0, nf)
    };
    let (lo, hi) = (lo as usize, hi as usize);
    (lo, hi.max(lo))
}

/// Masks at the model input size `input_hw` = (h, w), one per detection, from `proto`
/// `[nm, mh, mw]` (or `[1, nm, mh, mw]`) and each detection's box and coefficients. Errors
/// when `nm` differs from the coefficients' length or a size is zero.
pub fn process_mask(
    proto: &Tensor,
    dets: &Detections,
    input_hw: (usize, usize),
) -> Result<Vec<CropMask>> {
    let dims = proto.dims();
    let (nm, mh, mw) = match *dims {
        [nm, mh, mw] | [1, nm, mh, mw] => (nm, mh, mw),
        _ => {
            return Err(Error::msg(format!(
                "process_mask: proto must be [nm, mh, mw], got {}",
                proto.shape()
            )));
        }
    };
    let (h, w) = input_hw;
    if let Some(c) = dets.coefs.iter().find(|c| c.len() != nm) {
        return Err(Error::msg(format!(
            "process_mask: proto has {nm} prototypes but a detection has {} coefficients",
            c.len()
        )));
    }
    if dets.boxes.len() != dets.coefs.len() {
        return Err(Error::msg(
            "process_mask: boxes and coefficients differ in count",
        ));
    }
    if nm == 0 || mh == 0 || mw == 0 || h == 0 || w == 0 {
        return Err(Error::msg(format!(
            "process_mask: empty proto {} or input size {h}x{w}",
            proto.shape()
        )));
    }
    let (w32, h32) = (
        u32::try_from(w).map_err(|_| Error::msg("process_mask: input too wide"))?,
        u32::try_from(h).map_err(|_| Error::msg("process_mask: input too tall"))?,
    );
    let p = proto.contiguous()?.to_vec_f32()?;
    let (ty, tx) = (axis_taps(mh, h), axis_taps(mw, w));
    let planes = Planes { p: &p, nm, mw };
    Ok(dets
        .boxes
        .par_iter()
        .zip(dets.coefs.par_iter())
        .map(|(b, c)| {
            let (x0, x1) = crop_range(b[0], b[2], w);
            let (y0, y1) = crop_range(b[1], b[3], h);
            if x0 == x1 || y0 == y1 {
                return CropMask::empty(w32, h32);
            }
            let data = one_mask(&planes, c, &ty[y0..y1], &tx[x0..x1]);
            CropMask {
                width: w32,
                height: h32,
                rect: [x0, y0, x1, y1].map(|v| v as u32),
                data,
            }
        })
        .collect())
}

/// Prototype planes `[nm, mh, mw]`, row-major.
struct Planes<'a> {
    p: &'a [f32],
    nm: usize,
    mw: usize,
}

/// One mask over the output window whose row/column taps are `ty`/`tx` (non-empty).
fn one_mask(pl: &Planes, coef: &[f32], ty: &[Tap], tx: &[Tap]) -> Vec<u8> {
    // Prototype window the taps read: rows r0..=r1, columns c0..=c1.
    let (r0, r1) = (ty[0].i0, ty[ty.len() - 1].i1);
    let (c0, c1) = (tx[0].i0, tx[tx.len() - 1].i1);
    let (pw, plane) = (c1 - c0 + 1, pl.p.len() / pl.nm);
    // Logits of the window, then each of its rows interpolated along x.
    let mut hrows = vec![0f32; (r1 - r0 + 1) * tx.len()];
    let mut logit = vec![0f64; pw];
    for (r, hrow) in (r0..=r1).zip(hrows.chunks_exact_mut(tx.len())) {
        logit.fill(0.0);
        for (m, &cm) in coef.iter().enumerate() {
            let row = &pl.p[m * plane + r * pl.mw + c0..][..pw];
            for (l, &v) in logit.iter_mut().zip(row) {
                *l += cm as f64 * v as f64;
            }
        }
        for (o, t) in hrow.iter_mut().zip(tx) {
            *o = lerp(logit[t.i0 - c0] as f32, logit[t.i1 - c0] as f32, t);
        }
    }
    let mut out = Vec::with_capacity(ty.len() * tx.len());
    for t in ty {
        let a = &hrows[(t.i0 - r0) * tx.len()..][..tx.len()];
        let b = &hrows[(t.i1 - r0) * tx.len()..][..tx.len()];
        out.extend(
            a.iter()
                .zip(b)
                .map(|(&u, &v)| u8::from(lerp(u, v, t) > 0.0)),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crop_range_follows_the_compare() {
        assert_eq!(crop_range(1.5, 4.0, 10), (2, 4));
        assert_eq!(crop_range(-3.0, 12.2, 10), (0, 10));
        assert_eq!(crop_range(5.0, 2.0, 10), (5, 5));
        assert_eq!(crop_range(f32::NAN, 2.0, 10), (10, 10));
    }

    #[test]
    fn constant_proto_fills_the_box() {
        // One prototype of ones, coefficient 1: logit 1 everywhere; the box crops it.
        let proto = Tensor::from_vec(vec![1.0f32; 16], [1, 4, 4]).unwrap();
        let d = Detections {
            boxes: vec![[2.5, 1.0, 9.0, 4.0], [20.0, 20.0, 30.0, 30.0]],
            scores: vec![0.9, 0.8],
            classes: vec![0, 0],
            coefs: vec![vec![1.0], vec![1.0]],
            anchors: vec![0, 1],
        };
        let m = process_mask(&proto, &d, (16, 16)).unwrap();
        assert_eq!(m[0].rect, [3, 1, 9, 4]);
        assert_eq!(m[0].area(), 18);
        assert!(m[1].is_empty() && m[1].to_full().len() == 256);
        assert_eq!(m[0].get(3, 1) + m[0].get(2, 1) + m[0].get(8, 3), 2);
        let bad = Detections {
            coefs: vec![vec![1.0, 2.0], vec![1.0]],
            ..d
        };
        assert!(process_mask(&proto, &bad, (16, 16)).is_err());
    }
}
