//! report.html and the SVG plot module: well-formed XML, self-contained page, correct
//! data→pixel mapping, escaping, metrics.jsonl problems reported, and (when Chromium is
//! installed) a headless screenshot that is not blank.
use edgedistill::eval::plot::{
    self, Heatmap, ImageTile, LineChart, MARGIN_BOTTOM, MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP,
    Overlay, OverlayKind, Series,
};
use edgedistill::eval::report::{
    ConfusionMatrix, CurveSet, NamedCurve, ReportInput, Table, TrainingLog, render, write_report,
};
use image::{GrayImage, Luma, Rgb, RgbImage};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

// ---------------------------------------------------------------------------------------
// A tiny strict XML well-formedness checker (we have no XML crate): one root element,
// balanced tags, names valid, attributes quoted and unique, no raw `<` or `&` in text or
// attribute values, entities limited to the five predefined ones and numeric references.
// ---------------------------------------------------------------------------------------

fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':' || (c as u32) > 0x7f
}
fn is_name_char(c: char) -> bool {
    is_name_start(c) || c.is_ascii_digit() || c == '-' || c == '.'
}

fn check_text(s: &str, at: usize) -> Result<(), String> {
    let mut rest = s;
    let mut off = at;
    while let Some(i) = rest.find(['&', '<']) {
        if rest.as_bytes()[i] == b'<' {
            return Err(format!("raw '<' at byte {}", off + i));
        }
        let tail = &rest[i + 1..];
        let end = tail
            .find(';')
            .ok_or(format!("'&' without ';' at byte {}", off + i))?;
        let ent = &tail[..end];
        let ok = matches!(ent, "amp" | "lt" | "gt" | "quot" | "apos")
            || ent
                .strip_prefix("#x")
                .is_some_and(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_hexdigit()))
            || ent
                .strip_prefix('#')
                .is_some_and(|d| !d.is_empty() && d.chars().all(|c| c.is_ascii_digit()));
        if !ok {
            return Err(format!("bad entity &{ent}; at byte {}", off + i));
        }
        off += i + 1 + end + 1;
        rest = &tail[end + 1..];
    }
    Ok(())
}

fn parse_name(s: &str, i: &mut usize) -> Result<String, String> {
    let start = *i;
    let mut chars = s[start..].char_indices();
    match chars.next() {
        Some((_, c)) if is_name_start(c) => {}
        other => return Err(format!("expected a name at byte {start}, found {other:?}")),
    }
    let len = s[start..]
        .find(|c: char| !is_name_char(c))
        .unwrap_or(s.len() - start);
    *i = start + len;
    Ok(s[start..start + len].to_string())
}

fn skip_ws(s: &str, i: &mut usize) {
    while s[*i..].starts_with([' ', '\t', '\n', '\r']) {
        *i += 1;
    }
}

/// `Ok(())` when `doc` is a well-formed XML document (an optional leading `<!DOCTYPE ...>`
/// is allowed, for the HTML page).
fn check_xml(doc: &str) -> Result<(), String> {
    let mut i = 0;
    let mut stack: Vec<String> = Vec::new();
    let mut roots = 0;
    skip_ws(doc, &mut i);
    if doc[i..].starts_with("<!DOCTYPE") {
        i += doc[i..].find('>').ok_or("unterminated doctype")? + 1;
    }
    while i < doc.len() {
        let next = doc[i..].find('<').map_or(doc.len(), |k| i + k);
        let text = &doc[i..next];
        if stack.is_empty() && !text.trim().is_empty() {
            return Err(format!(
                "text outside the root element at byte {i}: {:?}",
                &text[..text.len().min(40)]
            ));
        }
        check_text(text, i)?;
        i = next;
        if i >= doc.len() {
            break;
        }
        if doc[i..].starts_with("<!--") {
            let end = doc[i..]
                .find("-->")
                .ok_or(format!("unterminated comment at byte {i}"))?;
            i += end + 3;
            continue;
        }
        if doc[i..].starts_with("</") {
            i += 2;
            let name = parse_name(doc, &mut i)?;
            skip_ws(doc, &mut i);
            if !doc[i..].starts_with('>') {
                return Err(format!("junk in end tag </{name} at byte {i}"));
            }
            i += 1;
            match stack.pop() {
                Some(open) if open == name => {}
                Some(open) => return Err(format!("</{name}> closes <{open}> at byte {i}")),
                None => return Err(format!("</{name}> with nothing open at byte {i}")),
            }
            continue;
        }
        i += 1;
        let name = parse_name(doc, &mut i)?;
        if stack.is_empty() {
            roots += 1;
            if roots > 1 {
                return Err(format!("second root element <{name}> at byte {i}"));
            }
        }
        let mut attrs = HashSet::new();
        loop {
            let before = i;
            skip_ws(doc, &mut i);
            if doc[i..].starts_with("/>") {
                i += 2;
                break;
            }
            if doc[i..].starts_with('>') {
                i += 1;
                stack.push(name.clone());
                break;
            }
            if i == before {
                return Err(format!(
                    "<{name}>: expected whitespace before attribute at byte {i}"
                ));
            }
            let attr = parse_name(doc, &mut i)?;
            if !attrs.insert(attr.clone()) {
                return Err(format!("<{name}>: duplicate attribute {attr}"));
            }
            skip_ws(doc, &mut i);
            if !doc[i..].starts_with('=') {
                return Err(format!(
                    "<{name}> attribute {attr} has no value at byte {i}"
                ));
            }
            i += 1;
            skip_ws(doc, &mut i);
            let q = doc[i..].chars().next().ok_or("document ends in a tag")?;
            if q != '"' && q != '\'' {
                return Err(format!(
                    "<{name}> attribute {attr} is not quoted at byte {i}"
                ));
            }
            let end = doc[i + 1..]
                .find(q)
                .ok_or(format!("unterminated attribute {attr}"))?;
            check_text(&doc[i + 1..i + 1 + end], i + 1)?;
            i += end + 2;
        }
    }
    if let Some(open) = stack.pop() {
        return Err(format!("<{open}> never closed"));
    }
    if roots != 1 {
        return Err("no root element".into());
    }
    Ok(())
}

