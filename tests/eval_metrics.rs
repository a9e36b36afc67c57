//! `eval::metrics` against ultralytics 8.4.190. tests/fixtures/metrics-ultralytics.safetensors
//! (tools/reference/make_metrics_fixture.py, seed 0) holds four seeded random datasets and
//! ultralytics' own answers: box IoU (bit for bit), tp flags per prediction and IoU
//! threshold, confusion matrices and per-image counts (exactly), and the AP/P/R/F1 summary,
//! curves and means for boxes and masks (to 1e-9; they come out equal to the bit except
//! the smoothed F1 curve, whose numpy sum runs through BLAS: 1e-12). The argmax of that
//! curve, the confidence at which P, R, F1 are taken, must be the same index.
use edgedistill::Error;
use edgedistill::backend::cpu::mask_iou::PackedMasks;
use edgedistill::data::masks::Rle;
use edgedistill::eval::metrics::*;
use edgedistill::io::Safetensors;

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/metrics-ultralytics.safetensors"
);
/// Tolerance for the float outputs of the summary.
const TOL: f64 = 1e-9;
/// Tolerance for the smoothed F1 curve (BLAS summation order in numpy's convolve).
const TOL_SMOOTH: f64 = 1e-12;

struct Fx(Safetensors);

impl Fx {
    /// The committed fixture, or one made the same way with another seed
    /// (`ED_METRICS_FIXTURE=path`).
    fn open() -> Fx {
        let path = std::env::var("ED_METRICS_FIXTURE").unwrap_or_else(|_| FIXTURE.into());
        Fx(Safetensors::open(path).unwrap())
    }
    fn has(&self, n: &str) -> bool {
        self.0.contains(n)
    }
    fn i64(&self, n: &str) -> Vec<i64> {
        self.0.tensor(n).unwrap().to_vec::<i64>().unwrap()
    }
    fn f64(&self, n: &str) -> Vec<f64> {
        self.0.tensor(n).unwrap().to_vec::<f64>().unwrap()
    }
    fn f32(&self, n: &str) -> Vec<f32> {
        self.0.tensor(n).unwrap().to_vec::<f32>().unwrap()
    }
    fn u8(&self, n: &str) -> Vec<u8> {
        self.0.tensor(n).unwrap().to_vec::<u8>().unwrap()
    }
    fn usize(&self, n: &str) -> Vec<usize> {
        self.i64(n).into_iter().map(|v| v as usize).collect()
    }
    fn boxes(&self, n: &str) -> Vec<[f64; 4]> {
        self.f64(n)
            .chunks(4)
            .map(|c| [c[0], c[1], c[2], c[3]])
            .collect()
    }
    /// Rows of 10 flags.
    fn flags(&self, n: &str) -> Vec<[bool; N_IOU]> {
        self.u8(n)
            .chunks(N_IOU)
            .map(|c| std::array::from_fn(|t| c[t] != 0))
            .collect()
    }
    /// np.packbits rows (MSB first) of h×w row-major masks, as RLEs.
    fn masks(&self, n: &str, h: u32, w: u32) -> Vec<Rle> {
        let bytes = self.u8(n);
        let per = (h as usize * w as usize).div_ceil(8);
        bytes
            .chunks(per.max(1))
            .take(bytes.len().checked_div(per).unwrap_or(0))
            .map(|row| {
                let dense: Vec<u8> = (0..h as usize * w as usize)
                    .map(|i| (row[i / 8] >> (7 - i % 8)) & 1)
                    .collect();
                Rle::encode(&dense, h, w).unwrap()
            })
            .collect()
    }
}

struct Dataset {
    key: String,
    nc: usize,
    images: Vec<ImageEval>,
}

