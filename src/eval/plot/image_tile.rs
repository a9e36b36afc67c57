//! One image with ground-truth and predicted boxes/masks drawn over it, as an SVG with the
//! pixels embedded as PNG data URIs. Boxes are SVG rects in the image's own pixel
//! coordinates (the viewBox), so a thumbnail keeps them exact.
use super::encode::png_data_uri;
use super::svg::{escape, fmt_num, text_width};
use super::{CLASS_COLORS, class_color};
use crate::{Error, Result};
use image::{GrayImage, RgbImage, imageops};
use std::fmt::Write;

/// Whether an overlay is a label (drawn dashed) or a model output (drawn solid).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OverlayKind {
    Truth,
    Prediction,
}

/// A box, with an optional mask, to draw over an image.
#[derive(Clone, Debug)]
pub struct Overlay {
    pub kind: OverlayKind,
    /// Class index, picks the colour.
    pub class: usize,
    /// Text shown at the box (class name); the score is appended for predictions.
    pub label: String,
    pub score: Option<f64>,
    /// `[x, y, w, h]` in image pixels (COCO convention).
    pub bbox: [f64; 4],
    /// Non-zero pixels are the mask; must have the image's size.
    pub mask: Option<GrayImage>,
}

/// An image and what to draw on it.
#[derive(Clone, Debug)]
pub struct ImageTile {
    /// Caption (file name or image id).
    pub name: String,
    pub image: RgbImage,
    pub overlays: Vec<Overlay>,
}

/// Alpha of mask fills (0..255).
const MASK_ALPHA: u8 = 110;

