//! Raster overlays for `ed-predict --save-overlay`: translucent class-coloured masks, box
//! outlines and `name score` labels drawn straight into an [`RgbImage`]. Text uses a built-in
//! 5×7 bitmap font (upper-case letters, digits and a little punctuation; lower case is
//! drawn as upper case, anything else as `?`), so no font file or crate is needed.
use super::CLASS_COLORS;
use crate::models::yolov8::postprocess::{CropMask, Prediction};
use image::{Rgb, RgbImage};

const GLYPH_W: u32 = 5;
const GLYPH_H: u32 = 7;

/// Rows of a glyph, bit 4 = leftmost column.
fn glyph(c: char) -> [u8; 7] {
    match c.to_ascii_uppercase() {
        '0' => [0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E],
        '1' => [0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E],
        '2' => [0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F],
        '3' => [0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E],
        '4' => [0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02],
        '5' => [0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E],
        '6' => [0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E],
        '7' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
        '8' => [0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E],
        '9' => [0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C],
        'A' => [0x0E, 0x11, 0x11, 0x11, 0x1F, 0x11, 0x11],
        'B' => [0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E],
        'C' => [0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E],
        'D' => [0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C],
        'E' => [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F],
        'F' => [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10],
        'G' => [0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F],
        'H' => [0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11],
        'I' => [0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E],
        'J' => [0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C],
        'K' => [0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11],
        'L' => [0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F],
        'M' => [0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11],
        'N' => [0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11],
        'O' => [0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E],
        'P' => [0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10],
        'Q' => [0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D],
        'R' => [0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11],
        'S' => [0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E],
        'T' => [0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04],
        'U' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E],
        'V' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04],
        'W' => [0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A],
        'X' => [0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11],
        'Y' => [0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04],
        'Z' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F],
        ' ' => [0; 7],
        '.' => [0, 0, 0, 0, 0, 0x0C, 0x0C],
        ',' => [0, 0, 0, 0, 0x0C, 0x04, 0x08],
        '-' => [0, 0, 0, 0x1F, 0, 0, 0],
        '_' => [0, 0, 0, 0, 0, 0, 0x1F],
        ':' => [0, 0x0C, 0x0C, 0, 0x0C, 0x0C, 0],
        '/' => [0, 0x01, 0x02, 0x04, 0x08, 0x10, 0],
        '%' => [0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03],
        '(' => [0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02],
        ')' => [0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08],
        _ => [0x0E, 0x11, 0x01, 0x02, 0x04, 0, 0x04],
    }
}

/// The colour of class `i` (ultralytics' palette).
pub fn class_rgb(i: usize) -> [u8; 3] {
    CLASS_COLORS[i % CLASS_COLORS.len()]
}

/// `(width, height)` in pixels of `text` drawn at `scale` (1 px gap between glyphs).
pub fn text_size(text: &str, scale: u32) -> (u32, u32) {
    let n = text.chars().count() as u32;
    let w = if n == 0 { 0 } else { n * (GLYPH_W + 1) - 1 };
    (w * scale, GLYPH_H * scale)
}

fn put(img: &mut RgbImage, x: i64, y: i64, c: [u8; 3]) {
    if x >= 0
        && y >= 0
        && (x as u64) < u64::from(img.width())
        && (y as u64) < u64::from(img.height())
    {
        img.put_pixel(x as u32, y as u32, Rgb(c));
    }
}

/// Draw `text` with its top-left corner at `(x, y)`; pixels outside the image are skipped.
pub fn draw_text(img: &mut RgbImage, x: i64, y: i64, text: &str, color: [u8; 3], scale: u32) {
    let s = i64::from(scale.max(1));
    for (i, ch) in text.chars().enumerate() {
        let gx = x + i as i64 * i64::from(GLYPH_W + 1) * s;
        for (row, bits) in glyph(ch).iter().enumerate() {
            for col in 0..GLYPH_W {
                if bits >> (GLYPH_W - 1 - col) & 1 == 1 {
                    for dy in 0..s {
                        for dx in 0..s {
                            put(
                                img,
                                gx + i64::from(col) * s + dx,
                                y + row as i64 * s + dy,
                                color,
                            );
                        }
                    }
                }
            }
        }
    }
}

/// Fill `[x0, y0, x1, y1)` (clipped to the image) with `color`.
pub fn fill_rect(img: &mut RgbImage, [x0, y0, x1, y1]: [i64; 4], color: [u8; 3]) {
    let (w, h) = (i64::from(img.width()), i64::from(img.height()));
    for y in y0.max(0)..y1.min(h) {
        for x in x0.max(0)..x1.min(w) {
            img.put_pixel(x as u32, y as u32, Rgb(color));
        }
    }
}