#[test]
fn xml_checker_rejects_broken_documents() {
    assert_eq!(
        check_xml(r#"<a x="1"><b/>t &amp; &#60; &#x3c;</a>"#),
        Ok(())
    );
    for bad in [
        "<a><b></a></b>",
        "<a>",
        "<a x=1/>",
        r#"<a x="1" x="2"/>"#,
        "<a>&nbsp;</a>",
        "<a>fish & chips</a>",
        r#"<a x="<"/>"#,
        "<a/><b/>",
        "<a>1 < 2</a>",
        "text<a/>",
        "<a></b>",
        r#"<a x="1"y="2"/>"#,
    ] {
        assert!(check_xml(bad).is_err(), "accepted {bad:?}");
    }
}

// ---------------------------------------------------------------------------------------
// Realistic fake data.
// ---------------------------------------------------------------------------------------

const CLASSES: [&str; 5] = [
    "person",
    "car",
    "bicycle",
    "traffic light",
    "<b>&\"odd' name",
];

/// A small deterministic generator (no rand crate).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn grid(n: usize) -> Vec<f64> {
    (0..n).map(|i| i as f64 / (n - 1) as f64).collect()
}

fn pr_curves() -> (Vec<f64>, Vec<NamedCurve>, f64) {
    let r = grid(1000);
    let mut aps = Vec::new();
    let classes = CLASSES
        .iter()
        .enumerate()
        .map(|(k, name)| {
            let q = 0.35 + 0.13 * k as f64;
            let (a, rmax) = (2.0 + 6.0 * q, 0.55 + 0.4 * q);
            let y: Vec<f64> = r
                .iter()
                .map(|&x| {
                    if x > rmax {
                        0.0
                    } else {
                        (1.0 - (x / rmax).powf(a)).max(0.0) * (0.7 + 0.3 * q)
                    }
                })
                .collect();
            let ap = y.iter().sum::<f64>() / y.len() as f64;
            aps.push(ap);
            NamedCurve {
                name: format!("{name} {ap:.3}"),
                y,
            }
        })
        .collect();
    let map = aps.iter().sum::<f64>() / aps.len() as f64;
    (r, classes, map)
}

fn f1_curves() -> (Vec<f64>, Vec<NamedCurve>) {
    let c = grid(1000);
    let classes = CLASSES
        .iter()
        .enumerate()
        .map(|(k, name)| {
            let (peak, c0) = (0.5 + 0.08 * k as f64, 0.25 + 0.07 * k as f64);
            let y = c
                .iter()
                .map(|&x| peak * (-((x - c0) / 0.32).powi(2)).exp() * (1.0 - x.powi(8)))
                .collect();
            NamedCurve {
                name: name.to_string(),
                y,
            }
        })
        .collect();
    (c, classes)
}

fn confusion() -> ConfusionMatrix {
    let mut names: Vec<String> = CLASSES.iter().map(|s| s.to_string()).collect();
    names.push("background".into());
    let n = names.len();
    let mut rng = Lcg(7);
    let counts = (0..n)
        .map(|p| {
            (0..n)
                .map(|t| {
                    if p == t && p + 1 < n {
                        40 + (rng.next() * 120.0) as u64
                    } else if p + 1 == n || t + 1 == n {
                        (rng.next() * 25.0) as u64
                    } else if rng.next() < 0.4 {
                        (rng.next() * 8.0) as u64
                    } else {
                        0
                    }
                })
                .collect()
        })
        .collect();
    ConfusionMatrix {
        title: "Confusion matrix (box)".into(),
        names,
        counts,
    }
}