fn datasets(fx: &Fx) -> Vec<Dataset> {
    (0..)
        .map(|k| format!("d{k}"))
        .take_while(|k| fx.has(&format!("{k}.nc")))
        .map(|k| {
            let p = |s: &str| format!("{k}.{s}");
            let nc = fx.usize(&p("nc"))[0];
            let hw = fx.i64(&p("hw"));
            let (h, w) = (hw[0] as u32, hw[1] as u32);
            let (goff, doff) = (fx.usize(&p("gt.off")), fx.usize(&p("dt.off")));
            let (gb, gc, gm) = (
                fx.boxes(&p("gt.boxes")),
                fx.usize(&p("gt.cls")),
                fx.masks(&p("gt.masks"), h, w),
            );
            let (db, dc, dm) = (
                fx.boxes(&p("dt.boxes")),
                fx.usize(&p("dt.cls")),
                fx.masks(&p("dt.masks"), h, w),
            );
            let conf = fx.f32(&p("dt.conf"));
            assert_eq!((gm.len(), dm.len()), (gb.len(), db.len()));
            let images = (0..goff.len() - 1)
                .map(|i| ImageEval {
                    name: format!("img{i}"),
                    gt: (goff[i]..goff[i + 1])
                        .map(|j| GtObject {
                            bbox: gb[j],
                            class: gc[j],
                            mask: Some(gm[j].clone()),
                        })
                        .collect(),
                    pred: (doff[i]..doff[i + 1])
                        .map(|j| Detection {
                            bbox: db[j],
                            class: dc[j],
                            score: f64::from(conf[j]),
                            mask: Some(dm[j].clone()),
                        })
                        .collect(),
                })
                .collect();
            Dataset { key: k, nc, images }
        })
        .collect()
}

fn max_err(a: &[f64], b: &[f64], what: &str) -> f64 {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

#[test]
fn box_iou_is_ultralytics_bit_for_bit() {
    let fx = Fx::open();
    let mut compared = 0;
    for ds in datasets(&fx) {
        let want = fx.f32(&format!("{}.box_iou", ds.key));
        let mut got = Vec::new();
        for img in &ds.images {
            let m = match_image(img, ds.nc, false, &EvalOptions::default()).unwrap();
            let pb: Vec<[f64; 4]> = m.order.iter().map(|&i| img.pred[i].bbox).collect();
            let gb: Vec<[f64; 4]> = img.gt.iter().map(|g| g.bbox).collect();
            got.extend(box_iou_ultralytics(&gb, &pb)); // ultralytics' [gt, pred]
            // and the transposed call is the same matrix transposed, bit for bit
            let t = box_iou_ultralytics(&pb, &gb);
            for (g, _) in gb.iter().enumerate() {
                for (p, _) in pb.iter().enumerate() {
                    let (x, y) = (
                        t[p * gb.len() + g],
                        got[got.len() - gb.len() * pb.len() + g * pb.len() + p],
                    );
                    assert_eq!(x.to_bits(), y.to_bits());
                }
            }
        }
        assert_eq!(got.len(), want.len(), "{}", ds.key);
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(g.to_bits(), w.to_bits(), "{} entry {i}: {g} vs {w}", ds.key);
        }
        compared += got.len();
    }
    assert!(compared > 500, "only {compared} IoUs compared");
    eprintln!("box_iou_ultralytics: {compared} values bit-identical");
}

#[test]
fn tp_flags_match_ultralytics() {
    let fx = Fx::open();
    let (mut n, mut n_true) = (0, 0);
    for ds in datasets(&fx) {
        let (want, want_m) = (
            fx.flags(&format!("{}.tp", ds.key)),
            fx.flags(&format!("{}.tp_m", ds.key)),
        );
        let (mut got, mut got_m) = (Vec::new(), Vec::new());
        for img in &ds.images {
            let m = match_image(img, ds.nc, true, &EvalOptions::default()).unwrap();
            // back to the original prediction order
            let mut row = vec![[false; N_IOU]; m.order.len()];
            let mut row_m = row.clone();
            let tpm = m.tp_mask.unwrap();
            for (k, &i) in m.order.iter().enumerate() {
                row[i] = m.tp[k];
                row_m[i] = tpm[k];
            }
            got.extend(row);
            got_m.extend(row_m);
        }
        assert_eq!(got, want, "{} box tp", ds.key);
        assert_eq!(got_m, want_m, "{} mask tp", ds.key);
        n += got.len();
        n_true += got.iter().chain(&got_m).flatten().filter(|&&b| b).count();
    }
    assert!(
        n > 100 && n_true > 200,
        "{n} predictions, {n_true} true flags"
    );
}

