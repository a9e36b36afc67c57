//! Cutout occlusion (the YOLOv5 `cutout` idea, DeVries & Taylor 2017): paint a few random
//! rectangles of random grey-ish colour over the image, so objects are seen partly hidden.
//! Masks lose the covered pixels and their boxes are recomputed. An instance more than
//! 60 % hidden is removed (YOLOv5's rule: for a box-only instance, one patch covering
//! more than 60 % of its box; for a masked one, less than 40 % of its mask pixels left)
//! and counted.
use super::boxes::{bbox_ioa, mask_area, refresh_box};
use crate::data::Sample;
use crate::tensor::Rng;
use crate::{Error, Result};
use image::{GrayImage, Rgb};
use serde::{Deserialize, Serialize};

/// Up to `max_patches` rectangles, each side a fraction in `[min(0.05, max_size), max_size]`
/// of the image side.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CutoutParams {
    pub max_patches: u32,
    pub max_size: f32,
}

impl CutoutParams {
    /// `max_patches` 1..=16, `max_size` in (0, 1].
    pub fn validate(&self) -> Result<()> {
        if (1..=16).contains(&self.max_patches)
            && self.max_size.is_finite()
            && self.max_size > 0.0
            && self.max_size <= 1.0
        {
            Ok(())
        } else {
            Err(Error::msg(format!(
                "cutout: {self:?} out of range (max_patches 1..=16, max_size in (0, 1])"
            )))
        }
    }
}

/// Paint the patches; returns the sample and how many instances were hidden and removed.
pub fn cutout(mut s: Sample, p: &CutoutParams, rng: &mut Rng) -> (Sample, usize) {
    let (w, h) = s.image.dimensions();
    if w == 0 || h == 0 {
        return (s, 0);
    }
    let lo = (p.max_size as f64).min(0.05);
    let hi = p.max_size as f64;
    let n = 1 + rng.below(p.max_patches.max(1) as u64) as u32;
    let mut patches = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let side = |rng: &mut Rng, len: u32| {
            (((lo + (hi - lo) * rng.uniform()) * len as f64).round() as u32).clamp(1, len)
        };
        let (pw, ph) = (side(rng, w), side(rng, h));
        let x = rng.below((w - pw + 1) as u64) as u32;
        let y = rng.below((h - ph + 1) as u64) as u32;
        let c = [(); 3].map(|_| 64 + rng.below(128) as u8);
        for yy in y..y + ph {
            for xx in x..x + pw {
                s.image.put_pixel(xx, yy, Rgb(c));
            }
        }
        patches.push([x, y, x + pw, y + ph]);
    }
    let mut kept = Vec::with_capacity(s.instances.len());
    let mut removed = 0;
    for mut inst in std::mem::take(&mut s.instances) {
        let (visible, changed) = match &mut inst.mask {
            Some(m) => {
                let before = mask_area(m);
                for pt in &patches {
                    clear_rect(m, *pt);
                }
                let after = mask_area(m);
                (
                    after > 0 && after as f64 >= 0.4 * before as f64,
                    after != before,
                )
            }
            None => {
                let hidden = patches
                    .iter()
                    .any(|pt| bbox_ioa(pt.map(|v| v as f32), inst.bbox) > 0.6);
                (!hidden, false)
            }
        };
        if visible && (!changed || refresh_box(&mut inst, w, h)) {
            kept.push(inst);
        } else {
            removed += 1;
        }
    }
    s.instances = kept;
    (s, removed)
}

/// Zero `[x0, y0, x1, y1)` of a mask, clamped to the mask.
fn clear_rect(m: &mut GrayImage, r: [u32; 4]) {
    let (w, h) = m.dimensions();
    let (x0, x1) = (r[0].min(w) as usize, r[2].min(w) as usize);
    let buf: &mut [u8] = m;
    for y in r[1].min(h)..r[3].min(h) {
        let row = y as usize * w as usize;
        if let Some(px) = buf.get_mut(row + x0..row + x1) {
            px.fill(0);
        }
    }
}