fn metrics_jsonl(epochs: usize) -> String {
    let mut s = String::new();
    for e in 1..=epochs {
        let t = e as f64;
        s.push_str(&format!(
            "{{\"epoch\":{e},\"train/box_loss\":{:.4},\"train/seg_loss\":{:.4},\"train/cls_loss\":{:.4},\"val/box_loss\":{:.4},\"val/seg_loss\":{:.4},\"val/cls_loss\":{:.4},\"metrics/mAP50(B)\":{:.4},\"metrics/mAP50-95(B)\":{:.4},\"metrics/mAP50(M)\":{:.4},\"lr/pg0\":{:.6},\"note\":\"ok\"}}\n",
            1.6 * (-t / 12.0).exp() + 0.6,
            2.4 * (-t / 10.0).exp() + 0.9,
            3.0 * (-t / 6.0).exp() + 0.5,
            1.5 * (-t / 14.0).exp() + 0.75,
            2.2 * (-t / 12.0).exp() + 1.05,
            2.6 * (-t / 8.0).exp() + 0.7,
            0.72 * (1.0 - (-t / 8.0).exp()),
            0.48 * (1.0 - (-t / 9.0).exp()),
            0.66 * (1.0 - (-t / 9.0).exp()),
            0.01 * (1.0 - t / (epochs as f64 + 1.0)),
        ));
    }
    s
}

/// A 640×480 "street" image with a few objects, their truth and noisy predictions.
fn tile(seed: u64) -> ImageTile {
    let (w, h) = (640u32, 480u32);
    let mut rng = Lcg(seed);
    let sky = [
        120 + (rng.next() * 60.0) as u8,
        160 + (rng.next() * 40.0) as u8,
        210,
    ];
    let mut img = RgbImage::from_fn(w, h, |_, y| {
        if y < h / 2 {
            let f = y as f64 / (h / 2) as f64;
            Rgb([
                (sky[0] as f64 * (1.0 - 0.3 * f)) as u8,
                (sky[1] as f64 * (1.0 - 0.2 * f)) as u8,
                sky[2],
            ])
        } else {
            let g = 90 + ((y * 7) % 23) as u8;
            Rgb([g, g, g + 5])
        }
    });
    let mut overlays = Vec::new();
    for k in 0..3 + (seed % 3) as usize {
        let class = (seed as usize + k * 2) % CLASSES.len();
        let (bw, bh) = (60.0 + rng.next() * 160.0, 60.0 + rng.next() * 150.0);
        let (x, y) = (
            rng.next() * (w as f64 - bw),
            120.0 + rng.next() * (h as f64 - bh - 130.0),
        );
        let [r, g, b] = plot::CLASS_COLORS[(class * 3 + 5) % 20];
        let mut mask = GrayImage::new(w, h);
        let (cx, cy) = (x + bw / 2.0, y + bh / 2.0);
        for py in y as u32..(y + bh) as u32 {
            for px in x as u32..(x + bw) as u32 {
                let (dx, dy) = ((px as f64 - cx) / (bw / 2.0), (py as f64 - cy) / (bh / 2.0));
                if dx * dx + dy * dy <= 1.0 {
                    img.put_pixel(px, py, Rgb([r / 2 + 40, g / 2 + 40, b / 2 + 40]));
                    mask.put_pixel(px, py, Luma([1]));
                }
            }
        }
        overlays.push(Overlay {
            kind: OverlayKind::Truth,
            class,
            label: CLASSES[class].into(),
            score: None,
            bbox: [x, y, bw, bh],
            mask: None,
        });
        if rng.next() < 0.85 {
            let j: Vec<f64> = (0..4).map(|_| (rng.next() - 0.5) * 14.0).collect();
            overlays.push(Overlay {
                kind: OverlayKind::Prediction,
                class,
                label: CLASSES[class].into(),
                score: Some(0.4 + rng.next() * 0.59),
                bbox: [x + j[0], y + j[1], bw + j[2], bh + j[3]],
                mask: Some(mask),
            });
        }
    }
    ImageTile {
        name: format!("street_{seed:04}.jpg"),
        image: img,
        overlays,
    }
}

fn realistic_input(dir: &Path) -> ReportInput {
    let metrics = dir.join("metrics.jsonl");
    let mut text = metrics_jsonl(30);
    text.push_str("{\"epoch\": 31, \"train/box_loss\": 0.7\n"); // a crash mid-write
    std::fs::write(&metrics, text).unwrap();
    let (r, pr, map50) = pr_curves();
    let (c, f1) = f1_curves();
    ReportInput {
        title: "student-yolov8n-seg on val.json".into(),
        stats: vec![
            ("precision(B)".into(), 0.7412),
            ("recall(B)".into(), 0.6631),
            ("mAP50(B)".into(), map50),
            ("mAP50-95(B)".into(), 0.4821),
            ("mAP50(M)".into(), 0.6633),
            ("mAP50-95(M)".into(), 0.4017),
            ("images".into(), 500.0),
            ("AP small (COCO)".into(), -1.0),
        ],
        tables: vec![Table {
            title: "Per-class AP (box)".into(),
            columns: vec!["AP50".into(), "AP50-95".into(), "instances".into()],
            rows: CLASSES
                .iter()
                .enumerate()
                .map(|(k, n)| {
                    (
                        n.to_string(),
                        vec![
                            0.5 + 0.08 * k as f64,
                            0.3 + 0.05 * k as f64,
                            40.0 + 17.0 * k as f64,
                        ],
                    )
                })
                .collect(),
        }],
        curves: vec![
            CurveSet::precision_recall("box", r.clone(), pr.clone(), map50),
            CurveSet::f1_confidence("box", c.clone(), f1.clone()),
            CurveSet::precision_recall("mask", r, pr, map50 * 0.9),
            CurveSet::f1_confidence("mask", c, f1),
        ],
        confusion: vec![confusion()],
        metrics_jsonl: Some(metrics),
        predictions: (1..=6).map(tile).collect(),
        tile_px: 300,
        config: Some(serde_json::json!({
            "model": {"arch": "yolov8n-seg", "nc": 5, "names": CLASSES},
            "train": {"epochs": 30, "lr0": 0.01, "batch": 16, "imgsz": 640, "amp": "bf16"},
            "distill": {"temperature": 4.0, "kl_weight": 1.0, "teachers": [{"name": "gdino-swin-t", "lora_r": 16}, {"name": "sam-vit-b", "lora_r": 8}]},
            "data": {"train": "train.json", "val": "val.json", "note": "</td><script>alert(1)</script>"}
        })),
    }
}

