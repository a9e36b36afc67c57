//! YOLO label lines, names files, and header-only image sizes (checked against the `image`
//! crate's decoders on files it writes).
use edgedistill::data::image_header::{ImageFormat, header_from_bytes, read_header};
use edgedistill::data::yolo_txt::{
    YoloLabel, YoloShape, parse_labels, parse_line, parse_names_txt, parse_names_yaml, write_line,
};
use edgedistill::data::{Problem, RecordKind};
use image::codecs::bmp::BmpEncoder;
use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::metadata::Orientation;
use image::{ExtendedColorType, ImageDecoder, ImageEncoder, ImageReader};
use std::io::Cursor;
use std::path::PathBuf;

fn bad(text: &str, nc: Option<usize>) -> Problem {
    parse_line(text, 7, nc).expect_err(text)
}

#[test]
fn detection_and_segmentation_lines() {
    let l = parse_line("3 0.5 0.25 0.1 1", 1, Some(4)).unwrap().unwrap();
    assert_eq!(
        l,
        YoloLabel {
            class: 3,
            shape: YoloShape::Box {
                cx: 0.5,
                cy: 0.25,
                w: 0.1,
                h: 1.0
            }
        }
    );
    let s = parse_line("0\t0 0  1 0 1 1 \r", 1, None).unwrap().unwrap();
    assert_eq!(
        s.shape,
        YoloShape::Polygon(vec![[0.0, 0.0], [1.0, 0.0], [1.0, 1.0]])
    );
    assert_eq!(s.extent(), [0.0, 0.0, 1.0, 1.0]);
    // ultralytics reads classes as floats: "2.0" is class 2; exponents are numbers too.
    let f = parse_line("2.0 5e-1 0.5 0.5 0.5", 1, None)
        .unwrap()
        .unwrap();
    assert_eq!(f.class, 2);
    assert!(parse_line("   \t \r", 1, None).unwrap().is_none());
    assert!(parse_line("", 1, None).unwrap().is_none());
}

#[test]
fn bad_lines_name_the_line_and_the_problem() {
    for (text, code, needle) in [
        ("0 0.5 0.5 0.5", "token_count", "4 tokens"),
        ("0 0.1 0.1 0.2 0.2 0.3", "token_count", "6 tokens"),
        ("0 0.1 0.1 0.2 0.2 0.3 0.3 0.4", "token_count", "8 tokens"),
        ("1", "token_count", "1 tokens"),
        ("x 0.5 0.5 0.5 0.5", "bad_class", "\"x\""),
        ("-1 0.5 0.5 0.5 0.5", "bad_class", "\"-1\""),
        ("1.5 0.5 0.5 0.5 0.5", "bad_class", "\"1.5\""),
        ("0 0.5 abc 0.5 0.5", "not_a_number", "token 3 \"abc\""),
        ("0 0.5 0.5 nan 0.5", "out_of_range", "token 4 = nan"),
        ("0 0.5 0.5 0.5 1.0001", "out_of_range", "token 5 = 1.0001"),
        ("0 -0.0001 0.5 0.5 0.5", "out_of_range", "token 2 = -0.0001"),
        ("0 0.1 0.1 0.2 0.2 0.3 1.5", "out_of_range", "token 7 = 1.5"),
    ] {
        let p = bad(text, None);
        assert_eq!(
            (p.kind, p.id, p.code),
            (RecordKind::Line, Some(7), code),
            "{text}"
        );
        assert!(p.msg.contains(needle), "{text}: {}", p.msg);
        assert!(p.to_string().starts_with("line 7: "), "{p}");
    }
    let p = bad("5 0.5 0.5 0.5 0.5", Some(5));
    assert_eq!(p.code, "unknown_class");
    assert!(
        p.msg.contains("class 5") && p.msg.contains("5 classes"),
        "{}",
        p.msg
    );
}

#[test]
fn a_file_keeps_good_lines_and_numbers_bad_ones() {
    let text = b"\xEF\xBB\xBF0 0.5 0.5 0.2 0.2\r\n\r\n1 0.5 0.5\r\n  \n2 0.1 0.1 0.9 0.1 0.5 0.9\n\xFF\xFE\n3 0.5 0.5 0.5 0.5";
    let (labels, problems) = parse_labels(text, Some(3));
    let lines: Vec<usize> = labels.iter().map(|(n, _)| *n).collect();
    assert_eq!(lines, [1, 5]);
    let bad: Vec<(u64, &str)> = problems.iter().map(|p| (p.id.unwrap(), p.code)).collect();
    assert_eq!(
        bad,
        [(3, "token_count"), (6, "not_utf8"), (7, "unknown_class")]
    );
}

