//! YOLO label text (ultralytics' format): one object per line, all coordinates normalised
//! to [0, 1] by the image width (x) and height (y).
//!
//! - detection: `class cx cy w h` (5 tokens, box centre and size);
//! - segmentation: `class x1 y1 x2 y2 x3 y3 ...` (an odd number of tokens ≥ 7: at least
//!   three polygon points).
//!
//! A file may mix both kinds. Tokens are separated by any ASCII whitespace; blank lines,
//! CRLF line ends and a UTF-8 byte-order mark are accepted. The class is a non-negative
//! integer (`3`; `3.0` is accepted too, as ultralytics reads classes as floats). A line
//! that breaks a rule is returned as a [`Problem`] with its 1-based line number and is
//! not converted; the other lines of the file still are.
use super::problem::{Problem, RecordKind};
use crate::{Error, Result};
use std::fmt::Write as _;
use std::path::Path;

/// The geometry of one label line, normalised coordinates.
#[derive(Clone, Debug, PartialEq)]
pub enum YoloShape {
    /// Box centre and size.
    Box { cx: f64, cy: f64, w: f64, h: f64 },
    /// Polygon vertices `[x, y]` (at least three).
    Polygon(Vec<[f64; 2]>),
}

/// One parsed label line.
#[derive(Clone, Debug, PartialEq)]
pub struct YoloLabel {
    /// 0-based class index into the names list.
    pub class: usize,
    pub shape: YoloShape,
}

impl YoloLabel {
    /// `[x0, y0, x1, y1]` normalised: the box, or the polygon's tight extent.
    pub fn extent(&self) -> [f64; 4] {
        match &self.shape {
            YoloShape::Box { cx, cy, w, h } => {
                [cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0]
            }
            YoloShape::Polygon(pts) => pts.iter().fold(
                [
                    f64::INFINITY,
                    f64::INFINITY,
                    f64::NEG_INFINITY,
                    f64::NEG_INFINITY,
                ],
                |[x0, y0, x1, y1], &[x, y]| [x0.min(x), y0.min(y), x1.max(x), y1.max(y)],
            ),
        }
    }
}

fn line_problem(line: usize, code: &'static str, msg: String) -> Problem {
    Problem::new(RecordKind::Line, Some(line as u64), code, msg)
}

/// Parses one line (`line_no` is 1-based, for the problem). `Ok(None)` for a blank line.
/// `num_classes`, when given, bounds the class index.
pub fn parse_line(
    text: &str,
    line_no: usize,
    num_classes: Option<usize>,
) -> std::result::Result<Option<YoloLabel>, Problem> {
    let mut tokens = text.split_ascii_whitespace();
    let Some(first) = tokens.next() else {
        return Ok(None);
    };
    let rest: Vec<&str> = tokens.collect();
    let n = rest.len() + 1;
    if n != 5 && (n < 7 || n.is_multiple_of(2)) {
        return Err(line_problem(
            line_no,
            "token_count",
            format!(
                "{n} tokens; expected 5 (class cx cy w h) or an odd number ≥ 7 \
                 (class x1 y1 x2 y2 x3 y3 ...)"
            ),
        ));
    }
    let class = parse_class(first).ok_or_else(|| {
        line_problem(
            line_no,
            "bad_class",
            format!("class \"{first}\" is not a non-negative integer"),
        )
    })?;
    if let Some(nc) = num_classes
        && class >= nc
    {
        return Err(line_problem(
            line_no,
            "unknown_class",
            format!("class {class} is not in the names list ({nc} classes: 0..{nc})"),
        ));
    }
    let mut v = Vec::with_capacity(rest.len());
    for (i, tok) in rest.iter().enumerate() {
        let x: f64 = tok.parse().map_err(|_| {
            line_problem(
                line_no,
                "not_a_number",
                format!("token {} \"{tok}\" is not a number", i + 2),
            )
        })?;
        if !(0.0..=1.0).contains(&x) {
            return Err(line_problem(
                line_no,
                "out_of_range",
                format!(
                    "token {} = {tok} is outside [0, 1] (coordinates are normalised)",
                    i + 2
                ),
            ));
        }
        v.push(x);
    }
    let shape = match v[..] {
        [cx, cy, w, h] => YoloShape::Box { cx, cy, w, h },
        _ => YoloShape::Polygon(v.chunks_exact(2).map(|p| [p[0], p[1]]).collect()),
    };
    Ok(Some(YoloLabel { class, shape }))
}

/// `"3"` or an integral float such as `"3.0"`.
fn parse_class(tok: &str) -> Option<usize> {
    if let Ok(c) = tok.parse::<usize>() {
        return Some(c);
    }
    let f: f64 = tok.parse().ok()?;
    (f.is_finite() && f >= 0.0 && f.fract() == 0.0 && f < usize::MAX as f64).then_some(f as usize)
}