fn tmp_dir(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::create_dir_all(&d).unwrap();
    d
}

// ---------------------------------------------------------------------------------------
// The page.
// ---------------------------------------------------------------------------------------

#[test]
fn every_svg_and_the_page_are_well_formed_xml() {
    let dir = tmp_dir("eval_report_xml");
    let out = render(&realistic_input(&dir)).unwrap();
    // 4 curve sets + 1 confusion matrix + training charts + 6 tiles.
    let training = out.svgs.len() - 4 - 1 - 6;
    // box_loss, seg_loss, cls_loss (train+val each), metrics, lr.
    assert_eq!(training, 5, "training charts");
    for (i, svg) in out.svgs.iter().enumerate() {
        assert!(svg.starts_with("<svg"), "svg {i}");
        check_xml(svg).unwrap_or_else(|e| panic!("svg {i} is not well-formed: {e}"));
        assert!(
            out.html.contains(svg.as_str()),
            "svg {i} is not in the page"
        );
    }
    check_xml(&out.html).unwrap_or_else(|e| panic!("the page is not well-formed: {e}"));
}

#[test]
fn page_is_self_contained() {
    let dir = tmp_dir("eval_report_self_contained");
    let out = render(&realistic_input(&dir)).unwrap();
    let lower = out.html.to_lowercase();
    assert!(!lower.contains("<script"), "has a script");
    // The only URL allowed is the SVG namespace name, which is an identifier, not fetched.
    let stripped = lower.replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
    for bad in [
        "http://", "https://", "<link", "<iframe", "@import", "url(", " src=", "//cdn",
    ] {
        assert!(!stripped.contains(bad), "page contains {bad:?}");
    }
    // Images are embedded, not referenced.
    let hrefs: Vec<&str> = out
        .html
        .match_indices("href=\"")
        .map(|(i, _)| &out.html[i + 6..])
        .collect();
    assert!(!hrefs.is_empty());
    for h in hrefs {
        assert!(
            h.starts_with('#') || h.starts_with("data:image/png;base64,"),
            "href to {:?}",
            &h[..h.len().min(40)]
        );
    }
}

#[test]
fn user_text_is_escaped() {
    let dir = tmp_dir("eval_report_escape");
    let mut input = realistic_input(&dir);
    input.title = "<script>alert('x')</script> & co".into();
    input.stats.push(("<i>bad key</i>\u{1}".into(), 1.5));
    let out = render(&input).unwrap();
    assert!(!out.html.to_lowercase().contains("<script"));
    assert!(
        !out.html.contains("<b>&\"odd"),
        "raw class name in the page"
    );
    assert!(
        !out.html.contains("<i>bad key"),
        "raw stat name in the page"
    );
    assert!(
        out.html.contains("&lt;b&gt;&amp;&quot;odd&#39; name"),
        "escaped class name missing"
    );
    assert!(
        out.html.contains("&lt;/td&gt;&lt;script&gt;"),
        "escaped config value missing"
    );
    assert!(
        out.html
            .contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; co")
    );
    assert!(
        !out.html.contains('\u{1}'),
        "control character passed through"
    );
    check_xml(&out.html).unwrap();
    for svg in &out.svgs {
        check_xml(svg).unwrap();
    }
    assert_eq!(plot::escape("a<b>&\"'"), "a&lt;b&gt;&amp;&quot;&#39;");
}

#[test]
fn config_is_a_table_of_dotted_keys() {
    let dir = tmp_dir("eval_report_config");
    let out = render(&realistic_input(&dir)).unwrap();
    for (k, v) in [
        ("train.lr0", "0.01"),
        ("train.amp", "bf16"),
        ("distill.teachers.1.name", "sam-vit-b"),
        ("model.names", "[\"person\",\"car\""),
    ] {
        let cell = format!(
            "<td class=\"key\">{k}</td><td class=\"val\">{}",
            plot::escape(v)
        );
        assert!(out.html.contains(&cell), "config row {k} = {v} missing");
    }
    let none = render(&ReportInput::default()).unwrap();
    assert!(none.html.contains("no config") && none.html.contains("no metrics.jsonl"));
    check_xml(&none.html).unwrap();
}

#[test]
fn write_report_writes_the_rendered_page() {
    let dir = tmp_dir("eval_report_write");
    let path = dir.join("report.html");
    let out = write_report(&path, &realistic_input(&dir)).unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), out.html);
    let err = write_report(
        &dir.join("no/such/dir/report.html"),
        &ReportInput::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("report.html"), "{err}");
}

