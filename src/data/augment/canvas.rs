//! Pasting a rectangle of one sample onto a larger or smaller canvas, instances included:
//! the building block of mosaic tiles and of fitting a partner sample to the main one's
//! size before mixup or copy-paste.
use super::boxes::{box_area, mask_box_in};
use crate::data::{Instance, Sample};
use image::{GrayImage, RgbImage};

/// A rectangle in pixels: `x, y` top-left, `w × h`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rect {
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
}

/// Copy `src_rect` of a `ch`-channel buffer (row width `src_w`) to `(dx, dy)` of `dst`
/// (row width `dst_w`). The caller keeps both rectangles inside their buffers.
fn copy_rect(
    src: &[u8],
    src_w: u32,
    dst: &mut [u8],
    dst_w: u32,
    ch: usize,
    r: Rect,
    (dx, dy): (u32, u32),
) {
    let row = r.w as usize * ch;
    for j in 0..r.h as usize {
        let s = ((r.y as usize + j) * src_w as usize + r.x as usize) * ch;
        let d = ((dy as usize + j) * dst_w as usize + dx as usize) * ch;
        if let (Some(from), Some(to)) = (src.get(s..s + row), dst.get_mut(d..d + row)) {
            to.copy_from_slice(from);
        }
    }
}

/// Paste `src_rect` of `s` at `(dx, dy)` on `canvas`, and append `s`'s instances, moved by
/// the same offset, to `out`: masks become canvas-sized (only the pasted part survives),
/// boxes come from the pasted mask or are clipped to the pasted rectangle. Instances with
/// nothing left are dropped; returns how many. `src_rect` and the destination are clamped
/// to the two images, so a rectangle partly outside is cut, never a panic.
pub fn place(
    s: Sample,
    src_rect: Rect,
    canvas: &mut RgbImage,
    dx: u32,
    dy: u32,
    out: &mut Vec<Instance>,
) -> usize {
    let (cw, chh) = canvas.dimensions();
    let x = src_rect.x.min(s.width());
    let y = src_rect.y.min(s.height());
    let w = src_rect.w.min(s.width() - x).min(cw.saturating_sub(dx));
    let h = src_rect.h.min(s.height() - y).min(chh.saturating_sub(dy));
    let r = Rect { x, y, w, h };
    let sw = s.width();
    copy_rect(s.image.as_raw(), sw, canvas, cw, 3, r, (dx, dy));
    let (ox, oy) = (dx as f32 - x as f32, dy as f32 - y as f32);
    let (lo_x, lo_y, hi_x, hi_y) = (dx as f32, dy as f32, (dx + w) as f32, (dy + h) as f32);
    let mut removed = 0;
    for inst in s.instances {
        let moved = match &inst.mask {
            Some(m) => {
                // The box of the pasted part, found on the (smaller) source rectangle.
                mask_box_in(m, r.x, r.y, r.w, r.h).map(|b| {
                    let mut nm = GrayImage::new(cw, chh);
                    copy_rect(m.as_raw(), sw, &mut nm, cw, 1, r, (dx, dy));
                    ([b[0] + ox, b[1] + oy, b[2] + ox, b[3] + oy], Some(nm))
                })
            }
            None => {
                let b = inst.bbox;
                let b = [
                    (b[0] + ox).clamp(lo_x, hi_x),
                    (b[1] + oy).clamp(lo_y, hi_y),
                    (b[2] + ox).clamp(lo_x, hi_x),
                    (b[3] + oy).clamp(lo_y, hi_y),
                ];
                (box_area(b) > 0.0).then_some((b, None))
            }
        };
        match moved {
            Some((bbox, mask)) => out.push(Instance { bbox, mask, ..inst }),
            None => removed += 1,
        }
    }
    removed
}

/// Crop or pad `s` to `w × h`, anchored top-left, padding with grey 114. Returns the sample
/// and how many instances fell outside.
pub fn fit_to(s: Sample, w: u32, h: u32) -> (Sample, usize) {
    if s.image.dimensions() == (w, h) {
        return (s, 0);
    }
    let id = s.id;
    let mut image = RgbImage::from_pixel(w, h, image::Rgb([114, 114, 114]));
    let mut instances = Vec::new();
    let r = Rect {
        x: 0,
        y: 0,
        w: s.width(),
        h: s.height(),
    };
    let removed = place(s, r, &mut image, 0, 0, &mut instances);
    (
        Sample {
            id,
            image,
            instances,
        },
        removed,
    )
}