#[test]
fn written_lines_parse_back() {
    let labels = [
        YoloLabel {
            class: 12,
            shape: YoloShape::Box {
                cx: 0.123456789012,
                cy: 1.0,
                w: 1e-7,
                h: 0.0,
            },
        },
        YoloLabel {
            class: 0,
            shape: YoloShape::Polygon(vec![[0.1, 0.2], [0.3, 0.4], [0.999999, 0.0]]),
        },
    ];
    let mut text = String::new();
    for l in &labels {
        write_line(&mut text, l);
    }
    assert_eq!(
        text,
        "12 0.123456789 1 0.0000001 0\n0 0.1 0.2 0.3 0.4 0.999999 0\n"
    );
    let (back, problems) = parse_labels(text.as_bytes(), None);
    assert!(problems.is_empty());
    assert_eq!(back[1].1, labels[1]);
}

#[test]
fn names_files() {
    assert_eq!(
        parse_names_txt("person\n  car \n\n\n", "n.txt").unwrap(),
        ["person", "car"]
    );
    let e = parse_names_txt("a\n\nb\n", "n.txt")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("n.txt: line 2: blank line"), "{e}");
    let e = parse_names_txt("a\nb\na\n", "n.txt")
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("n.txt: line 3:") && e.contains("\"a\" given twice"),
        "{e}"
    );
    assert!(parse_names_txt("\n \n", "n.txt").is_err());

    let flow = "path: ../d\nnames: ['a b', \"c,d\", e]  # three\nnc: 3\n";
    assert_eq!(
        parse_names_yaml(flow, "d.yaml").unwrap(),
        ["a b", "c,d", "e"]
    );
    let list = "nc: 2\nnames:\n  - person\n  # comment\n  - 'traffic light'\ntrain: x\n";
    assert_eq!(
        parse_names_yaml(list, "d.yaml").unwrap(),
        ["person", "traffic light"]
    );
    let map = "names:\n  0: person\n  1: car\n";
    assert_eq!(parse_names_yaml(map, "d.yaml").unwrap(), ["person", "car"]);
    let e = parse_names_yaml("names:\n  0: a\n  2: b\n", "d.yaml")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("d.yaml: line 3: class index 2"), "{e}");
    let e = parse_names_yaml("nc: 1\n", "d.yaml")
        .unwrap_err()
        .to_string();
    assert!(e.contains("names:"), "{e}");
}

// ---- header-only sizes ----

fn rgb(w: u32, h: u32) -> Vec<u8> {
    (0..w * h * 3).map(|i| (i * 7 % 251) as u8).collect()
}

/// A TIFF block holding only IFD0 with the orientation tag (little-endian).
fn exif_block(orientation: u16) -> Vec<u8> {
    let mut t = vec![
        0x49, 0x49, 42, 0, 8, 0, 0, 0, 1, 0, 0x12, 0x01, 3, 0, 1, 0, 0, 0,
    ];
    t.extend(orientation.to_le_bytes());
    t.extend([0, 0, 0, 0, 0, 0]);
    t
}

fn jpeg(w: u32, h: u32, orientation: Option<u16>) -> Vec<u8> {
    let mut out = Vec::new();
    let mut enc = JpegEncoder::new_with_quality(&mut out, 80);
    if let Some(o) = orientation {
        enc.set_exif_metadata(exif_block(o)).unwrap();
    }
    enc.write_image(&rgb(w, h), w, h, ExtendedColorType::Rgb8)
        .unwrap();
    out
}

fn png(w: u32, h: u32, orientation: Option<u16>) -> Vec<u8> {
    let mut out = Vec::new();
    let mut enc = PngEncoder::new(&mut out);
    if let Some(o) = orientation {
        enc.set_exif_metadata(exif_block(o)).unwrap();
    }
    enc.write_image(&rgb(w, h), w, h, ExtendedColorType::Rgb8)
        .unwrap();
    out
}

fn bmp(w: u32, h: u32) -> Vec<u8> {
    let mut out = Vec::new();
    BmpEncoder::new(&mut out)
        .write_image(&rgb(w, h), w, h, ExtendedColorType::Rgb8)
        .unwrap();
    out
}

