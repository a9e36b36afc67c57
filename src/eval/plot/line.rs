//! Line charts: axes with round ticks, grid, title, axis labels, several series, legend.
use super::LINE_COLORS;
use super::svg::{escape, fmt_num, nice_ticks, text_width, tick_label, truncate};
use crate::{Error, Result};
use std::fmt::Write;

/// Space left of the plot area (tick labels, y label), in pixels.
pub const MARGIN_LEFT: f64 = 64.0;
/// Space right of the plot area (before the legend, if any).
pub const MARGIN_RIGHT: f64 = 16.0;
/// Space above the plot area (title).
pub const MARGIN_TOP: f64 = 32.0;
/// Space below the plot area (tick labels, x label).
pub const MARGIN_BOTTOM: f64 = 46.0;
const FONT: f64 = 12.0;
const LEGEND_ROW: f64 = 16.0;
const LEGEND_CHARS: usize = 30;

/// One line: `y[i]` against `x[i]`. Non-finite values break the line (a gap, not a zero).
#[derive(Clone, Debug)]
pub struct Series {
    pub name: String,
    pub x: Vec<f64>,
    pub y: Vec<f64>,
    /// CSS colour; `None` takes the next colour of [`LINE_COLORS`].
    pub color: Option<String>,
    pub stroke_width: f64,
    pub dashed: bool,
    pub in_legend: bool,
}

impl Series {
    /// A 1.5 px solid line in the next palette colour, listed in the legend.
    pub fn new(name: impl Into<String>, x: Vec<f64>, y: Vec<f64>) -> Self {
        Series {
            name: name.into(),
            x,
            y,
            color: None,
            stroke_width: 1.5,
            dashed: false,
            in_legend: true,
        }
    }
}

/// A line chart. Ranges default to the data, widened to round ticks.
#[derive(Clone, Debug)]
pub struct LineChart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<Series>,
    pub x_range: Option<(f64, f64)>,
    pub y_range: Option<(f64, f64)>,
    pub width: f64,
    pub height: f64,
    /// An extra grey line under the legend entries (e.g. "80 classes in grey").
    pub legend_note: Option<String>,
}

impl LineChart {
    /// An empty 560×360 chart.
    pub fn new(
        title: impl Into<String>,
        x_label: impl Into<String>,
        y_label: impl Into<String>,
    ) -> Self {
        LineChart {
            title: title.into(),
            x_label: x_label.into(),
            y_label: y_label.into(),
            series: Vec::new(),
            x_range: None,
            y_range: None,
            width: 560.0,
            height: 360.0,
            legend_note: None,
        }
    }

