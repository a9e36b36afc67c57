//! A heatmap with row/column labels and numbers in the cells (the confusion matrix).
use super::svg::{escape, fmt_num, text_width, truncate};
use crate::{Error, Result};
use std::fmt::Write;

/// matplotlib's "Blues" (9 stops), light for 0, dark for 1.
const BLUES: [[f64; 3]; 9] = [
    [247.0, 251.0, 255.0],
    [222.0, 235.0, 247.0],
    [198.0, 219.0, 239.0],
    [158.0, 202.0, 225.0],
    [107.0, 174.0, 214.0],
    [66.0, 146.0, 198.0],
    [33.0, 113.0, 181.0],
    [8.0, 81.0, 156.0],
    [8.0, 48.0, 107.0],
];
const LABEL_CHARS: usize = 18;

/// Colour for `v` in [0, 1] (clamped) on the Blues scale.
pub(crate) fn blues(v: f64) -> String {
    let t = v.clamp(0.0, 1.0) * (BLUES.len() - 1) as f64;
    let i = (t.floor() as usize).min(BLUES.len() - 2);
    let f = t - i as f64;
    let c: Vec<u8> = (0..3)
        .map(|k| (BLUES[i][k] + (BLUES[i + 1][k] - BLUES[i][k]) * f).round() as u8)
        .collect();
    format!("#{:02x}{:02x}{:02x}", c[0], c[1], c[2])
}

/// Cells coloured by `values[row][col]` (0..1; non-finite = blank) and labelled with `text`.
#[derive(Clone, Debug)]
pub struct Heatmap {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub col_names: Vec<String>,
    pub row_names: Vec<String>,
    pub values: Vec<Vec<f64>>,
    /// Cell annotations, same shape as `values`; shown when the cells are big enough.
    pub text: Vec<Vec<String>>,
    /// Target width of the whole SVG in pixels; cells shrink to fit (down to 8 px).
    pub max_width: f64,
}