/// The `image` crate's size with its orientation applied (what our loader decodes to).
fn reference(bytes: &[u8]) -> (u32, u32) {
    let mut dec = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .unwrap()
        .into_decoder()
        .unwrap();
    let (w, h) = dec.dimensions();
    assert_eq!(
        (w, h),
        ImageReader::new(Cursor::new(bytes))
            .with_guessed_format()
            .unwrap()
            .into_dimensions()
            .unwrap()
    );
    match dec.orientation().unwrap() {
        Orientation::Rotate90
        | Orientation::Rotate270
        | Orientation::Rotate90FlipH
        | Orientation::Rotate270FlipH => (h, w),
        _ => (w, h),
    }
}

#[test]
fn sizes_match_the_image_crate() {
    for (w, h) in [(1, 1), (7, 3), (64, 48), (3, 250), (1000, 17)] {
        for (bytes, fmt) in [
            (jpeg(w, h, None), ImageFormat::Jpeg),
            (png(w, h, None), ImageFormat::Png),
            (bmp(w, h), ImageFormat::Bmp),
        ] {
            let got = header_from_bytes(&bytes).unwrap();
            assert_eq!(got.format, fmt);
            assert_eq!((got.stored_width, got.stored_height), (w, h), "{fmt:?}");
            assert_eq!(got.display_size(), reference(&bytes), "{fmt:?} {w}x{h}");
        }
    }
}

#[test]
fn exif_orientation_swaps_for_quarter_turns() {
    for o in 1..=8u16 {
        for bytes in [jpeg(40, 10, Some(o)), png(40, 10, Some(o))] {
            let got = header_from_bytes(&bytes).unwrap();
            assert_eq!(got.orientation, o as u8);
            let want = if o >= 5 { (10, 40) } else { (40, 10) };
            assert_eq!(got.display_size(), want, "orientation {o}");
            assert_eq!(got.display_size(), reference(&bytes), "orientation {o}");
        }
    }
}

#[test]
fn progressive_and_top_down_and_core_headers() {
    // Progressive JPEG: the frame marker is SOF2 instead of SOF0.
    let mut j = jpeg(33, 21, None);
    let at = j.windows(2).position(|m| m == [0xFF, 0xC0]).unwrap();
    j[at + 1] = 0xC2;
    let got = header_from_bytes(&j).unwrap();
    assert_eq!((got.stored_width, got.stored_height), (33, 21));
    // Top-down BMP: negative height.
    let mut b = bmp(5, 9);
    b[22..26].copy_from_slice(&(-9i32).to_le_bytes());
    assert_eq!(header_from_bytes(&b).unwrap().display_size(), (5, 9));
    assert_eq!(reference(&b), (5, 9));
    // OS/2 BITMAPCOREHEADER (12 bytes, u16 sizes), 2×3 24-bit.
    let mut core = b"BM".to_vec();
    core.extend(((14 + 12 + 24) as u32).to_le_bytes());
    core.extend([0, 0, 0, 0]);
    core.extend(26u32.to_le_bytes());
    core.extend(12u32.to_le_bytes());
    core.extend(2u16.to_le_bytes());
    core.extend(3u16.to_le_bytes());
    core.extend(1u16.to_le_bytes());
    core.extend(24u16.to_le_bytes());
    core.extend([0u8; 24]);
    assert_eq!(header_from_bytes(&core).unwrap().display_size(), (2, 3));
    assert_eq!(reference(&core), (2, 3));
}

fn temp_file(name: &str, bytes: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ed-yolo-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn truncated_and_unknown_files_are_errors_naming_the_file() {
    let j = jpeg(16, 16, Some(6));
    let sof = j.windows(2).position(|m| m == [0xFF, 0xC0]).unwrap();
    let p = png(4, 4, None);
    let b = bmp(4, 4);
    let mut cases: Vec<(String, Vec<u8>, &str)> = vec![
        ("empty.jpg".into(), vec![], "empty file"),
        (
            "gif.jpg".into(),
            b"GIF89a\x01\0\x01\0".to_vec(),
            "not a JPEG, PNG or BMP",
        ),
        ("png-cut.png".into(), p[..20].to_vec(), "truncated"),
        ("bmp-cut.bmp".into(), b[..20].to_vec(), "truncated"),
    ];
    for cut in [3, 5, 21, sof + 3, sof + 7] {
        cases.push((
            format!("jpeg-cut-{cut}.jpg"),
            j[..cut].to_vec(),
            "truncated",
        ));
    }
    let mut zero = bmp(4, 4);
    zero[18..22].copy_from_slice(&0i32.to_le_bytes());
    cases.push(("zero.bmp".into(), zero, "zero size"));
    for (name, bytes, needle) in cases {
        let path = temp_file(&name, &bytes);
        let e = read_header(&path).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("{}: header: ", path.display())) && e.contains(needle),
            "{name}: {e}"
        );
    }
}