// ---------------------------------------------------------------------------------------
// metrics.jsonl
// ---------------------------------------------------------------------------------------

#[test]
fn bad_metrics_lines_are_reported_with_file_and_line() {
    let dir = tmp_dir("eval_report_bad_jsonl");
    let path = dir.join("metrics.jsonl");
    let text = [
        r#"{"epoch": 1, "train/loss": 2.0, "val/loss": 2.5}"#,
        r#"{"epoch": 2, "train/loss": 1.5, "val/loss": 2.1}"#,
        r#"{"epoch": 3, "train/loss": 1.2, "val/lo"#,
        "",
        "[1, 2, 3]",
        r#"{"train/loss": 1.1}"#,
        r#"{"epoch": 6, "train/loss": 1.0, "val/loss": null, "tag": "x"}"#,
    ]
    .join("\n");
    std::fs::write(&path, text).unwrap();
    let input = ReportInput {
        metrics_jsonl: Some(path.clone()),
        ..ReportInput::default()
    };
    let out = render(&input).unwrap();
    let name = path.display().to_string();
    assert_eq!(out.problems.len(), 3, "{:?}", out.problems);
    assert!(
        out.problems[0].starts_with(&format!("{name}:3: not valid JSON")),
        "{}",
        out.problems[0]
    );
    assert!(
        out.problems[1].starts_with(&format!("{name}:5: expected a JSON object, found an array"))
    );
    assert!(out.problems[2].starts_with(&format!("{name}:6: no numeric \"epoch\"")));
    for p in &out.problems {
        assert!(
            out.html.contains(&plot::escape(p)),
            "problem not on the page: {p}"
        );
    }
    assert!(
        out.html
            .contains("3 line(s) of the training log were left out")
    );
    assert!(
        out.html
            .contains("Not plotted (values are not numbers): tag")
    );

    let log = TrainingLog::read(&path).unwrap().unwrap();
    assert_eq!(log.x_key, "epoch");
    assert_eq!(log.records, 3);
    let train = log.series.iter().find(|s| s.0 == "train/loss").unwrap();
    assert_eq!(
        (train.1.clone(), train.2.clone()),
        (vec![1.0, 2.0, 6.0], vec![2.0, 1.5, 1.0])
    );
    let val = log.series.iter().find(|s| s.0 == "val/loss").unwrap();
    assert!(val.2[2].is_nan(), "null is a gap");
    // train/loss and val/loss share one chart titled "loss".
    let charts = log.charts(400.0, 260.0);
    assert_eq!(charts.len(), 1);
    assert_eq!(charts[0].title, "loss");
    let labels: Vec<&str> = charts[0].series.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(labels, ["train", "val"]);
    // The gap splits the val line into one polyline (epochs 1, 2) and nothing after.
    let svg = &out.svgs[0];
    assert_eq!(svg.matches("data-name=\"val\"").count(), 1);

    assert!(
        TrainingLog::read(&dir.join("missing.jsonl"))
            .unwrap()
            .is_none()
    );
}

#[test]
fn metrics_without_epoch_use_step_or_line_number() {
    let log = TrainingLog::parse(
        "{\"step\": 10, \"loss\": 1}\n{\"step\": 20, \"loss\": 0.5}\n",
        "m.jsonl",
    );
    assert_eq!(log.x_key, "step");
    assert_eq!(log.series[0].1, vec![10.0, 20.0]);
    let log = TrainingLog::parse("{\"a\": {\"b\": 1}}\n\n{\"a\": {\"b\": 2}}\n", "m.jsonl");
    assert_eq!(log.x_key, "line");
    assert_eq!(
        log.series,
        vec![("a/b".to_string(), vec![1.0, 3.0], vec![1.0, 2.0])]
    );
    assert!(log.problems.is_empty());
}

// ---------------------------------------------------------------------------------------
// Plot geometry.
// ---------------------------------------------------------------------------------------

fn attr(tag: &str, name: &str) -> f64 {
    let key = format!(" {name}=\"");
    let i = tag
        .find(&key)
        .unwrap_or_else(|| panic!("no {name} in {tag}"))
        + key.len();
    tag[i..i + tag[i..].find('"').unwrap()].parse().unwrap()
}

fn tag_at<'a>(svg: &'a str, marker: &str) -> &'a str {
    let i = svg.find(marker).unwrap_or_else(|| panic!("no {marker}"));
    let start = svg[..=i].rfind('<').unwrap();
    &svg[start..start + svg[start..].find('>').unwrap()]
}

fn polyline_points(svg: &str) -> Vec<(f64, f64)> {
    let tag = tag_at(svg, "<polyline");
    let i = tag.find(" points=\"").unwrap() + 9;
    tag[i..]
        .trim_end_matches(['"', '/'])
        .split(' ')
        .map(|p| {
            let (x, y) = p.split_once(',').unwrap();
            (x.parse().unwrap(), y.parse().unwrap())
        })
        .collect()
}