    fn data_range(&self, pick: impl Fn(&Series) -> &[f64]) -> (f64, f64) {
        let finite = self
            .series
            .iter()
            .flat_map(|s| pick(s).iter())
            .filter(|v| v.is_finite());
        finite.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        })
    }

    /// Width of the legend column right of the plot area (0 when nothing is listed).
    fn legend_width(&self) -> f64 {
        let names = self
            .series
            .iter()
            .filter(|s| s.in_legend)
            .map(|s| truncate(&s.name, LEGEND_CHARS));
        let note = self.legend_note.iter().map(|n| truncate(n, LEGEND_CHARS));
        let widest = names
            .chain(note)
            .map(|n| text_width(&n, 11.0))
            .fold(0.0, f64::max);
        if widest == 0.0 { 0.0 } else { widest + 34.0 }
    }

    /// The chart as a standalone `<svg>` element.
    pub fn to_svg(&self) -> Result<String> {
        for s in &self.series {
            if s.x.len() != s.y.len() {
                return Err(Error::Shape {
                    op: "LineChart",
                    msg: format!(
                        "series {:?}: {} x values but {} y values",
                        s.name,
                        s.x.len(),
                        s.y.len()
                    ),
                });
            }
        }
        let (w, h) = (self.width, self.height);
        let legend_w = self.legend_width();
        let (px0, py0) = (MARGIN_LEFT, MARGIN_TOP);
        let pw = w - MARGIN_LEFT - MARGIN_RIGHT - legend_w;
        let ph = h - MARGIN_TOP - MARGIN_BOTTOM;
        if !(pw >= 40.0 && ph >= 40.0) {
            return Err(Error::msg(format!(
                "LineChart {:?}: {w}×{h} px leaves no room to plot",
                self.title
            )));
        }
        let axis = |which: &str, fixed: Option<(f64, f64)>, data: (f64, f64)| {
            let ticks = match fixed {
                Some((lo, hi)) if lo < hi => nice_ticks(lo, hi, 5, false),
                Some(_) => None,
                None if data.0.is_finite() => nice_ticks(data.0, data.1, 5, true),
                None => nice_ticks(0.0, 1.0, 5, false), // no data at all: an empty unit frame
            };
            ticks.ok_or_else(|| {
                let range = fixed.unwrap_or(data);
                Error::msg(format!(
                    "LineChart {:?}: cannot draw the {which} range {range:?}",
                    self.title
                ))
            })
        };
        let ((x0, x1), xt) = axis("x", self.x_range, self.data_range(|s| &s.x))?;
        let ((y0, y1), yt) = axis("y", self.y_range, self.data_range(|s| &s.y))?;
        let to_px = |x: f64, y: f64| {
            (
                px0 + (x - x0) / (x1 - x0) * pw,
                py0 + ph - (y - y0) / (y1 - y0) * ph,
            )
        };

        let mut o = String::new();
        let n = fmt_num;
        let _ = write!(
            o,
            r#"<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{}" height="{}" viewBox="0 0 {} {}" font-family="sans-serif" font-size="{FONT}">"#,
            n(w),
            n(h),
            n(w),
            n(h)
        );
        let _ = write!(o, "<title>{}</title>", escape(&self.title));
        let _ = write!(
            o,
            r##"<rect class="plot-area" x="{}" y="{}" width="{}" height="{}" fill="#fff" stroke="#888"/>"##,
            n(px0),
            n(py0),
            n(pw),
            n(ph)
        );
        // Grid lines and tick labels.
        let xstep = xt.get(1).zip(xt.first()).map_or(1.0, |(b, a)| b - a);
        for &t in &xt {
            let (x, _) = to_px(t, y0);
            let _ = write!(
                o,
                r##"<line x1="{0}" y1="{1}" x2="{0}" y2="{2}" stroke="#e4e4e4"/><text class="xtick" x="{0}" y="{3}" text-anchor="middle">{4}</text>"##,
                n(x),
                n(py0),
                n(py0 + ph),
                n(py0 + ph + 15.0),
                escape(&tick_label(t, xstep))
            );
        }
        let ystep = yt.get(1).zip(yt.first()).map_or(1.0, |(b, a)| b - a);
        for &t in &yt {
            let (_, y) = to_px(x0, t);
            let _ = write!(
                o,
                r##"<line x1="{0}" y1="{1}" x2="{2}" y2="{1}" stroke="#e4e4e4"/><text class="ytick" x="{3}" y="{4}" text-anchor="end">{5}</text>"##,
                n(px0),
                n(y),
                n(px0 + pw),
                n(px0 - 5.0),
                n(y + 4.0),
                escape(&tick_label(t, ystep))
            );
        }
        let _ = write!(
            o,
            r#"<text x="{}" y="{}" text-anchor="middle" font-size="14" font-weight="bold">{}</text>"#,
            n(px0 + pw / 2.0),
            n(py0 - 12.0),
            escape(&self.title)
        );
        let _ = write!(
            o,
            r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
            n(px0 + pw / 2.0),
            n(h - 10.0),
            escape(&self.x_label)
        );
        let (lx, ly) = (16.0, py0 + ph / 2.0);
        let _ = write!(
            o,
            r#"<text x="{0}" y="{1}" text-anchor="middle" transform="rotate(-90 {0} {1})">{2}</text>"#,
            n(lx),
            n(ly),
            escape(&self.y_label)
        );

        // Series, clipped to the plot area by a nested <svg> whose viewBox keeps the outer
        // coordinates (no ids needed, so many charts can share one page).
        let _ = write!(
            o,
            r#"<svg x="{0}" y="{1}" width="{2}" height="{3}" viewBox="{0} {1} {2} {3}">"#,
            n(px0),
            n(py0),
            n(pw),
            n(ph)
        );
        let mut palette = LINE_COLORS.iter().cycle();
        let colors: Vec<String> = self
            .series
            .iter()
            .map(|s| {
                s.color
                    .clone()
                    .unwrap_or_else(|| palette.next().map_or("#000".into(), |c| c.to_string()))
            })
            .collect();
        for (s, color) in self.series.iter().zip(&colors) {
            let dash = if s.dashed {
                r#" stroke-dasharray="6 4""#
            } else {
                ""
            };
            for run in finite_runs(&s.x, &s.y) {
                let mut pts = String::new();
                let mut last = String::new();
                for &(x, y) in &run {
                    let (px, py) = to_px(x, y);
                    let p = format!("{},{}", n(px), n(py));
                    if p != last {
                        pts.push_str(&p);
                        pts.push(' ');
                        last = p;
                    }
                }
                let _ = write!(
                    o,
                    r#"<polyline class="series" data-name="{}" fill="none" stroke="{}" stroke-width="{}"{dash} stroke-linejoin="round" points="{}"/>"#,
                    escape(&s.name),
                    escape(color),
                    n(s.stroke_width),
                    pts.trim_end()
                );
                if run.len() == 1 {
                    // A single point has no line to show; mark it.
                    let (px, py) = to_px(run[0].0, run[0].1);
                    let _ = write!(
                        o,
                        r#"<circle cx="{}" cy="{}" r="2.5" fill="{}"/>"#,
                        n(px),
                        n(py),
                        escape(color)
                    );
                }
            }
        }
        o.push_str("</svg>");

        // Legend.
        let mut ly = py0 + 8.0;
        let lx = px0 + pw + MARGIN_RIGHT;
        let rows = ((ph - 8.0) / LEGEND_ROW).floor().max(1.0) as usize;
        let listed: Vec<_> = self
            .series
            .iter()
            .zip(&colors)
            .filter(|(s, _)| s.in_legend)
            .collect();
        let shown = if listed.len() > rows {
            rows.saturating_sub(1)
        } else {
            listed.len()
        };
        for (s, color) in &listed[..shown] {
            let dash = if s.dashed {
                r#" stroke-dasharray="4 3""#
            } else {
                ""
            };
            let _ = write!(
                o,
                r#"<g class="legend"><title>{name}</title><line x1="{}" y1="{y}" x2="{}" y2="{y}" stroke="{}" stroke-width="{}"{dash}/><text x="{}" y="{}" font-size="11">{}</text></g>"#,
                n(lx),
                n(lx + 22.0),
                escape(color),
                n(s.stroke_width.max(2.0)),
                n(lx + 28.0),
                n(ly + 4.0),
                escape(&truncate(&s.name, LEGEND_CHARS)),
                name = escape(&s.name),
                y = n(ly)
            );
            ly += LEGEND_ROW;
        }
        let more = listed.len() - shown;
        let note = match (&self.legend_note, more) {
            (_, m) if m > 0 => Some(format!("+{m} more")),
            (Some(t), _) => Some(t.clone()),
            _ => None,
        };
        if let Some(t) = note {
            let _ = write!(
                o,
                r##"<text x="{}" y="{}" font-size="11" fill="#666">{}</text>"##,
                n(lx),
                n(ly + 4.0),
                escape(&truncate(&t, LEGEND_CHARS))
            );
        }
        o.push_str("</svg>");
        Ok(o)
    }
}

/// Maximal runs of consecutive points where both coordinates are finite.
fn finite_runs(x: &[f64], y: &[f64]) -> Vec<Vec<(f64, f64)>> {
    let mut runs = vec![Vec::new()];
    for (&a, &b) in x.iter().zip(y) {
        if a.is_finite() && b.is_finite() {
            if let Some(r) = runs.last_mut() {
                r.push((a, b));
            }
        } else if runs.last().is_some_and(|r| !r.is_empty()) {
            runs.push(Vec::new());
        }
    }
    runs.retain(|r| !r.is_empty());
    runs
}