/// Outline the box `[x0, y0, x1, y1]` (pixel coordinates, as predicted) with lines
/// `thickness` pixels wide drawn inside it.
pub fn draw_box(img: &mut RgbImage, b: [f32; 4], color: [u8; 3], thickness: u32) {
    let [x0, y0, x1, y1] = b.map(|v| if v.is_finite() { v.round() as i64 } else { 0 });
    let t = i64::from(thickness.max(1));
    fill_rect(img, [x0, y0, x1, y0 + t], color);
    fill_rect(img, [x0, y1 - t, x1, y1], color);
    fill_rect(img, [x0, y0, x0 + t, y1], color);
    fill_rect(img, [x1 - t, y0, x1, y1], color);
}

/// Blend `color` at opacity `alpha` (0..1) into the pixels where `mask` is set. A mask of
/// another size than the image is skipped where it falls outside.
pub fn fill_mask(img: &mut RgbImage, mask: &CropMask, color: [u8; 3], alpha: f32) {
    let [x0, y0, x1, y1] = mask.rect;
    let rw = x1.saturating_sub(x0) as usize;
    let a = alpha.clamp(0.0, 1.0);
    for y in y0..y1.min(img.height()) {
        for x in x0..x1.min(img.width()) {
            let i = (y - y0) as usize * rw + (x - x0) as usize;
            if mask.data.get(i).is_some_and(|&v| v != 0) {
                let p = img.get_pixel_mut(x, y);
                for (ch, c) in p.0.iter_mut().zip(color) {
                    *ch = (f32::from(*ch) * (1.0 - a) + f32::from(c) * a).round() as u8;
                }
            }
        }
    }
}

/// A filled label box with `text` in white, its bottom-left at the box's top-left corner
/// when there is room above, else inside the box.
pub fn draw_label(img: &mut RgbImage, x: i64, y: i64, text: &str, bg: [u8; 3], scale: u32) {
    let (tw, th) = text_size(text, scale);
    let pad = i64::from(scale.max(1));
    let (bw, bh) = (i64::from(tw) + 2 * pad, i64::from(th) + 2 * pad);
    let top = if y - bh >= 0 { y - bh } else { y };
    let left = x.clamp(0, (i64::from(img.width()) - bw).max(0));
    fill_rect(img, [left, top, left + bw, top + bh], bg);
    draw_text(img, left + pad, top + pad, text, [255, 255, 255], scale);
}

/// Draw a prediction over its image: masks (alpha 0.5), then boxes and `name score`
/// labels, one colour per class. Sizes grow with the image (ultralytics' line width rule
/// `max(round((h + w) / 2 · 0.003), 2)`).
pub fn draw_prediction(img: &mut RgbImage, pred: &Prediction, names: &[String]) {
    let lw = (((img.width() + img.height()) as f32 / 2.0 * 0.003).round() as u32).max(2);
    let scale = (lw / 2).max(1);
    for (k, m) in pred.masks.iter().enumerate() {
        let c = pred.classes.get(k).copied().unwrap_or(0);
        fill_mask(img, m, class_rgb(c), 0.5);
    }
    for (k, b) in pred.boxes.iter().enumerate() {
        let c = pred.classes.get(k).copied().unwrap_or(0);
        draw_box(img, *b, class_rgb(c), lw);
    }
    for (k, b) in pred.boxes.iter().enumerate() {
        let c = pred.classes.get(k).copied().unwrap_or(0);
        let name = names
            .get(c)
            .map_or_else(|| format!("class{c}"), |n| n.clone());
        let score = pred.scores.get(k).copied().unwrap_or(0.0);
        let text = format!("{name} {score:.2}");
        let [x0, y0, ..] = b.map(|v| if v.is_finite() { v.round() as i64 } else { 0 });
        draw_label(img, x0, y0, &text, class_rgb(c), scale);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_boxes_masks_and_text() {
        let mut img = RgbImage::from_pixel(40, 30, Rgb([0, 0, 0]));
        draw_box(&mut img, [5.0, 5.0, 20.0, 15.0], [255, 0, 0], 1);
        assert_eq!(img.get_pixel(5, 10).0, [255, 0, 0]);
        assert_eq!(img.get_pixel(10, 10).0, [0, 0, 0]);
        let mut m = CropMask::empty(40, 30);
        m.rect = [10, 8, 12, 10];
        m.data = vec![1, 0, 1, 1];
        fill_mask(&mut img, &m, [200, 100, 0], 0.5);
        assert_eq!(img.get_pixel(10, 8).0, [100, 50, 0]);
        assert_eq!(img.get_pixel(11, 8).0, [0, 0, 0]);
        assert_eq!(text_size("AB", 2), (22, 14));
        let mut t = RgbImage::new(12, 8);
        draw_text(&mut t, 0, 0, "1", [9, 9, 9], 1);
        // '1' top row is 0x04: only the middle column.
        assert_eq!(t.get_pixel(2, 0).0, [9, 9, 9]);
        assert_eq!(t.get_pixel(1, 0).0, [0, 0, 0]);
        // Nothing panics off the image.
        draw_text(&mut t, -3, 6, "WWW", [1, 1, 1], 3);
        draw_box(&mut t, [f32::NAN, -5.0, 100.0, 100.0], [1, 1, 1], 2);
    }
}
