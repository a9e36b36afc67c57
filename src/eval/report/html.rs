//! Page assembly: the HTML skeleton, inline CSS and the small non-plot parts (stats,
//! tables, config). Everything user-supplied is escaped. The page is also well-formed XML
//! after its doctype (void elements self-closed), which the tests check.
use super::{Table, TrainingLog};
use crate::eval::plot::escape;
use crate::{Error, Result};
use serde_json::Value;
use std::path::Path;

const CSS: &str = "
body { font-family: system-ui, sans-serif; margin: 0 auto; max-width: 1360px; padding: 16px 24px; color: #222; background: #fafafa; }
h1 { margin: 4px 0 2px; font-size: 26px; }
h2 { margin: 28px 0 10px; font-size: 20px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
h3 { font-size: 15px; margin: 14px 0 6px; }
nav a { margin-right: 14px; color: #1f4f9f; text-decoration: none; }
.sub { color: #666; margin: 0 0 8px; }
.warn { background: #fff4e0; border: 1px solid #e0a040; padding: 8px 12px; border-radius: 4px; }
.warn li, .note li { font-family: monospace; font-size: 13px; }
.none { color: #888; font-style: italic; }
.stats { display: grid; grid-template-columns: repeat(auto-fill, minmax(240px, 1fr)); gap: 6px 18px; }
.stat { display: flex; justify-content: space-between; border-bottom: 1px dotted #ccc; padding: 2px 0; }
.stat .v, td.num { font-variant-numeric: tabular-nums; font-family: monospace; }
table { border-collapse: collapse; font-size: 13px; margin-bottom: 12px; background: #fff; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: left; vertical-align: top; }
td.num { text-align: right; }
td.key { font-family: monospace; white-space: nowrap; }
td.val { font-family: monospace; white-space: pre-wrap; word-break: break-all; max-width: 760px; }
.grid { display: flex; flex-wrap: wrap; gap: 12px; align-items: flex-start; }
figure { margin: 0; background: #fff; border: 1px solid #e2e2e2; border-radius: 4px; padding: 6px; }
figcaption { font-size: 12px; color: #444; margin-top: 4px; max-width: 360px; overflow-wrap: anywhere; }
svg { display: block; }
";

/// Explains the drawing conventions above the prediction grid.
pub(super) const TILE_LEGEND: &str = "<p class=\"sub\">Dashed boxes: ground truth. Solid boxes with a label tab: \
predictions (class and score). Filled areas: masks. Colours are per class.</p>";

/// The page under construction: navigation links and sections.
pub(super) struct Page {
    title: String,
    nav: String,
    body: String,
}

impl Page {
    pub(super) fn new(title: &str) -> Page {
        Page {
            title: title.to_string(),
            nav: String::new(),
            body: String::new(),
        }
    }

    pub(super) fn section(&mut self, id: &str, heading: &str, content: String) {
        self.nav
            .push_str(&format!("<a href=\"#{id}\">{}</a>", escape(heading)));
        self.body.push_str(&format!(
            "<section id=\"{id}\"><h2>{}</h2>{content}</section>\n",
            escape(heading)
        ));
    }

    /// The whole document; `problems` get a warning box at the top.
    pub(super) fn finish(self, problems: &[String]) -> String {
        let t = escape(&self.title);
        let warn = if problems.is_empty() {
            String::new()
        } else {
            format!(
                "<div class=\"warn\">{} line(s) of the training log were left out; see <a href=\"#training\">Training curves</a>.</div>",
                problems.len()
            )
        };
        format!(
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"/><title>{t}</title><style>{CSS}</style></head>\n\
             <body><h1>{t}</h1><p class=\"sub\">edgedistill evaluation report</p><nav>{}</nav>{warn}\n{}</body></html>\n",
            self.nav, self.body
        )
    }
}

/// A number for tables: integers as integers (counts), others with 4 decimals.
fn num(v: f64) -> String {
    if v.is_finite() && v.fract() == 0.0 && v.abs() >= 1.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else if v.is_finite() {
        format!("{v:.4}")
    } else {
        format!("{v}")
    }
}

pub(super) fn none(what: String) -> String {
    format!("<p class=\"none\">{}</p>", escape(&what))
}

pub(super) fn grid_or_none(figs: String, what: &str) -> String {
    if figs.is_empty() {
        none(what.into())
    } else {
        format!("<div class=\"grid\">{figs}</div>")
    }
}

pub(super) fn figure(svg: &str, caption: Option<&str>) -> String {
    let cap = caption.map_or(String::new(), |c| {
        format!("<figcaption>{}</figcaption>", escape(c))
    });
    format!("<figure>{svg}{cap}</figure>")
}

pub(super) fn stats(stats: &[(String, f64)]) -> String {
    if stats.is_empty() {
        return none("no summary numbers".into());
    }
    let cells: String = stats
        .iter()
        .map(|(k, v)| {
            format!(
                "<div class=\"stat\"><span class=\"k\">{}</span><span class=\"v\">{}</span></div>",
                escape(k),
                num(*v)
            )
        })
        .collect();
    format!("<div class=\"stats\">{cells}</div>")
}

pub(super) fn table(t: &Table) -> Result<String> {
    let mut o = format!("<h3>{}</h3><table><tr><th></th>", escape(&t.title));
    for c in &t.columns {
        o.push_str(&format!("<th>{}</th>", escape(c)));
    }
    o.push_str("</tr>");
    for (name, vals) in &t.rows {
        if vals.len() != t.columns.len() {
            return Err(Error::Shape {
                op: "report table",
                msg: format!(
                    "{:?}, row {name:?}: {} values for {} columns",
                    t.title,
                    vals.len(),
                    t.columns.len()
                ),
            });
        }
        o.push_str(&format!("<tr><td>{}</td>", escape(name)));
        for v in vals {
            o.push_str(&format!("<td class=\"num\">{}</td>", num(*v)));
        }
        o.push_str("</tr>");
    }
    o.push_str("</table>");
    Ok(o)
}

/// Where the curves come from, what was skipped and why.
pub(super) fn training_notes(path: &Path, log: &TrainingLog) -> String {
    let mut o = format!(
        "<p class=\"sub\">From {}: {} record(s), x axis: {}.</p>",
        escape(&path.display().to_string()),
        log.records,
        escape(&log.x_key)
    );
    if !log.problems.is_empty() {
        let items: String = log
            .problems
            .iter()
            .map(|p| format!("<li>{}</li>", escape(p)))
            .collect();
        o.push_str(&format!(
            "<div class=\"warn\">Skipped lines:<ul>{items}</ul></div>"
        ));
    }
    if !log.non_numeric_keys.is_empty() {
        o.push_str(&format!(
            "<p class=\"sub\">Not plotted (values are not numbers): {}</p>",
            escape(&log.non_numeric_keys.join(", "))
        ));
    }
    o
}

/// The config as a two-column table of dotted keys (the `--a.b value` override syntax)
/// and values.
pub(super) fn config(cfg: Option<&Value>) -> String {
    let Some(cfg) = cfg else {
        return none("no config".into());
    };
    let mut rows = Vec::new();
    flatten_config("", cfg, &mut rows);
    let body: String = rows
        .iter()
        .map(|(k, v)| {
            format!(
                "<tr><td class=\"key\">{}</td><td class=\"val\">{}</td></tr>",
                escape(k),
                escape(v)
            )
        })
        .collect();
    format!("<table><tr><th>key</th><th>value</th></tr>{body}</table>")
}

fn flatten_config(prefix: &str, v: &Value, out: &mut Vec<(String, String)>) {
    let join = |k: &str| {
        if prefix.is_empty() {
            k.to_string()
        } else {
            format!("{prefix}.{k}")
        }
    };
    match v {
        Value::Object(m) if !m.is_empty() => {
            m.iter().for_each(|(k, v)| flatten_config(&join(k), v, out))
        }
        // Arrays of plain values read best inline; arrays holding objects are expanded.
        Value::Array(a) if a.iter().any(|x| x.is_object() || x.is_array()) => a
            .iter()
            .enumerate()
            .for_each(|(i, v)| flatten_config(&join(&i.to_string()), v, out)),
        Value::String(s) => out.push((prefix.to_string(), s.clone())),
        other => out.push((prefix.to_string(), other.to_string())),
    }
}
