//! report.html: one self-contained page (inline SVG and CSS, no scripts, nothing fetched
//! from the network) with the summary numbers, PR and F1-confidence curves, confusion
//! matrices, training curves from metrics.jsonl, predictions drawn on images, and the config.
//!
//! The inputs are plain data so any evaluator can fill them: curves as `Vec<f64>`, the
//! confusion matrix as counts with class names, stats as name → value.
mod html;
pub mod training_log;

use crate::eval::plot::{Heatmap, ImageTile, LineChart, Series};
use crate::io::atomic::write_atomic;
use crate::{Error, Result};
use std::path::{Path, PathBuf};
pub use training_log::TrainingLog;

/// Everything the report shows. Empty parts are shown as "none" rather than hidden.
#[derive(Clone, Debug)]
pub struct ReportInput {
    /// Page heading (e.g. "student-int8 on val.json").
    pub title: String,
    /// Headline numbers in display order ("mAP50-95(B)" → 0.512, COCO's 12 stats, ...).
    pub stats: Vec<(String, f64)>,
    /// Further tables of numbers (per-class AP, per-class P/R).
    pub tables: Vec<Table>,
    /// Curve plots: [`CurveSet::precision_recall`], [`CurveSet::f1_confidence`], or any other.
    pub curves: Vec<CurveSet>,
    /// Confusion matrices (box, mask).
    pub confusion: Vec<ConfusionMatrix>,
    /// The run's metrics.jsonl; training curves are drawn when the file exists.
    pub metrics_jsonl: Option<PathBuf>,
    /// Images with ground truth and predictions drawn on them.
    pub predictions: Vec<ImageTile>,
    /// Longer side of each prediction thumbnail in pixels (300: four per row).
    pub tile_px: u32,
    /// The run's resolved config.
    pub config: Option<serde_json::Value>,
}

impl Default for ReportInput {
    fn default() -> Self {
        ReportInput {
            title: "edgedistill report".into(),
            stats: Vec::new(),
            tables: Vec::new(),
            curves: Vec::new(),
            confusion: Vec::new(),
            metrics_jsonl: None,
            predictions: Vec::new(),
            tile_px: 300,
            config: None,
        }
    }
}

/// A table of numbers: one row per name (a class), one value per column.
#[derive(Clone, Debug)]
pub struct Table {
    pub title: String,
    pub columns: Vec<String>,
    pub rows: Vec<(String, Vec<f64>)>,
}

/// One curve of a [`CurveSet`] (a class, or the mean).
#[derive(Clone, Debug)]
pub struct NamedCurve {
    pub name: String,
    pub y: Vec<f64>,
}

/// Per-class curves over a shared x grid, with an optional bold mean curve.
#[derive(Clone, Debug)]
pub struct CurveSet {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub x: Vec<f64>,
    pub classes: Vec<NamedCurve>,
    pub mean: Option<NamedCurve>,
    /// Fixed axis ranges; `None` fits the data.
    pub x_range: Option<(f64, f64)>,
    pub y_range: Option<(f64, f64)>,
}

/// Above this many classes the curves are drawn grey and left out of the legend (as
/// ultralytics does), so the chart stays readable.
pub const MAX_LEGEND_CLASSES: usize = 20;

impl CurveSet {
    /// Precision against recall (ultralytics' `px`, `prec_values`), per class; the mean
    /// curve is computed and labelled with `map50`. `task` is "box" or "mask".
    pub fn precision_recall(
        task: &str,
        recall: Vec<f64>,
        classes: Vec<NamedCurve>,
        map50: f64,
    ) -> CurveSet {
        let mean = mean_curve(&classes, format!("all classes {map50:.3} mAP@0.5"));
        CurveSet {
            title: format!("Precision-Recall ({task})"),
            x_label: "Recall".into(),
            y_label: "Precision".into(),
            x: recall,
            classes,
            mean,
            x_range: Some((0.0, 1.0)),
            y_range: Some((0.0, 1.0)),
        }
    }