impl ImageTile {
    /// The tile as an `<svg>` at most `max_side` pixels on its longer side (the image is
    /// downscaled for the page; boxes stay in full-resolution coordinates).
    pub fn to_svg(&self, max_side: u32) -> Result<String> {
        let (w, h) = self.image.dimensions();
        if w == 0 || h == 0 {
            return Err(Error::msg(format!(
                "image {:?} is empty (0 pixels)",
                self.name
            )));
        }
        for (i, ov) in self.overlays.iter().enumerate() {
            if !ov.bbox.iter().all(|v| v.is_finite()) || ov.score.is_some_and(|s| !s.is_finite()) {
                return Err(Error::msg(format!(
                    "image {:?}, overlay {i} ({}): non-finite box {:?} or score {:?}",
                    self.name, ov.label, ov.bbox, ov.score
                )));
            }
            if let Some(m) = &ov.mask
                && m.dimensions() != (w, h)
            {
                return Err(Error::Shape {
                    op: "ImageTile",
                    msg: format!(
                        "image {:?}, overlay {i} ({}): mask is {}×{} but the image is {w}×{h}",
                        self.name,
                        ov.label,
                        m.width(),
                        m.height()
                    ),
                });
            }
        }
        let scale = (f64::from(max_side.max(16)) / f64::from(w.max(h))).min(1.0);
        let tw = ((f64::from(w) * scale).round() as u32).max(1);
        let th = ((f64::from(h) * scale).round() as u32).max(1);
        let thumb = if (tw, th) == (w, h) {
            self.image.clone()
        } else {
            imageops::resize(&self.image, tw, th, imageops::FilterType::Triangle)
        };
        let n = fmt_num;
        let mut o = String::new();
        let _ = write!(
            o,
            r#"<svg xmlns="http://www.w3.org/2000/svg" class="tile" width="{tw}" height="{th}" viewBox="0 0 {w} {h}" font-family="sans-serif">"#
        );
        let _ = write!(o, "<title>{}</title>", escape(&self.name));
        let _ = write!(
            o,
            r#"<image x="0" y="0" width="{w}" height="{h}" preserveAspectRatio="none" href="{}"/>"#,
            png_data_uri(thumb.as_raw(), tw, th, 3)?
        );
        if let Some(layer) = self.mask_layer(tw, th) {
            let _ = write!(
                o,
                r#"<image class="masks" x="0" y="0" width="{w}" height="{h}" preserveAspectRatio="none" href="{}"/>"#,
                png_data_uri(&layer, tw, th, 4)?
            );
        }
        // Lengths in display pixels, converted to image pixels.
        let px = |v: f64| v / scale;
        let font = px(11.0);
        // Truth first so predictions are drawn on top.
        let mut order: Vec<&Overlay> = self.overlays.iter().collect();
        order.sort_by_key(|ov| ov.kind == OverlayKind::Prediction);
        for ov in order {
            let [x, y, bw, bh] = ov.bbox;
            let color = class_color(ov.class);
            let [r, g, b] = CLASS_COLORS[ov.class % CLASS_COLORS.len()].map(f64::from);
            // Dark text on light tabs (yellow, pink), white on dark ones.
            let ink = if 0.299 * r + 0.587 * g + 0.114 * b > 150.0 {
                "#000"
            } else {
                "#fff"
            };
            let dash = match ov.kind {
                OverlayKind::Truth => {
                    format!(r#" stroke-dasharray="{} {}""#, n(px(5.0)), n(px(3.0)))
                }
                OverlayKind::Prediction => String::new(),
            };
            let text = match ov.score {
                Some(s) => format!("{} {s:.2}", ov.label),
                None => ov.label.clone(),
            };
            let kind = if ov.kind == OverlayKind::Truth {
                "truth"
            } else {
                "pred"
            };
            let _ = write!(
                o,
                r#"<g class="{kind}"><title>{}</title><rect x="{}" y="{}" width="{}" height="{}" fill="none" stroke="{color}" stroke-width="{}"{dash}/>"#,
                escape(&text),
                n(x),
                n(y),
                n(bw),
                n(bh),
                n(px(2.0))
            );
            if ov.kind == OverlayKind::Prediction {
                // Label on a coloured tab above the box (inside it when at the top edge).
                let (lw, lh) = (text_width(&text, font) + px(4.0), font + px(3.0));
                let ly = if y - lh >= 0.0 { y - lh } else { y };
                let lx = x.min(f64::from(w) - lw).max(0.0); // keep the tab inside the image
                let _ = write!(
                    o,
                    r#"<rect x="{}" y="{}" width="{}" height="{}" fill="{color}"/><text x="{}" y="{}" font-size="{}" fill="{ink}">{}</text>"#,
                    n(lx),
                    n(ly),
                    n(lw),
                    n(lh),
                    n(lx + px(2.0)),
                    n(ly + font),
                    n(font),
                    escape(&text)
                );
            }
            o.push_str("</g>");
        }
        o.push_str("</svg>");
        Ok(o)
    }

    /// All masks painted into one RGBA layer at thumbnail size (nearest-neighbour), or
    /// `None` when no overlay has a mask.
    fn mask_layer(&self, tw: u32, th: u32) -> Option<Vec<u8>> {
        let masks: Vec<(&GrayImage, usize)> = self
            .overlays
            .iter()
            .filter_map(|ov| ov.mask.as_ref().map(|m| (m, ov.class)))
            .collect();
        if masks.is_empty() {
            return None;
        }
        let mut layer = vec![0u8; tw as usize * th as usize * 4];
        for (m, class) in masks {
            let [r, g, b] = CLASS_COLORS[class % CLASS_COLORS.len()];
            let (mw, mh) = m.dimensions();
            for ty in 0..th {
                let sy = ((u64::from(ty) * 2 + 1) * u64::from(mh) / (2 * u64::from(th)))
                    .min(u64::from(mh - 1)) as u32;
                for tx in 0..tw {
                    let sx = ((u64::from(tx) * 2 + 1) * u64::from(mw) / (2 * u64::from(tw)))
                        .min(u64::from(mw - 1)) as u32;
                    if m.get_pixel(sx, sy).0[0] != 0 {
                        let i = (ty as usize * tw as usize + tx as usize) * 4;
                        layer[i..i + 4].copy_from_slice(&[r, g, b, MASK_ALPHA]);
                    }
                }
            }
        }
        Some(layer)
    }
}
