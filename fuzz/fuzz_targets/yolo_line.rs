//! Arbitrary bytes as a YOLO label file: parsing never panics, every line is either a
//! label or a problem naming that line, and every accepted label writes and parses back
//! to the same values (within the 10 significant digits we write).
#![no_main]
use edgedistill::data::yolo_txt::{YoloShape, parse_labels, write_line};
use libfuzzer_sys::fuzz_target;

fn coords(s: &YoloShape) -> Vec<f64> {
    match s {
        YoloShape::Box { cx, cy, w, h } => vec![*cx, *cy, *w, *h],
        YoloShape::Polygon(p) => p.iter().flatten().copied().collect(),
    }
}

fuzz_target!(|data: &[u8]| {
    let nc = data.first().map(|&b| usize::from(b % 8));
    let (labels, problems) = parse_labels(data, nc);
    let lines = data.split(|&b| b == b'\n').count();
    for p in &problems {
        let line = p.id.expect("a line problem names its line") as usize;
        assert!((1..=lines).contains(&line));
    }
    for (line, label) in labels {
        assert!((1..=lines).contains(&line));
        let mut text = String::new();
        write_line(&mut text, &label);
        let (back, p) = parse_labels(text.as_bytes(), None);
        assert!(p.is_empty(), "{text:?} does not parse back: {p:?}");
        assert_eq!(back.len(), 1);
        let (a, b) = (coords(&label.shape), coords(&back[0].1.shape));
        assert_eq!(back[0].1.class, label.class);
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() <= 5e-10 * x.abs(), "{x} -> {y}");
        }
    }
});