/// `(label, x or y position)` of every tick label with `class`.
fn ticks(svg: &str, class: &str, coord: &str) -> Vec<(String, f64)> {
    svg.match_indices(&format!("<text class=\"{class}\""))
        .map(|(i, _)| {
            let tag = &svg[i..i + svg[i..].find('>').unwrap()];
            let label = &svg[i + tag.len() + 1..i + svg[i..].find("</text>").unwrap()];
            (label.to_string(), attr(tag, coord))
        })
        .collect()
}

#[test]
fn line_chart_maps_data_to_the_plot_area() {
    let mut c = LineChart::new("t", "x", "y");
    c.x_range = Some((0.0, 1.0));
    c.y_range = Some((0.0, 1.0));
    let mut s = Series::new("s", vec![0.0, 0.25, 1.0], vec![0.0, 0.5, 1.0]);
    s.in_legend = false;
    c.series.push(s);
    let svg = c.to_svg().unwrap();
    check_xml(&svg).unwrap();
    let rect = tag_at(&svg, "class=\"plot-area\"");
    let (x, y, w, h) = (
        attr(rect, "x"),
        attr(rect, "y"),
        attr(rect, "width"),
        attr(rect, "height"),
    );
    // No legend: the plot area is the chart minus the documented margins.
    assert_eq!((x, y), (MARGIN_LEFT, MARGIN_TOP));
    assert_eq!(
        (w, h),
        (
            560.0 - MARGIN_LEFT - MARGIN_RIGHT,
            360.0 - MARGIN_TOP - MARGIN_BOTTOM
        )
    );
    let pts = polyline_points(&svg);
    let want = [(x, y + h), (x + 0.25 * w, y + 0.5 * h), (x + w, y)];
    assert_eq!(pts.len(), 3);
    for (p, q) in pts.iter().zip(want) {
        assert!(
            (p.0 - q.0).abs() < 0.01 && (p.1 - q.1).abs() < 0.01,
            "{p:?} vs {q:?}"
        );
    }
    // Concretely: (0.25, 0.5) → (64 + 0.25·480, 32 + 282 − 0.5·282) = (184, 173).
    assert!(
        (pts[1].0 - 184.0).abs() < 0.01 && (pts[1].1 - 173.0).abs() < 0.01,
        "{:?}",
        pts[1]
    );
    // Tick labels sit where their values map.
    let xt = ticks(&svg, "xtick", "x");
    assert_eq!(
        xt.iter().map(|t| t.0.as_str()).collect::<Vec<_>>(),
        ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"]
    );
    for (label, px) in xt {
        let v: f64 = label.parse().unwrap();
        assert!((px - (x + v * w)).abs() < 0.01, "x tick {label} at {px}");
    }
}

#[test]
fn auto_ranged_chart_agrees_with_its_ticks() {
    // Epochs 1..30 against a loss: the axes are widened to round ticks; every data point
    // must sit where the tick labels say its value is.
    let xs: Vec<f64> = (1..=30).map(f64::from).collect();
    let ys: Vec<f64> = xs.iter().map(|e| 0.6 + 1.6 * (-e / 12.0).exp()).collect();
    let mut c = LineChart::new("loss", "epoch", "loss");
    c.series.push(Series::new("train", xs.clone(), ys.clone()));
    let svg = c.to_svg().unwrap();
    check_xml(&svg).unwrap();
    fn lin(t: &[(String, f64)]) -> impl Fn(f64) -> f64 + use<> {
        let (a, b) = (t[0].clone(), t[t.len() - 1].clone());
        let (va, vb): (f64, f64) = (a.0.parse().unwrap(), b.0.parse().unwrap());
        move |v: f64| a.1 + (v - va) / (vb - va) * (b.1 - a.1)
    }
    let fx = lin(&ticks(&svg, "xtick", "x"));
    // y tick labels are drawn 4 px below the line they label (baseline offset).
    let yt: Vec<(String, f64)> = ticks(&svg, "ytick", "y")
        .into_iter()
        .map(|(l, y)| (l, y - 4.0))
        .collect();
    let fy = lin(&yt);
    let pts = polyline_points(&svg);
    assert_eq!(pts.len(), 30);
    for ((p, &x), &y) in pts.iter().zip(&xs).zip(&ys) {
        assert!(
            (p.0 - fx(x)).abs() < 0.02 && (p.1 - fy(y)).abs() < 0.02,
            "({x}, {y}) drawn at {p:?}"
        );
    }
    // The ticks cover the data.
    let xt = ticks(&svg, "xtick", "x");
    assert!(
        xt[0].0.parse::<f64>().unwrap() <= 1.0
            && xt.last().unwrap().0.parse::<f64>().unwrap() >= 30.0
    );
}

#[test]
fn gaps_and_bad_series() {
    let mut c = LineChart::new("t", "x", "y");
    c.series.push(Series::new(
        "s",
        vec![0.0, 1.0, 2.0, 3.0, 4.0],
        vec![1.0, 2.0, f64::NAN, 3.0, 4.0],
    ));
    let svg = c.to_svg().unwrap();
    assert_eq!(svg.matches("<polyline").count(), 2, "NaN splits the line");
    c.series
        .push(Series::new("short", vec![0.0, 1.0], vec![1.0]));
    let e = c.to_svg().unwrap_err().to_string();
    assert!(
        e.contains("short") && e.contains("2 x values but 1 y values"),
        "{e}"
    );
}

