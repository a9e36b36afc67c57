//! YOLO label lines and names files. (Header-only image sizes, once tested here, are in
//! `data_image.rs` with the rest of the image reader.)
use edgedistill::data::yolo_txt::{
    YoloLabel, YoloShape, parse_labels, parse_line, parse_names_txt, parse_names_yaml, write_line,
};
use edgedistill::data::{Problem, RecordKind};

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