    /// F1 against confidence, per class; the mean curve is computed and labelled with its
    /// maximum and the confidence where it is reached.
    pub fn f1_confidence(task: &str, confidence: Vec<f64>, classes: Vec<NamedCurve>) -> CurveSet {
        let mut mean = mean_curve(&classes, String::new());
        if let Some(m) = &mut mean {
            let best =
                m.y.iter()
                    .zip(&confidence)
                    .filter(|(y, _)| y.is_finite())
                    .fold(None, |b: Option<(f64, f64)>, (&y, &c)| match b {
                        Some((by, _)) if by >= y => b,
                        _ => Some((y, c)),
                    });
            m.name = match best {
                Some((y, c)) => format!("all classes {y:.2} at {c:.3}"),
                None => "all classes".into(),
            };
        }
        CurveSet {
            title: format!("F1-Confidence ({task})"),
            x_label: "Confidence".into(),
            y_label: "F1".into(),
            x: confidence,
            classes,
            mean,
            x_range: Some((0.0, 1.0)),
            y_range: Some((0.0, 1.0)),
        }
    }

    /// The set as a line chart.
    pub fn chart(&self) -> LineChart {
        let mut c = LineChart::new(
            self.title.clone(),
            self.x_label.clone(),
            self.y_label.clone(),
        );
        (c.width, c.height) = (620.0, 380.0); // two per row on the page
        c.x_range = self.x_range;
        c.y_range = self.y_range;
        let many = self.classes.len() > MAX_LEGEND_CLASSES;
        for cls in &self.classes {
            let mut s = Series::new(cls.name.clone(), self.x.clone(), cls.y.clone());
            s.stroke_width = 1.0;
            if many {
                s.color = Some("#c4c4c4".into());
                s.in_legend = false;
            }
            c.series.push(s);
        }
        if many {
            c.legend_note = Some(format!("{} classes in grey", self.classes.len()));
        }
        if let Some(m) = &self.mean {
            let mut s = Series::new(m.name.clone(), self.x.clone(), m.y.clone());
            s.stroke_width = 3.0;
            s.color = Some("#0b2f6b".into());
            c.series.push(s);
        }
        c
    }
}

/// Point-wise mean over classes (NaN where no class has a finite value).
fn mean_curve(classes: &[NamedCurve], name: String) -> Option<NamedCurve> {
    let len = classes.iter().map(|c| c.y.len()).max()?;
    let y = (0..len)
        .map(|i| {
            let vals: Vec<f64> = classes
                .iter()
                .filter_map(|c| c.y.get(i))
                .copied()
                .filter(|v| v.is_finite())
                .collect();
            if vals.is_empty() {
                f64::NAN
            } else {
                vals.iter().sum::<f64>() / vals.len() as f64
            }
        })
        .collect();
    Some(NamedCurve { name, y })
}

/// A confusion matrix, ultralytics' layout: `counts[predicted][true]`, square, with
/// `names` for its rows/columns in order (include "background" as the last name when the
/// matrix has the background row/column).
#[derive(Clone, Debug)]
pub struct ConfusionMatrix {
    pub title: String,
    pub names: Vec<String>,
    pub counts: Vec<Vec<u64>>,
}

impl ConfusionMatrix {
    /// Cells coloured by the fraction of each true class (column-normalised, as
    /// ultralytics' normalised plot), numbers are the raw counts.
    pub fn heatmap(&self) -> Result<Heatmap> {
        let n = self.names.len();
        if self.counts.len() != n || self.counts.iter().any(|r| r.len() != n) {
            let shape: Vec<usize> = self.counts.iter().map(Vec::len).collect();
            return Err(Error::Shape {
                op: "ConfusionMatrix",
                msg: format!("{:?}: {n} names but rows of lengths {shape:?}", self.title),
            });
        }
        let col_sum: Vec<u64> = (0..n)
            .map(|c| self.counts.iter().map(|r| r[c]).sum())
            .collect();
        let values = self
            .counts
            .iter()
            .map(|r| {
                r.iter()
                    .zip(&col_sum)
                    .map(|(&v, &s)| if s == 0 { 0.0 } else { v as f64 / s as f64 })
                    .collect()
            })
            .collect();
        let text = self
            .counts
            .iter()
            .map(|r| {
                r.iter()
                    .map(|&v| if v == 0 { String::new() } else { v.to_string() })
                    .collect()
            })
            .collect();
        Ok(Heatmap {
            title: self.title.clone(),
            x_label: "True".into(),
            y_label: "Predicted".into(),
            col_names: self.names.clone(),
            row_names: self.names.clone(),
            values,
            text,
            max_width: 760.0,
        })
    }
}