/// Parses a whole label file. Returns the labels with their 1-based line numbers, and a
/// problem for every line that was not converted (a line that is not UTF-8 included).
pub fn parse_labels(
    bytes: &[u8],
    num_classes: Option<usize>,
) -> (Vec<(usize, YoloLabel)>, Vec<Problem>) {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut labels = Vec::new();
    let mut problems = Vec::new();
    for (i, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let line_no = i + 1;
        let Ok(text) = std::str::from_utf8(raw) else {
            problems.push(line_problem(
                line_no,
                "not_utf8",
                "line is not UTF-8 text".into(),
            ));
            continue;
        };
        match parse_line(text, line_no, num_classes) {
            Ok(Some(l)) => labels.push((line_no, l)),
            Ok(None) => {}
            Err(p) => problems.push(p),
        }
    }
    (labels, problems)
}

/// Appends one label as a line (with `\n`). Coordinates keep 10 significant digits
/// (relative error ≤ 5e-10), trailing zeros trimmed.
pub fn write_line(out: &mut String, label: &YoloLabel) {
    let _ = write!(out, "{}", label.class);
    match &label.shape {
        YoloShape::Box { cx, cy, w, h } => {
            for v in [cx, cy, w, h] {
                out.push(' ');
                push_coord(out, *v);
            }
        }
        YoloShape::Polygon(pts) => {
            for [x, y] in pts {
                out.push(' ');
                push_coord(out, *x);
                out.push(' ');
                push_coord(out, *y);
            }
        }
    }
    out.push('\n');
}

/// A value in [0, 1] with 10 significant digits, like C's `%.10g` (an exponent only below
/// 1e-10, where it is written exactly).
pub fn push_coord(out: &mut String, v: f64) {
    if v == 0.0 || !v.is_finite() {
        out.push_str(if v.is_finite() { "0" } else { "nan" });
        return;
    }
    let magnitude = v.abs().log10().floor() as i32; // -1 for 0.1..1
    if magnitude < -10 {
        // Far below a pixel; the shortest exact form beats 20+ zeros.
        let _ = write!(out, "{v:e}");
        return;
    }
    let decimals = (9 - magnitude).max(0) as usize;
    let start = out.len();
    let _ = write!(out, "{v:.decimals$}");
    if out[start..].contains('.') {
        let trimmed = out.trim_end_matches('0').trim_end_matches('.').len();
        out.truncate(trimmed);
    }
}

/// Class names from `names.txt` (one name per line, the line order giving class 0, 1,
/// ...), or from the `names:` entry of an ultralytics `data.yaml` when the file name ends
/// in `.yaml`/`.yml`. Errors name the file and line.
pub fn read_names(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let name = path.display().to_string();
    let yaml = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("yaml") || e.eq_ignore_ascii_case("yml"));
    if yaml {
        parse_names_yaml(&text, &name)
    } else {
        parse_names_txt(&text, &name)
    }
}

fn names_error(path: &str, line: usize, msg: String) -> Error {
    Error::Format {
        path: path.into(),
        record: format!("line {line}"),
        msg,
    }
}

/// One name per line, surrounding whitespace trimmed. Trailing blank lines are ignored;
/// a blank line before a name is an error (it would shift every later class index), and
/// so is a name given twice.
pub fn parse_names_txt(text: &str, path: &str) -> Result<Vec<String>> {
    let text = text.strip_prefix('\u{FEFF}').unwrap_or(text);
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let used = lines
        .iter()
        .rposition(|l| !l.is_empty())
        .map_or(0, |i| i + 1);
    let mut names = Vec::with_capacity(used);
    for (i, l) in lines[..used].iter().enumerate() {
        if l.is_empty() {
            return Err(names_error(
                path,
                i + 1,
                "blank line before the last name (class indices follow line order)".into(),
            ));
        }
        names.push(l.to_string());
    }
    check_names(&names, path, |i| i + 1)?;
    Ok(names)
}

fn check_names(names: &[String], path: &str, line_of: impl Fn(usize) -> usize) -> Result<()> {
    if names.is_empty() {
        return Err(Error::Format {
            path: path.into(),
            record: "file".into(),
            msg: "no class names".into(),
        });
    }
    let mut seen = std::collections::HashMap::new();
    for (i, n) in names.iter().enumerate() {
        if let Some(first) = seen.insert(n.as_str(), i) {
            return Err(names_error(
                path,
                line_of(i),
                format!("class name \"{n}\" given twice (classes {first} and {i})"),
            ));
        }
    }
    Ok(())
}