#[test]
fn many_classes_are_grey_and_out_of_the_legend() {
    let x = grid(11);
    let classes: Vec<NamedCurve> = (0..30)
        .map(|k| NamedCurve {
            name: format!("c{k}"),
            y: x.iter().map(|v| 1.0 - v * (k as f64 / 30.0)).collect(),
        })
        .collect();
    let svg = CurveSet::precision_recall("box", x, classes, 0.5)
        .chart()
        .to_svg()
        .unwrap();
    check_xml(&svg).unwrap();
    assert_eq!(svg.matches("stroke=\"#c4c4c4\"").count(), 30);
    assert_eq!(
        svg.matches("<g class=\"legend\">").count(),
        1,
        "only the mean is listed"
    );
    assert!(svg.contains("all classes 0.500 mAP@0.5") && svg.contains("30 classes in grey"));
}

#[test]
fn f1_mean_curve_is_labelled_with_its_maximum() {
    let x = grid(5);
    let set = CurveSet::f1_confidence(
        "box",
        x.clone(),
        vec![
            NamedCurve {
                name: "a".into(),
                y: vec![0.0, 0.4, 0.8, 0.2, 0.0],
            },
            NamedCurve {
                name: "b".into(),
                y: vec![0.0, 0.6, 0.4, 0.2, 0.0],
            },
        ],
    );
    let mean = set.mean.unwrap();
    assert_eq!(mean.y, vec![0.0, 0.5, 0.6000000000000001, 0.2, 0.0]);
    assert_eq!(mean.name, "all classes 0.60 at 0.500");
}

#[test]
fn confusion_matrix_heatmap() {
    let cm = confusion();
    let hm = cm.heatmap().unwrap();
    // Column-normalised: each true class's column sums to 1 (when it has any counts).
    for c in 0..cm.names.len() {
        let s: f64 = hm.values.iter().map(|r| r[c]).sum();
        assert!((s - 1.0).abs() < 1e-12, "column {c} sums to {s}");
    }
    assert_eq!(hm.text[0][0], cm.counts[0][0].to_string());
    let svg = hm.to_svg().unwrap();
    check_xml(&svg).unwrap();
    assert_eq!(svg.matches("<rect class=\"cell\"").count(), 36);
    // The diagonal count is written in its cell.
    assert!(svg.contains(&format!(">{}</text>", cm.counts[1][1])));
    let bad = ConfusionMatrix {
        title: "x".into(),
        names: vec!["a".into(), "b".into()],
        counts: vec![vec![1, 2], vec![3]],
    };
    assert!(bad.heatmap().unwrap_err().to_string().contains("2 names"));
    let bad = Heatmap { text: vec![], ..hm };
    assert!(bad.to_svg().is_err());
}

// ---------------------------------------------------------------------------------------
// Images.
// ---------------------------------------------------------------------------------------

fn unbase64(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("bad base64 {c}"),
    };
    let mut out = Vec::new();
    for chunk in s.as_bytes().chunks(4) {
        let pad = chunk.iter().filter(|&&c| c == b'=').count();
        let n = chunk
            .iter()
            .take(4 - pad)
            .enumerate()
            .fold(0u32, |n, (i, &c)| n | u32::from(val(c)) << (18 - 6 * i));
        out.extend_from_slice(&n.to_be_bytes()[1..4 - pad]);
    }
    out
}

#[test]
fn base64_matches_rfc4648_and_png_round_trips() {
    for (i, o) in [
        ("", ""),
        ("f", "Zg=="),
        ("fo", "Zm8="),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg=="),
        ("fooba", "Zm9vYmE="),
        ("foobar", "Zm9vYmFy"),
    ] {
        assert_eq!(plot::base64(i.as_bytes()), o);
    }
    let img = RgbImage::from_fn(7, 5, |x, y| Rgb([x as u8 * 30, y as u8 * 50, 7]));
    let uri = plot::png_data_uri(img.as_raw(), 7, 5, 3).unwrap();
    let png = unbase64(uri.strip_prefix("data:image/png;base64,").unwrap());
    assert_eq!(image::load_from_memory(&png).unwrap().to_rgb8(), img);
    assert!(plot::png_data_uri(&[0; 10], 1, 5, 2).is_err());
    assert!(
        plot::png_data_uri(&[0; 10], 2, 2, 3)
            .unwrap_err()
            .to_string()
            .contains("10 bytes")
    );
}