/// The rendered page and its parts.
#[derive(Clone, Debug)]
pub struct Rendered {
    pub html: String,
    /// Every `<svg>` element inlined in the page, in page order.
    pub svgs: Vec<String>,
    /// What was left out, as `file:line: reason` (also shown on the page).
    pub problems: Vec<String>,
}

/// Build the page. Errors: inconsistent inputs (curve lengths, matrix shape, mask sizes);
/// an unreadable metrics.jsonl (a missing one is fine).
pub fn render(input: &ReportInput) -> Result<Rendered> {
    let mut page = html::Page::new(&input.title);
    let mut problems = Vec::new();

    page.section("summary", "Summary", html::stats(&input.stats));
    let tables: String = input
        .tables
        .iter()
        .map(html::table)
        .collect::<Result<_>>()?;
    if !tables.is_empty() {
        page.section("tables", "Per-class results", tables);
    }

    let mut svgs = Vec::new();
    let mut figs = String::new();
    for set in &input.curves {
        let svg = set.chart().to_svg()?;
        figs.push_str(&html::figure(&svg, None));
        svgs.push(svg);
    }
    page.section("curves", "Curves", html::grid_or_none(figs, "no curves"));

    let mut figs = String::new();
    for cm in &input.confusion {
        let svg = cm.heatmap()?.to_svg()?;
        figs.push_str(&html::figure(&svg, None));
        svgs.push(svg);
    }
    page.section(
        "confusion",
        "Confusion matrix",
        html::grid_or_none(figs, "no confusion matrix"),
    );

    let training = match &input.metrics_jsonl {
        Some(path) => TrainingLog::read(path)?.map(|log| (path, log)),
        None => None,
    };
    let body = match &training {
        None => html::none(match &input.metrics_jsonl {
            Some(p) => format!("no metrics.jsonl at {}", p.display()),
            None => "no metrics.jsonl for this run".into(),
        }),
        Some((path, log)) => {
            let mut body = html::training_notes(path, log);
            let mut figs = String::new();
            for chart in log.charts(410.0, 270.0) {
                let svg = chart.to_svg()?;
                figs.push_str(&html::figure(&svg, None));
                svgs.push(svg);
            }
            body.push_str(&html::grid_or_none(figs, "no numeric series"));
            problems.extend(log.problems.iter().cloned());
            body
        }
    };
    page.section("training", "Training curves", body);

    let mut figs = String::new();
    for tile in &input.predictions {
        let svg = tile.to_svg(input.tile_px)?;
        let truth = tile
            .overlays
            .iter()
            .filter(|o| o.kind == crate::eval::plot::OverlayKind::Truth)
            .count();
        let caption = format!(
            "{} — {truth} truth, {} predicted",
            tile.name,
            tile.overlays.len() - truth
        );
        figs.push_str(&html::figure(&svg, Some(&caption)));
        svgs.push(svg);
    }
    let legend = if input.predictions.is_empty() {
        ""
    } else {
        html::TILE_LEGEND
    };
    page.section(
        "predictions",
        "Predictions",
        format!("{legend}{}", html::grid_or_none(figs, "no images")),
    );

    page.section("config", "Config", html::config(input.config.as_ref()));
    Ok(Rendered {
        html: page.finish(&problems),
        svgs,
        problems,
    })
}

/// Render and write the page to `path` atomically (temp file, then rename).
pub fn write_report(path: &Path, input: &ReportInput) -> Result<Rendered> {
    let out = render(input)?;
    write_atomic(path, |w| {
        w.write_all(out.html.as_bytes())
            .map_err(|source| Error::Io {
                path: path.to_path_buf(),
                source,
            })
    })?;
    Ok(out)
}