fn check_metrics(fx: &Fx, pre: &str, got: &DetectionMetrics, nc: usize) -> f64 {
    let idx = fx.usize("curve_idx");
    let classes = fx.usize(&format!("{pre}.classes"));
    assert_eq!(got.classes, classes, "{pre} classes");
    let f = |s: &str| fx.f64(&format!("{pre}.{s}"));
    let mut err: f64 = 0.0;
    for (name, g) in [
        ("p", &got.p),
        ("r", &got.r),
        ("f1", &got.f1),
        ("tp", &got.tp),
        ("fp", &got.fp),
        ("ap50", &got.ap50),
        ("ap5095", &got.ap50_95),
        ("maps", &got.maps),
    ] {
        err = err.max(max_err(g, &f(name), &format!("{pre}.{name}")));
    }
    assert_eq!(got.maps.len(), nc);
    let ap: Vec<f64> = got.ap.iter().flatten().copied().collect();
    err = err.max(max_err(&ap, &f("ap"), &format!("{pre}.ap")));
    let means = [got.mp, got.mr, got.map50, got.map75, got.map, got.fitness];
    err = err.max(max_err(&means, &f("means"), &format!("{pre}.means")));
    let at = |v: &[f64]| idx.iter().map(|&i| v[i]).collect::<Vec<f64>>();
    err = err.max(max_err(&at(&got.curves.px), &f("px"), "px"));
    for (name, rows) in [
        ("p_curve", &got.curves.precision),
        ("r_curve", &got.curves.recall),
        ("f1_curve", &got.curves.f1),
        ("prec", &got.curves.pr),
    ] {
        let flat: Vec<f64> = rows.iter().flat_map(|r| at(r)).collect();
        let mut want = f(name);
        if classes.is_empty() && name == "prec" {
            // ultralytics' placeholder: one zero row when no class has ground truth
            assert!(want.iter().all(|&v| v == 0.0));
            want.clear();
        }
        err = err.max(max_err(&flat, &want, &format!("{pre}.{name}")));
    }
    let best = fx.usize(&format!("{pre}.best"))[0];
    assert_eq!(got.curves.best, best, "{pre}: max-F1 index");
    assert_eq!(got.best_conf, got.curves.px[best]);
    if !classes.is_empty() {
        let e = max_err(
            &at(&got.curves.f1_mean_smooth),
            &f("f1_smooth"),
            "f1_smooth",
        );
        assert!(e <= TOL_SMOOTH, "{pre}: smoothed F1 off by {e}");
        eprintln!("{pre}: smoothed mean F1 max error {e:e}");
    }
    assert!(err <= TOL, "{pre}: max error {err}");
    err
}

#[test]
fn summary_matches_ultralytics() {
    let fx = Fx::open();
    let mut worst: f64 = 0.0;
    let mut scored = 0;
    for ds in datasets(&fx) {
        let ev = evaluate(&ds.images, ds.nc, &EvalOptions::default()).unwrap();
        worst = worst.max(check_metrics(
            &fx,
            &format!("{}.box", ds.key),
            &ev.boxes,
            ds.nc,
        ));
        let masks = ev.masks.as_ref().expect("every object has a mask");
        worst = worst.max(check_metrics(
            &fx,
            &format!("{}.mask", ds.key),
            masks,
            ds.nc,
        ));
        let nt = |s: &str| fx.i64(&format!("{}.{s}", ds.key));
        let as_i64 = |v: &[u64]| v.iter().map(|&x| x as i64).collect::<Vec<_>>();
        assert_eq!(as_i64(&ev.nt_per_class), nt("nt_per_class"));
        assert_eq!(as_i64(&ev.nt_per_image), nt("nt_per_image"));
        scored += ev.boxes.classes.len();
    }
    assert!(scored >= 8, "only {scored} classes scored");
    eprintln!("summary: max |ours − ultralytics| = {worst:e}");
}

