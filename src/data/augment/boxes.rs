//! Box and mask bookkeeping shared by the transforms: tight boxes from masks, clipping,
//! ultralytics' `box_candidates` filter and `bbox_ioa`, and the input check every
//! transform runs first (masks the size of the image, finite boxes).
use crate::data::{Instance, Sample};
use crate::{Error, Result};
use image::GrayImage;

/// Tight box `[x0, y0, x1, y1]` of the nonzero pixels of `mask` (pixel `i` spans `i..i+1`),
/// or `None` for an empty mask.
pub fn mask_box(mask: &GrayImage) -> Option<[f32; 4]> {
    mask_box_in(mask, 0, 0, mask.width(), mask.height())
}

/// Any nonzero byte; 64 at a time so the OR vectorizes and empty rows cost little.
fn any_nonzero(bytes: &[u8]) -> bool {
    let mut blocks = bytes.chunks_exact(64);
    let hit = blocks
        .by_ref()
        .any(|b| b.iter().fold(0u8, |a, &v| a | v) != 0);
    hit || blocks.remainder().iter().any(|&v| v != 0)
}

/// Index of the first nonzero byte.
fn first_nonzero(row: &[u8]) -> Option<usize> {
    if !any_nonzero(row) {
        return None;
    }
    row.iter().position(|&v| v != 0)
}

/// Index of the last nonzero byte.
fn last_nonzero(row: &[u8]) -> Option<usize> {
    row.iter().rposition(|&v| v != 0)
}

/// Tight box of the nonzero pixels of `mask` inside the rectangle `x, y, w × h` (clamped to
/// the mask), in the mask's coordinates.
pub fn mask_box_in(mask: &GrayImage, x: u32, y: u32, w: u32, h: u32) -> Option<[f32; 4]> {
    let (mw, mh) = mask.dimensions();
    let (x0, y0) = (x.min(mw) as usize, y.min(mh) as usize);
    let (x1, y1) = (
        (x.saturating_add(w)).min(mw) as usize,
        (y.saturating_add(h)).min(mh) as usize,
    );
    if x0 >= x1 {
        return None;
    }
    let raw = mask.as_raw();
    let stride = mw as usize;
    let (mut lo, mut hi, mut top, mut bottom) = (usize::MAX, 0usize, usize::MAX, 0usize);
    for yy in y0..y1 {
        let row = &raw[yy * stride + x0..yy * stride + x1];
        if let Some(f) = first_nonzero(row) {
            lo = lo.min(f);
            hi = hi.max(last_nonzero(row).unwrap_or(f) + 1);
            top = top.min(yy);
            bottom = yy + 1;
        }
    }
    (lo != usize::MAX).then_some([
        (x0 + lo) as f32,
        top as f32,
        (x0 + hi) as f32,
        bottom as f32,
    ])
}

/// Number of nonzero pixels.
pub fn mask_area(mask: &GrayImage) -> usize {
    mask.as_raw().iter().filter(|&&v| v != 0).count()
}

/// Clip a box to the image `0..w × 0..h`.
pub fn clip_box(b: [f32; 4], w: u32, h: u32) -> [f32; 4] {
    let (w, h) = (w as f32, h as f32);
    [
        b[0].clamp(0.0, w),
        b[1].clamp(0.0, h),
        b[2].clamp(0.0, w),
        b[3].clamp(0.0, h),
    ]
}

/// Width × height, zero for inverted boxes.
pub fn box_area(b: [f32; 4]) -> f32 {
    (b[2] - b[0]).max(0.0) * (b[3] - b[1]).max(0.0)
}

/// Intersection of `a` and `b` over the area of `b` (ultralytics `bbox_ioa`, eps 1e-7).
pub fn bbox_ioa(a: [f32; 4], b: [f32; 4]) -> f32 {
    let iw = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let ih = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    iw * ih / (box_area(b) + 1e-7)
}

/// ultralytics `RandomPerspective.box_candidates` (wh_thr 2 px, ar_thr 100): keep a box whose
/// sides exceed 2 px, whose aspect ratio stays under 100 and whose area is more than
/// `area_thr` of `before` (the pre-transform box already multiplied by the affine scale).
/// ultralytics uses `area_thr` 0.01 when segments exist and 0.10 for boxes only.
pub fn box_candidate(before: [f32; 4], after: [f32; 4], area_thr: f32) -> bool {
    const EPS: f32 = 1e-16;
    let (w1, h1) = (before[2] - before[0], before[3] - before[1]);
    let (w2, h2) = (after[2] - after[0], after[3] - after[1]);
    let ar = (w2 / (h2 + EPS)).max(h2 / (w2 + EPS));
    w2 > 2.0 && h2 > 2.0 && w2 * h2 / (w1 * h1 + EPS) > area_thr && ar < 100.0
}

/// The area threshold ultralytics applies to an instance: 0.01 with a mask, 0.10 without.
pub fn area_threshold(inst: &Instance) -> f32 {
    if inst.mask.is_some() { 0.01 } else { 0.10 }
}

/// Recompute an instance's box after its mask changed; `false` when the mask is now empty
/// (the caller removes the instance). Box-only instances are clipped and kept if their box
/// still has area.
pub fn refresh_box(inst: &mut Instance, w: u32, h: u32) -> bool {
    match &inst.mask {
        Some(m) => match mask_box(m) {
            Some(b) => {
                inst.bbox = b;
                true
            }
            None => false,
        },
        None => {
            inst.bbox = clip_box(inst.bbox, w, h);
            box_area(inst.bbox) > 0.0
        }
    }
}

/// Reject a sample the transforms cannot work on: a mask of another size than the image, or
/// a box with a non-finite coordinate. Names the image id and the instance index.
pub fn check_sample(s: &Sample, op: &'static str) -> Result<()> {
    for (i, inst) in s.instances.iter().enumerate() {
        if let Some(m) = &inst.mask
            && m.dimensions() != s.image.dimensions()
        {
            return Err(Error::Shape {
                op,
                msg: format!(
                    "image id {}, instance {i}: mask is {}x{} but the image is {}x{}",
                    s.id,
                    m.width(),
                    m.height(),
                    s.width(),
                    s.height()
                ),
            });
        }
        if inst.bbox.iter().any(|v| !v.is_finite()) {
            return Err(Error::Shape {
                op,
                msg: format!(
                    "image id {}, instance {i}: box {:?} has a non-finite coordinate",
                    s.id, inst.bbox
                ),
            });
        }
    }
    Ok(())
}