/// The `names:` entry of a data.yaml, in the three forms ultralytics writes:
/// `names: [a, b]`, a `- a` block list, or a `0: a` block mapping (indices 0..n-1).
/// Nothing else of YAML is interpreted.
pub fn parse_names_yaml(text: &str, path: &str) -> Result<Vec<String>> {
    let lines: Vec<&str> = text.lines().collect();
    let Some(start) = lines
        .iter()
        .position(|l| l.starts_with("names:") || l.starts_with("names :"))
    else {
        return Err(Error::Format {
            path: path.into(),
            record: "file".into(),
            msg: "no top-level `names:` entry".into(),
        });
    };
    let head = strip_comment(lines[start].split_once(':').map_or("", |(_, v)| v)).trim();
    let mut names = Vec::new();
    let mut line_of = Vec::new();
    if !head.is_empty() {
        let inner = head
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .ok_or_else(|| {
                names_error(
                    path,
                    start + 1,
                    "`names:` must be followed by [a, b, ...] or by an indented list".into(),
                )
            })?;
        for item in split_flow(inner) {
            names.push(unquote(item.trim()).to_string());
            line_of.push(start + 1);
        }
    } else {
        for (i, raw) in lines.iter().enumerate().skip(start + 1) {
            let l = strip_comment(raw);
            if l.trim().is_empty() {
                continue;
            }
            if !l.starts_with([' ', '\t']) {
                break; // Next top-level key.
            }
            let l = l.trim();
            let value = if let Some(v) = l.strip_prefix('-') {
                v
            } else if let Some((k, v)) = l.split_once(':') {
                let k: usize = k
                    .trim()
                    .parse()
                    .map_err(|_| names_error(path, i + 1, format!("`{k}` is not a class index")))?;
                if k != names.len() {
                    return Err(names_error(
                        path,
                        i + 1,
                        format!(
                            "class index {k} where {} was expected (0..n-1 in order)",
                            names.len()
                        ),
                    ));
                }
                v
            } else {
                return Err(names_error(
                    path,
                    i + 1,
                    format!("cannot read `{l}` as a name entry"),
                ));
            };
            names.push(unquote(value.trim()).to_string());
            line_of.push(i + 1);
        }
    }
    if let Some(i) = names.iter().position(|n| n.is_empty()) {
        return Err(names_error(
            path,
            line_of[i],
            format!("class {i} has an empty name"),
        ));
    }
    check_names(&names, path, |i| {
        line_of.get(i).copied().unwrap_or(start + 1)
    })?;
    Ok(names)
}

/// Drops a `#` comment that is not inside quotes.
fn strip_comment(l: &str) -> &str {
    let mut quote = None;
    for (i, c) in l.char_indices() {
        match (c, quote) {
            ('\'' | '"', None) => quote = Some(c),
            (c, Some(q)) if c == q => quote = None,
            ('#', None) => return &l[..i],
            _ => {}
        }
    }
    l
}

/// Splits a flow list body on commas outside quotes.
fn split_flow(s: &str) -> Vec<&str> {
    let (mut out, mut quote, mut from) = (Vec::new(), None, 0);
    for (i, c) in s.char_indices() {
        match (c, quote) {
            ('\'' | '"', None) => quote = Some(c),
            (c, Some(q)) if c == q => quote = None,
            (',', None) => {
                out.push(&s[from..i]);
                from = i + 1;
            }
            _ => {}
        }
    }
    if !s[from..].trim().is_empty() {
        out.push(&s[from..]);
    }
    out
}

fn unquote(s: &str) -> &str {
    for q in ['\'', '"'] {
        if let Some(inner) = s.strip_prefix(q).and_then(|t| t.strip_suffix(q)) {
            return inner;
        }
    }
    s
}

/// `names.txt` text: one name per line, in class order.
pub fn names_text(names: &[String]) -> String {
    names.iter().flat_map(|n| [n.as_str(), "\n"]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coords_keep_ten_digits_and_trim() {
        let f = |v| {
            let mut s = String::new();
            push_coord(&mut s, v);
            s
        };
        assert_eq!(f(0.5), "0.5");
        assert_eq!(f(1.0), "1");
        assert_eq!(f(0.0), "0");
        assert_eq!(f(0.1 + 0.2), "0.3");
        assert_eq!(f(0.123456789012), "0.123456789");
        assert_eq!(f(1.23456789012e-7), "0.000000123456789");
        assert_eq!(f(1.5e-25), "1.5e-25");
        for v in [
            1e-9,
            3.3e-5,
            0.6180339887498949,
            0.999999999999,
            1e-10,
            2.2e-308,
        ] {
            let back: f64 = f(v).parse().unwrap();
            assert!((back - v).abs() <= 5e-10 * v, "{v} -> {}", f(v));
        }
    }
}