#[test]
fn image_tile_draws_boxes_in_image_coordinates() {
    let img = RgbImage::from_pixel(1000, 500, Rgb([10, 20, 30]));
    let mut mask = GrayImage::new(1000, 500);
    for y in 100..200 {
        for x in 100..300 {
            mask.put_pixel(x, y, Luma([1]));
        }
    }
    let t = ImageTile {
        name: "a<b>.jpg".into(),
        image: img,
        overlays: vec![
            Overlay {
                kind: OverlayKind::Prediction,
                class: 2,
                label: "car".into(),
                score: Some(0.873),
                bbox: [100.0, 100.0, 200.0, 100.0],
                mask: Some(mask),
            },
            Overlay {
                kind: OverlayKind::Truth,
                class: 2,
                label: "car".into(),
                score: None,
                bbox: [98.0, 103.0, 205.0, 96.0],
                mask: None,
            },
        ],
    };
    let svg = t.to_svg(200).unwrap();
    check_xml(&svg).unwrap();
    assert!(svg.starts_with(r#"<svg xmlns="http://www.w3.org/2000/svg" class="tile" width="200" height="100" viewBox="0 0 1000 500""#), "{}", &svg[..120]);
    assert!(svg.contains(r##"<rect x="100" y="100" width="200" height="100" fill="none" stroke="#ff701f" stroke-width="10"/>"##));
    assert!(svg.contains(r##"<rect x="98" y="103" width="205" height="96" fill="none" stroke="#ff701f" stroke-width="10" stroke-dasharray="25 15"/>"##));
    assert!(svg.contains(">car 0.87</text>"));
    assert!(svg.contains("<title>a&lt;b&gt;.jpg</title>"));
    // The mask layer is a 200×100 RGBA PNG coloured where the mask is.
    let i = svg.find("class=\"masks\"").unwrap();
    let href = &svg[i..];
    let b64 = &href[href.find("base64,").unwrap() + 7..];
    let layer = image::load_from_memory(&unbase64(&b64[..b64.find('"').unwrap()]))
        .unwrap()
        .to_rgba8();
    assert_eq!(layer.dimensions(), (200, 100));
    assert_eq!(layer.get_pixel(40, 30).0, [0xff, 0x70, 0x1f, 110]);
    assert_eq!(layer.get_pixel(10, 10).0[3], 0);
    assert_eq!(layer.get_pixel(61, 39).0[3], 0, "outside the mask");

    let mut bad = t.clone();
    bad.overlays[0].mask = Some(GrayImage::new(10, 10));
    let e = bad.to_svg(200).unwrap_err().to_string();
    assert!(e.contains("mask is 10×10 but the image is 1000×500"), "{e}");
    let mut bad = t;
    bad.overlays[1].bbox[0] = f64::NAN;
    assert!(
        bad.to_svg(200)
            .unwrap_err()
            .to_string()
            .contains("non-finite")
    );
}

// ---------------------------------------------------------------------------------------
// Browser.
// ---------------------------------------------------------------------------------------

fn find_chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|d| ["chromium", "chromium-browser", "google-chrome"].map(|n| d.join(n)))
        .find(|p| p.is_file())
}

/// Renders the realistic report in headless Chromium and checks the screenshot is not
/// blank. Skipped (with a message) where Chromium is not installed, as in CI.
#[test]
fn headless_chromium_screenshot_is_not_blank() {
    let dir = tmp_dir("eval_report_browser");
    let html = dir.join("report.html");
    write_report(&html, &realistic_input(&dir)).unwrap();
    let Some(chromium) = find_chromium() else {
        println!(
            "SKIPPED: no chromium on PATH; report written to {}",
            html.display()
        );
        return;
    };
    let png = dir.join("screenshot.png");
    let _ = std::fs::remove_file(&png);
    let profile = dir.join("chromium-profile");
    let status = std::process::Command::new(chromium)
        .args([
            "--headless",
            "--disable-gpu",
            "--no-sandbox",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--screenshot={}", png.display()))
        .arg("--window-size=1400,3000")
        .arg(format!("file://{}", html.display()))
        .output()
        .unwrap();
    assert!(
        png.is_file(),
        "no screenshot; chromium said: {}",
        String::from_utf8_lossy(&status.stderr)
    );
    let shot = image::open(&png).unwrap().to_rgb8();
    assert_eq!(shot.dimensions(), (1400, 3000));
    let colours: HashSet<[u8; 3]> = shot.pixels().map(|p| p.0).collect();
    let background = shot
        .pixels()
        .filter(|p| p.0 == [0xfa, 0xfa, 0xfa] || p.0 == [0xff, 0xff, 0xff])
        .count();
    let painted = 1.0 - background as f64 / (1400.0 * 3000.0);
    println!(
        "screenshot {}: {} colours, {:.1}% painted",
        png.display(),
        colours.len(),
        100.0 * painted
    );
    assert!(
        colours.len() > 500,
        "only {} colours: blank or broken page",
        colours.len()
    );
    assert!(
        painted > 0.05,
        "only {:.1}% of the page is painted",
        100.0 * painted
    );
}

#[test]
fn unusable_ranges_are_errors_not_hangs() {
    let mut c = LineChart::new("wide", "x", "y");
    c.series
        .push(Series::new("s", vec![0.0, 1.0], vec![-1e308, 1e308]));
    assert!(c.to_svg().unwrap_err().to_string().contains("y range"));
    let mut c = LineChart::new("fixed", "x", "y");
    c.x_range = Some((1.0, 1.0));
    assert!(c.to_svg().unwrap_err().to_string().contains("x range"));
    // Constant data still gets a visible band.
    let mut c = LineChart::new("flat", "x", "y");
    c.series
        .push(Series::new("s", vec![1.0, 2.0], vec![0.5, 0.5]));
    let svg = c.to_svg().unwrap();
    check_xml(&svg).unwrap();
    assert!(!svg.contains("NaN"));
}