#[test]
fn confusion_matrix_matches_ultralytics() {
    let fx = Fx::open();
    let mut total = 0;
    for ds in datasets(&fx) {
        for (name, conf) in [("default", 0.25), ("val", 0.001)] {
            let opts = EvalOptions {
                confusion: ConfusionOptions { conf, iou: 0.45 },
                ..Default::default()
            };
            let ev = evaluate(&ds.images, ds.nc, &opts).unwrap();
            let got: Vec<i64> = ev.confusion.matrix.iter().map(|&v| v as i64).collect();
            assert_eq!(
                got,
                fx.i64(&format!("{}.cm.{name}", ds.key)),
                "{} {name}",
                ds.key
            );
            total += got.iter().sum::<i64>();
        }
    }
    assert!(total > 400, "{total} counts");
}

#[test]
fn per_image_counts_match_ultralytics_image_metrics() {
    let fx = Fx::open();
    for ds in datasets(&fx) {
        let ev = evaluate(&ds.images, ds.nc, &EvalOptions::default()).unwrap();
        for (which, rows) in [("box", 0), ("mask", 1)] {
            let want = fx.f64(&format!("{}.img.{which}", ds.key));
            for (i, (rec, w)) in ev.per_image.iter().zip(want.chunks(6)).enumerate() {
                let s = if rows == 0 {
                    &rec.boxes
                } else {
                    &rec.masks.as_ref().unwrap().matched
                };
                let got = [
                    s.precision,
                    s.recall,
                    s.f1,
                    s.tp as f64,
                    s.fp as f64,
                    s.fn_ as f64,
                ];
                assert_eq!(got.as_slice(), w, "{} img{i} {which}", ds.key);
                assert_eq!(rec.image, format!("img{i}"));
            }
        }
    }
}

#[test]
fn coco_box_iou_is_pycocotools_bit_for_bit() {
    let fx = Fx::open();
    let (dt, gt) = (fx.boxes("cocobox.dt"), fx.boxes("cocobox.gt"));
    let crowd: Vec<bool> = fx.u8("cocobox.crowd").iter().map(|&c| c != 0).collect();
    let got = box_iou_coco(&dt, &gt, &crowd);
    let want = fx.f64("cocobox.iou");
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g.to_bits(), w.to_bits(), "pair {i}: {g} vs {w}");
    }
    assert!(crowd.iter().any(|&c| c) && want.iter().filter(|&&v| v > 0.0).count() > 10);
}

#[test]
fn box_iou_hand_examples() {
    // a 4×2 box and a 2×4 box crossing in a 2×2 square: 4 / (8 + 8 − 4)
    let a = [[0.0, 1.0, 4.0, 3.0]];
    let b = [
        [1.0, 0.0, 3.0, 4.0],
        [4.0, 1.0, 6.0, 3.0],
        [1.0, 1.0, 1.0, 1.0],
    ];
    assert_eq!(box_iou(&a, &b), vec![4.0 / 12.0, 0.0, 0.0]);
    assert_eq!(box_iou(&[], &b), Vec::<f64>::new());
    // pycocotools xywh: the same pair, then crowd (union = dt area 8); touching → 0
    let (d, g) = (
        [[0.0, 1.0, 4.0, 2.0]],
        [[1.0, 0.0, 2.0, 4.0], [4.0, 1.0, 2.0, 2.0]],
    );
    assert_eq!(box_iou_coco(&d, &g, &[false, false]), vec![4.0 / 12.0, 0.0]);
    assert_eq!(box_iou_coco(&d, &g, &[true, false]), vec![4.0 / 8.0, 0.0]);
}

fn square(h: u32, w: u32, x0: usize, y0: usize, s: usize) -> Rle {
    let mut m = vec![0u8; (h * w) as usize];
    for y in y0..y0 + s {
        for x in x0..x0 + s {
            m[y * w as usize + x] = 1;
        }
    }
    Rle::encode(&m, h, w).unwrap()
}