impl Heatmap {
    /// The heatmap as a standalone `<svg>` element. Shapes must agree.
    pub fn to_svg(&self) -> Result<String> {
        let (nr, nc) = (self.row_names.len(), self.col_names.len());
        let bad = |msg: String| Error::Shape { op: "Heatmap", msg };
        if self.values.len() != nr || self.text.len() != nr {
            return Err(bad(format!(
                "{nr} row names, {} value rows, {} text rows",
                self.values.len(),
                self.text.len()
            )));
        }
        for (r, (v, t)) in self.values.iter().zip(&self.text).enumerate() {
            if v.len() != nc || t.len() != nc {
                return Err(bad(format!(
                    "row {r}: {} values and {} texts for {nc} columns",
                    v.len(),
                    t.len()
                )));
            }
        }
        let name_w = |names: &[String]| {
            names
                .iter()
                .map(|s| text_width(&truncate(s, LABEL_CHARS), 11.0))
                .fold(0.0, f64::max)
        };
        let left = 28.0 + name_w(&self.row_names) + 6.0;
        let scale_w = 60.0;
        let cell = ((self.max_width - left - scale_w) / nc.max(1) as f64).clamp(8.0, 56.0);
        let top = 34.0;
        // Column names are rotated 45°, so they need about 0.71× their length below the grid.
        let below = name_w(&self.col_names) * 0.71 + 14.0 + 24.0;
        let (gw, gh) = (cell * nc as f64, cell * nr as f64);
        let (w, h) = (left + gw + scale_w, top + gh + below);
        let n = fmt_num;
        let font = (cell * 0.36).min(12.0);

        let mut o = String::new();
        let _ = write!(
            o,
            r#"<svg xmlns="http://www.w3.org/2000/svg" class="heatmap" width="{}" height="{}" viewBox="0 0 {} {}" font-family="sans-serif" font-size="11">"#,
            n(w),
            n(h),
            n(w),
            n(h)
        );
        let _ = write!(o, "<title>{}</title>", escape(&self.title));
        let _ = write!(
            o,
            r#"<text x="{}" y="20" text-anchor="middle" font-size="14" font-weight="bold">{}</text>"#,
            n(w / 2.0),
            escape(&self.title)
        );
        for (r, row) in self.values.iter().enumerate() {
            for (c, &v) in row.iter().enumerate() {
                let (x, y) = (left + c as f64 * cell, top + r as f64 * cell);
                let fill = if v.is_finite() {
                    blues(v)
                } else {
                    "#ffffff".into()
                };
                let tip = format!(
                    "{} → {}: {}",
                    self.row_names[r], self.col_names[c], self.text[r][c]
                );
                let _ = write!(
                    o,
                    r##"<rect class="cell" x="{}" y="{}" width="{}" height="{}" fill="{fill}" stroke="#fff" stroke-width="0.5"><title>{}</title></rect>"##,
                    n(x),
                    n(y),
                    n(cell),
                    n(cell),
                    escape(&tip)
                );
                let t = &self.text[r][c];
                if cell >= 20.0 && !t.is_empty() {
                    let ink = if v.is_finite() && v > 0.5 {
                        "#fff"
                    } else {
                        "#222"
                    };
                    let _ = write!(
                        o,
                        r#"<text x="{}" y="{}" text-anchor="middle" font-size="{}" fill="{ink}">{}</text>"#,
                        n(x + cell / 2.0),
                        n(y + cell / 2.0 + font * 0.35),
                        n(font),
                        escape(t)
                    );
                }
            }
        }
        for (r, name) in self.row_names.iter().enumerate() {
            let y = top + (r as f64 + 0.5) * cell + 4.0;
            let _ = write!(
                o,
                r#"<text x="{}" y="{}" text-anchor="end"><title>{}</title>{}</text>"#,
                n(left - 5.0),
                n(y),
                escape(name),
                escape(&truncate(name, LABEL_CHARS))
            );
        }
        for (c, name) in self.col_names.iter().enumerate() {
            let (x, y) = (left + (c as f64 + 0.5) * cell, top + gh + 10.0);
            let _ = write!(
                o,
                r#"<text x="{0}" y="{1}" text-anchor="end" transform="rotate(-45 {0} {1})"><title>{2}</title>{3}</text>"#,
                n(x),
                n(y),
                escape(name),
                escape(&truncate(name, LABEL_CHARS))
            );
        }
        let _ = write!(
            o,
            r#"<text x="{}" y="{}" text-anchor="middle" font-size="12">{}</text>"#,
            n(left + gw / 2.0),
            n(h - 8.0),
            escape(&self.x_label)
        );
        let (yx, yy) = (14.0, top + gh / 2.0);
        let _ = write!(
            o,
            r#"<text x="{0}" y="{1}" text-anchor="middle" font-size="12" transform="rotate(-90 {0} {1})">{2}</text>"#,
            n(yx),
            n(yy),
            escape(&self.y_label)
        );
        // Colour scale: 10 steps from 1 (top) to 0 (bottom).
        let (sx, sh) = (left + gw + 14.0, gh.min(200.0) / 10.0);
        for k in 0..10 {
            let v = 1.0 - k as f64 / 9.0;
            let _ = write!(
                o,
                r#"<rect x="{}" y="{}" width="12" height="{}" fill="{}"/>"#,
                n(sx),
                n(top + k as f64 * sh),
                n(sh + 0.5),
                blues(v)
            );
        }
        let _ = write!(
            o,
            r#"<text x="{}" y="{}">1</text>"#,
            n(sx + 16.0),
            n(top + 8.0)
        );
        let _ = write!(
            o,
            r#"<text x="{}" y="{}">0</text>"#,
            n(sx + 16.0),
            n(top + 10.0 * sh)
        );
        o.push_str("</svg>");
        Ok(o)
    }
}
