//! 4-image mosaic (ultralytics `Mosaic`, n = 4): a `2s × 2s` canvas of grey 114, a random
//! centre `(xc, yc)` uniform in `[s/2, 3s/2)`, and the four samples placed top-left,
//! top-right, bottom-left, bottom-right of it, each cut where it crosses the canvas edge.
//! Instances move with their tile; those entirely cut away are removed (ultralytics
//! clips and drops zero-area boxes). The canvas is then brought back to `s × s` by the
//! affine step that follows mosaic in the pipeline (`T` centres the canvas at
//! `(0.5 ± translate)·s`), as ultralytics' `RandomPerspective(size=(s, s))` does.
use super::canvas::{Rect, place};
use crate::data::Sample;
use crate::tensor::Rng;
use image::{Rgb, RgbImage};

/// Where tile `i` (0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right) of a `w × h`
/// image goes: the source rectangle and its top-left corner on the canvas
/// (ultralytics' `x1a..y2b` arithmetic).
fn tile(i: usize, xc: i64, yc: i64, w: i64, h: i64, s2: i64) -> (Rect, u32, u32) {
    let (x1a, y1a, x2a, y2a, x1b, y1b) = match i {
        0 => {
            let (x1a, y1a) = ((xc - w).max(0), (yc - h).max(0));
            (x1a, y1a, xc, yc, w - (xc - x1a), h - (yc - y1a))
        }
        1 => {
            let (y1a, x2a) = ((yc - h).max(0), (xc + w).min(s2));
            (xc, y1a, x2a, yc, 0, h - (yc - y1a))
        }
        2 => {
            let (x1a, y2a) = ((xc - w).max(0), (yc + h).min(s2));
            (x1a, yc, xc, y2a, w - (xc - x1a), 0)
        }
        _ => (xc, yc, (xc + w).min(s2), (yc + h).min(s2), 0, 0),
    };
    let r = Rect {
        x: x1b.max(0) as u32,
        y: y1b.max(0) as u32,
        w: (x2a - x1a).max(0) as u32,
        h: (y2a - y1a).max(0) as u32,
    };
    (r, x1a.max(0) as u32, y1a.max(0) as u32)
}

/// Build the `2s × 2s` mosaic of `samples[0]` (the main one, whose id the result keeps)
/// and three others, any sizes. Returns it with the number of instances cut away.
pub fn mosaic4(samples: [Sample; 4], s: u32, rng: &mut Rng) -> (Sample, usize) {
    let s2 = 2 * s as i64;
    // ultralytics: border = -s // 2 (floor), centre = int(uniform(-border, 2s + border)).
    let border = (-(s as i64)).div_euclid(2);
    let lo = -border as f64;
    let hi = (s2 + border) as f64;
    let yc = (lo + (hi - lo) * rng.uniform()) as i64;
    let xc = (lo + (hi - lo) * rng.uniform()) as i64;
    let id = samples[0].id;
    let mut canvas = RgbImage::from_pixel(s2 as u32, s2 as u32, Rgb([114, 114, 114]));
    let mut instances = Vec::new();
    let mut removed = 0;
    for (i, smp) in samples.into_iter().enumerate() {
        let (r, dx, dy) = tile(i, xc, yc, smp.width() as i64, smp.height() as i64, s2);
        removed += place(smp, r, &mut canvas, dx, dy, &mut instances);
    }
    (
        Sample {
            id,
            image: canvas,
            instances,
        },
        removed,
    )
}