#[test]
fn per_image_record_by_hand() {
    let (h, w) = (20, 20);
    let gt = |b: [f64; 4], c, m| GtObject {
        bbox: b,
        class: c,
        mask: Some(m),
    };
    let det = |b: [f64; 4], c, s, m| Detection {
        bbox: b,
        class: c,
        score: s,
        mask: Some(m),
    };
    let img = ImageEval {
        name: "hand.png".into(),
        gt: vec![
            gt([0.0, 0.0, 10.0, 10.0], 0, square(h, w, 0, 0, 10)),
            gt([10.0, 10.0, 20.0, 20.0], 1, square(h, w, 10, 10, 10)),
        ],
        pred: vec![
            // wrong class on gt 1: no match; lower score than the next
            det([10.0, 10.0, 20.0, 20.0], 0, 0.3, square(h, w, 10, 10, 10)),
            // gt 0 shifted by 2 in x: box IoU 80/120, mask 8×10 of 10×10 pixels
            det([2.0, 0.0, 12.0, 10.0], 0, 0.9, square(h, w, 2, 0, 10)),
            // a duplicate of it, later: gt 0 already taken
            det([2.0, 0.0, 12.0, 10.0], 0, 0.5, square(h, w, 2, 0, 10)),
        ],
    };
    let opts = EvalOptions::default();
    let r = per_image(&img, 2, &opts).unwrap();
    assert_eq!((r.n_gt, r.n_pred), (2, 3));
    assert_eq!(r.mean_conf, Some((0.9 + 0.5 + 0.3) / 3.0)); // in score order
    let b = &r.boxes;
    assert_eq!((b.tp, b.fp, b.fn_), (1, 2, 1));
    assert_eq!((b.precision, b.recall), (1.0 / 3.0, 0.5));
    assert_eq!(b.f1, 2.0 * (1.0 / 3.0) * 0.5 / (1.0 / 3.0 + 0.5));
    assert_eq!(b.mean_iou, Some(80.0 / 120.0));
    let m = r.masks.as_ref().unwrap();
    // 10×10 squares shifted by 2 px: 80 / 120, as the boxes
    assert_eq!(m.matched.mean_iou, Some(80.0 / 120.0));
    let iou: f64 = 80.0 / 120.0;
    assert_eq!(m.dice, Some(2.0 * iou / (1.0 + iou)));
    assert!((m.dice.unwrap() - 0.8).abs() < 1e-15); // 2·80 / (100 + 100)
    // image level, all three predictions score above 0.25: their union is 100 + 100 px
    // (the duplicate adds nothing), the ground truth's 200 px; they share 80 + 100 px
    let (inter, up, ug) = (180.0, 200.0, 200.0);
    assert_eq!(m.dice_image, Some(2.0 * inter / (up + ug)));

    // JSON lines round trip, with a loss map
    let mut r2 = r.clone();
    r2.loss = Some([("box".to_string(), 1.5), ("cls".to_string(), 0.25)].into());
    let dir = std::env::temp_dir().join(format!("ed_metrics_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("per_image.jsonl");
    write_jsonl(&path, &[r.clone(), r2.clone()]).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let back: Vec<PerImage> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(back, vec![r, r2]);
    assert!(text.lines().next().unwrap().contains("\"fn\":1"));
    assert!(!text.lines().next().unwrap().contains("loss"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn empty_image_scores_one() {
    let img = ImageEval {
        name: "empty".into(),
        ..Default::default()
    };
    let r = per_image(&img, 3, &EvalOptions::default()).unwrap();
    assert_eq!(
        (r.boxes.precision, r.boxes.recall, r.boxes.f1),
        (1.0, 1.0, 1.0)
    );
    assert_eq!((r.mean_conf, r.boxes.mean_iou, r.masks), (None, None, None));
    let ev = evaluate(&[img], 3, &EvalOptions::default()).unwrap();
    assert_eq!((ev.boxes.mp, ev.boxes.map), (0.0, 0.0));
    assert!(ev.boxes.classes.is_empty() && ev.masks.is_none());
}

fn format_err(e: Error) -> (String, String) {
    match e {
        Error::Format { path, record, .. } => (path, record),
        other => panic!("expected a Format error, got {other}"),
    }
}

#[test]
fn bad_input_names_image_and_object() {
    let good = Detection {
        bbox: [0.0, 0.0, 1.0, 1.0],
        class: 0,
        score: 0.5,
        mask: None,
    };
    let img = |pred: Vec<Detection>| ImageEval {
        name: "bad.jpg".into(),
        gt: vec![GtObject {
            bbox: [0.0, 0.0, 2.0, 2.0],
            class: 1,
            mask: None,
        }],
        pred,
    };
    let opts = EvalOptions::default();
    let cases = [
        (
            Detection {
                class: 2,
                ..good.clone()
            },
            "class 2",
        ),
        (
            Detection {
                score: f64::NAN,
                ..good.clone()
            },
            "NaN",
        ),
        (
            Detection {
                bbox: [3.0, 0.0, 1.0, 1.0],
                ..good.clone()
            },
            "x1 <= x2",
        ),
        (
            Detection {
                bbox: [0.0, f64::INFINITY, 1.0, 1.0],
                ..good.clone()
            },
            "inf",
        ),
    ];
    for (d, needle) in cases {
        let e = evaluate(&[img(vec![good.clone(), d])], 2, &opts).unwrap_err();
        let text = e.to_string();
        assert!(text.contains(needle), "{text}");
        assert_eq!(format_err(e), ("bad.jpg".into(), "prediction 1".into()));
    }
    // masks on some objects only
    let with_mask = Detection {
        mask: Some(square(4, 4, 0, 0, 2)),
        ..good.clone()
    };
    let e = evaluate(&[img(vec![with_mask.clone()])], 2, &opts).unwrap_err();
    assert_eq!(format_err(e), ("bad.jpg".into(), "gt 0".into()));
    // masks of different sizes in one image
    let mut im = img(vec![with_mask]);
    im.gt[0].mask = Some(square(5, 4, 0, 0, 2));
    let e = evaluate(&[im], 2, &opts).unwrap_err();
    let t = e.to_string();
    assert!(t.contains("4×4") && t.contains("5×4"), "{t}");
    assert_eq!(format_err(e), ("bad.jpg".into(), "prediction 0".into()));
    // and ap_per_class on mismatched lengths
    assert!(ap_per_class(&[[true; N_IOU]], &[0.5, 0.4], &[0], &[0], 1).is_err());
}

#[test]
fn deterministic_across_thread_counts() {
    let fx = Fx::open();
    let ds = datasets(&fx).into_iter().next().unwrap();
    let run = |threads| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| evaluate(&ds.images, ds.nc, &EvalOptions::default()).unwrap())
    };
    let (a, b) = (run(1), run(4));
    assert_eq!(a, b);
    assert!(a.boxes.map > 0.0);
}

#[test]
fn mask_iou_dispatch_matches_pycocotools_port() {
    let (h, w) = (30, 70); // two words per row
    let masks: Vec<Rle> = (0..6).map(|i| square(h, w, 9 * i, i, 12)).collect();
    let crowd = [false, true, false, false, true, false];
    let want = Rle::iou(&masks, &masks, &crowd).unwrap();
    for backend in [MaskIouBackend::Cpu, MaskIouBackend::Auto] {
        assert_eq!(mask_iou_rle(&masks, &masks, &crowd, backend).unwrap(), want);
    }
    assert!(want.iter().filter(|&&v| v > 0.0 && v < 1.0).count() >= 6);
    let a = PackedMasks::from_u8(&[1, 0, 0, 1], 1, 2, 2).unwrap();
    let b = PackedMasks::from_u8(&[1; 4], 1, 2, 2).unwrap();
    assert_eq!(
        mask_iou(&a, &b, &[false], MaskIouBackend::Auto).unwrap(),
        vec![0.5]
    );
    assert!(mask_iou(&a, &b, &[], MaskIouBackend::Auto).is_err());
}
