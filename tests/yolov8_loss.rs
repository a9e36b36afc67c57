//! ultralytics 8.4.190 v8DetectionLoss / v8SegmentationLoss parity: loss items, loss sum,
//! gradients and the TAL assigner against tools/reference/make_yolo_loss_fixture.py, and the
//! shared yolov8n-seg fixture's loss; CIoU value and gradient.
mod common;
use common::shared_or_skip;
use edgedistill::autograd::gradcheck::{GradcheckOpts, gradcheck};
use edgedistill::io::Safetensors;
use edgedistill::loss::yolo::{
    Targets, YoloLossConfig, assign_batch, ciou, ciou_alpha, ciou_f32, ciou_fixed_alpha,
    detection_loss, segmentation_loss,
};
use edgedistill::{DType, Tensor};
use std::path::Path;

fn fixture() -> Safetensors {
    let p =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/yolo_loss_cases.safetensors");
    Safetensors::open(p).unwrap()
}

fn f32s(f: &Safetensors, name: &str) -> Vec<f32> {
    f.tensor(name).unwrap().to_vec_f32().unwrap()
}

/// The generator's splitmix64 values: lo + (hi − lo)·k/65536, k = top 16 bits.
fn generate(seed: u64, n: usize, lo: f64, hi: f64) -> Vec<f32> {
    (0..n as u64)
        .map(|i| {
            let mut z = ((seed << 32) + i).wrapping_add(0x9E37_79B9_7F4A_7C15);
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            (lo + (hi - lo) * (z >> 48) as f64 / 65536.0) as f32
        })
        .collect()
}

struct Case {
    seg: bool,
    cfg: YoloLossConfig,
    feats: Vec<Tensor>,
    pm: Option<Tensor>,
    proto: Option<Tensor>,
    targets: Targets,
}

fn load_case(f: &Safetensors, name: &str) -> Case {
    let meta: serde_json::Value = serde_json::from_str(&f.metadata()["cases"]).unwrap();
    let m = &meta[name];
    let seg = m["seg"].as_bool().unwrap();
    let cfg = YoloLossConfig::new(m["nc"].as_u64().unwrap() as usize);
    let mut leaves = Vec::new();
    for spec in m["inputs"].as_array().unwrap() {
        let shape: Vec<usize> = spec["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect();
        let n: usize = shape.iter().product();
        let mut v = generate(
            spec["seed"].as_u64().unwrap(),
            n,
            spec["lo"].as_f64().unwrap(),
            spec["hi"].as_f64().unwrap(),
        );
        if let Some(shift) = spec.get("cls_shift").and_then(|s| s.as_f64()) {
            let (no, hw) = (shape[1], shape[2] * shape[3]);
            for (i, x) in v.iter_mut().enumerate() {
                if (i / hw) % no >= 64 {
                    *x += shift as f32;
                }
            }
        }
        leaves.push(
            Tensor::from_vec(v, shape)
                .unwrap()
                .requires_grad_()
                .unwrap(),
        );
    }
    let (pm, proto) = if seg {
        (leaves.get(3).cloned(), leaves.get(4).cloned())
    } else {
        (None, None)
    };
    leaves.truncate(3);
    let p = format!("{name}.");
    let bboxes = f32s(f, &format!("{p}bboxes"));
    let masks = seg.then(|| {
        f.tensor(&format!("{p}masks"))
            .unwrap()
            .to_dtype(DType::F32)
            .unwrap()
    });
    let targets = Targets {
        batch_idx: f32s(f, &format!("{p}batch_idx"))
            .iter()
            .map(|&v| v as usize)
            .collect(),
        cls: f32s(f, &format!("{p}cls"))
            .iter()
            .map(|&v| v as usize)
            .collect(),
        bboxes: bboxes.chunks(4).map(|c| [c[0], c[1], c[2], c[3]]).collect(),
        masks,
    };
    Case {
        seg,
        cfg,
        feats: leaves,
        pm,
        proto,
        targets,
    }
}

fn close(got: f64, want: f64, atol: f64, rtol: f64) -> bool {
    (got - want).abs() <= atol + rtol * want.abs()
}

/// Dense gradient from the fixture's non-zero entries.
fn sparse_grad(f: &Safetensors, prefix: &str) -> Vec<f64> {
    let shape = f
        .tensor(&format!("{prefix}.shape"))
        .unwrap()
        .to_vec_f64()
        .unwrap();
    let n: f64 = shape.iter().product();
    let mut g = vec![0.0; n as usize];
    let idx = f
        .tensor(&format!("{prefix}.idx"))
        .unwrap()
        .to_vec_f64()
        .unwrap();
    let val = f
        .tensor(&format!("{prefix}.val"))
        .unwrap()
        .to_vec_f64()
        .unwrap();
    for (i, v) in idx.iter().zip(val) {
        g[*i as usize] = v;
    }
    g
}

fn check_grad(what: &str, got: Option<Tensor>, want: &[f64]) {
    let got = got
        .map(|g| g.to_vec_f64().unwrap())
        .unwrap_or_else(|| vec![0.0; want.len()]);
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(0f64, |m, v| m.max(v.abs()));
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            close(*g, *w, 1e-6 + 1e-4 * scale, 1e-3),
            "{what}[{i}]: got {g:e} want {w:e} (max |grad| {scale:e})"
        );
    }
}

const CASES: [&str; 5] = ["seg_a", "seg_b", "seg_empty", "det_a", "det_b"];

#[test]
fn loss_items_sum_and_gradients_match_ultralytics() {
    let f = fixture();
    for name in CASES {
        let c = load_case(&f, name);
        let out = if c.seg {
            segmentation_loss(
                &c.cfg,
                &c.feats,
                c.pm.as_ref().unwrap(),
                c.proto.as_ref().unwrap(),
                &c.targets,
            )
            .unwrap()
        } else {
            detection_loss(&c.cfg, &c.feats, &c.targets).unwrap()
        };
        let want = f32s(&f, &format!("{name}.loss_items"));
        // detection items are (box, cls, dfl); ours (box, seg=0, cls, dfl, 0)
        let want: Vec<f32> = if c.seg {
            want
        } else {
            vec![want[0], 0.0, want[1], want[2], 0.0]
        };
        for (k, (g, w)) in out.items.iter().zip(&want).enumerate() {
            assert!(
                close(*g as f64, *w as f64, 1e-4, 1e-4),
                "{name} item {k}: got {g} want {w}"
            );
        }
        let total = out.total.to_scalar_f64().unwrap();
        let want_sum = f32s(&f, &format!("{name}.loss_sum"))[0] as f64;
        assert!(
            close(total, want_sum, 1e-4, 1e-4),
            "{name} loss_sum: got {total} want {want_sum}"
        );
        assert_eq!(out.per_image.len(), c.feats[0].dims()[0]);
        assert!(
            out.per_image
                .iter()
                .flatten()
                .all(|v| v.is_finite() && *v >= 0.0)
        );
        out.total.backward().unwrap();
        for (l, x) in c.feats.iter().enumerate() {
            check_grad(
                &format!("{name} feats.{l}"),
                x.grad(),
                &sparse_grad(&f, &format!("{name}.grad.feats.{l}")),
            );
        }
        if c.seg {
            check_grad(
                &format!("{name} pred_masks"),
                c.pm.unwrap().grad(),
                &sparse_grad(&f, &format!("{name}.grad.pred_masks")),
            );
            check_grad(
                &format!("{name} proto"),
                c.proto.unwrap().grad(),
                &sparse_grad(&f, &format!("{name}.grad.proto")),
            );
        }
    }
}

#[test]
fn assigner_matches_torch_assigner() {
    let f = fixture();
    for name in CASES {
        let c = load_case(&f, name);
        let asg = assign_batch(&c.cfg, &c.feats, &c.targets).unwrap();
        let p = format!("{name}.");
        let fg = f
            .tensor(&format!("{p}fg_mask"))
            .unwrap()
            .to_vec_f64()
            .unwrap();
        let gi = f
            .tensor(&format!("{p}target_gt_idx"))
            .unwrap()
            .to_vec_f64()
            .unwrap();
        let tb = f32s(&f, &format!("{p}target_bboxes"));
        let ts = f32s(&f, &format!("{p}target_scores"));
        let nc = c.cfg.nc;
        let na = asg[0].fg.len();
        let mut nfg = 0;
        for (b, a_img) in asg.iter().enumerate() {
            for a in 0..na {
                let k = b * na + a;
                assert_eq!(a_img.fg[a], fg[k] != 0.0, "{name} image {b} anchor {a}: fg");
                nfg += a_img.fg[a] as usize;
                for (s, want) in tb[k * 4..k * 4 + 4].iter().enumerate() {
                    let got = a_img.target_bboxes[a][s];
                    assert!(
                        close(got as f64, *want as f64, 1e-4, 1e-6),
                        "{name} {b}/{a} box[{s}] {got} vs {want}"
                    );
                }
                if a_img.fg[a] {
                    assert_eq!(
                        a_img.target_gt_idx[a], gi[k] as usize,
                        "{name} {b}/{a}: gt idx"
                    );
                }
                for cl in 0..nc {
                    let got = if a_img.fg[a] && a_img.target_labels[a] == cl {
                        a_img.target_score[a]
                    } else {
                        0.0
                    };
                    let want = ts[k * nc + cl];
                    assert!(
                        close(got as f64, want as f64, 1e-5, 1e-4),
                        "{name} {b}/{a} score[{cl}] {got} vs {want}"
                    );
                }
            }
        }
        if name != "seg_empty" {
            assert!(nfg > 0, "{name}: the case should have foreground");
        }
    }
}

#[test]
fn shared_yolov8n_seg_loss_matches() {
    let name = "yolov8n-seg-visible.safetensors";
    let Some(path) = shared_or_skip(name) else {
        return;
    };
    let s = Safetensors::open(&path).unwrap();
    let cfg_json: serde_json::Value = serde_json::from_str(&s.metadata()["config"]).unwrap();
    let tol: serde_json::Value = serde_json::from_str(&s.metadata()["tolerances"]).unwrap();
    let (atol, rtol) = (
        tol["outputs.loss*"]["atol"].as_f64().unwrap(),
        tol["outputs.loss*"]["rtol"].as_f64().unwrap(),
    );
    let hyp = &cfg_json["hyp"];
    let mut cfg = YoloLossConfig::new(cfg_json["nc"].as_u64().unwrap() as usize);
    cfg.box_gain = hyp["box"].as_f64().unwrap() as f32;
    cfg.cls_gain = hyp["cls"].as_f64().unwrap() as f32;
    cfg.dfl_gain = hyp["dfl"].as_f64().unwrap() as f32;
    cfg.tal_topk = hyp["tal_topk"].as_u64().unwrap() as usize;
    cfg.overlap_mask = hyp["overlap_mask"].as_bool().unwrap();
    // The shared file holds the neck features; the head's cat(cv2, cv3) outputs come from
    // the generator, which checked that they reproduce the shared loss_items.
    let hp = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/yolo_loss_shared_head.safetensors");
    let head = Safetensors::open(hp).unwrap();
    let feats: Vec<Tensor> = (0..3)
        .map(|l| head.tensor(&format!("feats.{l}")).unwrap())
        .collect();
    let bboxes = s.tensor("inputs.bboxes").unwrap().to_vec_f32().unwrap();
    let targets = Targets {
        batch_idx: s
            .tensor("inputs.batch_idx")
            .unwrap()
            .to_vec_f32()
            .unwrap()
            .iter()
            .map(|&v| v as usize)
            .collect(),
        cls: s
            .tensor("inputs.cls")
            .unwrap()
            .to_vec_f32()
            .unwrap()
            .iter()
            .map(|&v| v as usize)
            .collect(),
        bboxes: bboxes.chunks(4).map(|c| [c[0], c[1], c[2], c[3]]).collect(),
        masks: Some(s.tensor("inputs.masks").unwrap()),
    };
    let pm = s.tensor("outputs.train.mask_coefficient").unwrap();
    let proto = s.tensor("outputs.train.proto").unwrap();
    let out = segmentation_loss(&cfg, &feats, &pm, &proto, &targets).unwrap();
    let want = s
        .tensor("outputs.loss_items")
        .unwrap()
        .to_vec_f64()
        .unwrap();
    for (k, (g, w)) in out.items.iter().zip(&want).enumerate() {
        assert!(
            close(*g as f64, *w, atol, rtol),
            "item {k}: got {g} want {w}"
        );
    }
    let total = out.total.to_scalar_f64().unwrap();
    let want_sum = s.tensor("outputs.loss_sum").unwrap().to_vec_f64().unwrap()[0];
    assert!(
        close(total, want_sum, atol, rtol),
        "loss_sum: got {total} want {want_sum}"
    );
}

/// Box pairs (xyxy) for the CIoU value checks.
const CIOU_CASES: [([f64; 4], [f64; 4]); 3] = [
    ([0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 10.0]),
    ([0.0, 0.0, 10.0, 10.0], [5.0, 5.0, 15.0, 15.0]),
    ([1.0, 2.0, 4.0, 9.0], [2.5, 1.0, 8.0, 4.0]),
];

#[test]
fn ciou_value_and_gradient() {
    // torch float64 bbox_iou(a, b, xywh=False, CIoU=True) for CIOU_CASES.
    let torch = [
        0.9999999790000006,
        0.03174603005643742,
        -0.08927675227836548,
    ];
    let want = ciou_reference();
    for (w, t) in want.iter().zip(torch) {
        assert!((w - t).abs() < 1e-12, "reference formula {w} vs torch {t}");
    }
    for ((a, b), w) in CIOU_CASES.iter().zip(want) {
        let got = ciou_f32(a.map(|v| v as f32), b.map(|v| v as f32)) as f64;
        assert!((got - w).abs() < 1e-5, "ciou_f32 {a:?} {b:?}: {got} vs {w}");
        let ta = Tensor::from_vec(a.to_vec(), [1, 4]).unwrap();
        let tb = Tensor::from_vec(b.to_vec(), [1, 4]).unwrap();
        let got = ciou(&ta, &tb).unwrap().to_scalar_f64().unwrap();
        assert!((got - w).abs() < 1e-9, "ciou {a:?} {b:?}: {got} vs {w}");
    }
    // ciou's backward holds alpha constant: its gradient is that of ciou_fixed_alpha at the
    // same alpha, which gradcheck can difference.
    let b1 = Tensor::from_vec(vec![1.0f64, 2.0, 4.0, 9.0, 0.5, 0.2, 3.0, 2.0], [2, 4]).unwrap();
    let b2 = Tensor::from_vec(vec![2.5f64, 1.0, 8.0, 4.0, 0.1, 0.4, 2.2, 3.1], [2, 4]).unwrap();
    let alpha = ciou_alpha(&b1, &b2).unwrap();
    let full = ciou(&b1, &b2).unwrap().to_vec_f64().unwrap();
    let fixed = ciou_fixed_alpha(&b1, &b2, &alpha)
        .unwrap()
        .to_vec_f64()
        .unwrap();
    assert_eq!(full, fixed);
    let opts = GradcheckOpts {
        eps: 1e-6,
        atol: 1e-7,
        rtol: 1e-5,
    };
    gradcheck(
        "ciou",
        &[b1.clone(), b2.clone()],
        |t| ciou_fixed_alpha(&t[0], &t[1], &alpha),
        &opts,
    )
    .unwrap();
    // ... and ciou's own backward gives that gradient.
    let (l1, l2) = (
        b1.clone().requires_grad_().unwrap(),
        b2.clone().requires_grad_().unwrap(),
    );
    ciou(&l1, &l2)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let (f1, f2) = (b1.requires_grad_().unwrap(), b2.requires_grad_().unwrap());
    ciou_fixed_alpha(&f1, &f2, &alpha)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    assert_eq!(
        l1.grad().unwrap().to_vec_f64().unwrap(),
        f1.grad().unwrap().to_vec_f64().unwrap()
    );
    assert_eq!(
        l2.grad().unwrap().to_vec_f64().unwrap(),
        f2.grad().unwrap().to_vec_f64().unwrap()
    );
}

/// CIoU in f64 written out from the paper's definition (eps as in ultralytics).
fn ciou_reference() -> Vec<f64> {
    CIOU_CASES
        .iter()
        .map(|(a, b)| {
            let eps = 1e-7;
            let (w1, h1, w2, h2) = (
                a[2] - a[0],
                a[3] - a[1] + eps,
                b[2] - b[0],
                b[3] - b[1] + eps,
            );
            let inter = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0)
                * (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
            let iou = inter / (w1 * h1 + w2 * h2 - inter + eps);
            let cw = a[2].max(b[2]) - a[0].min(b[0]);
            let ch = a[3].max(b[3]) - a[1].min(b[1]);
            let c2 = cw * cw + ch * ch + eps;
            let rho2 =
                ((b[0] + b[2] - a[0] - a[2]).powi(2) + (b[1] + b[3] - a[1] - a[3]).powi(2)) / 4.0;
            let v =
                4.0 / std::f64::consts::PI.powi(2) * ((w2 / h2).atan() - (w1 / h1).atan()).powi(2);
            let alpha = v / (1.0 - iou + v + eps);
            iou - (rho2 / c2 + v * alpha)
        })
        .collect()
}

#[test]
fn bad_inputs_are_errors() {
    let cfg = YoloLossConfig::new(2);
    let feats = vec![
        Tensor::zeros([1, 66, 4, 4], DType::F32),
        Tensor::zeros([1, 66, 2, 2], DType::F32),
        Tensor::zeros([1, 66, 1, 1], DType::F32),
    ];
    let t = Targets {
        batch_idx: vec![1],
        cls: vec![0],
        bboxes: vec![[0.5, 0.5, 0.2, 0.2]],
        masks: None,
    };
    assert!(
        detection_loss(&cfg, &feats, &t).is_err(),
        "image index out of range"
    );
    let t = Targets {
        batch_idx: vec![0],
        cls: vec![2],
        bboxes: vec![[0.5, 0.5, 0.2, 0.2]],
        masks: None,
    };
    assert!(
        detection_loss(&cfg, &feats, &t).is_err(),
        "class out of range"
    );
    let t = Targets {
        batch_idx: vec![0],
        cls: vec![0],
        bboxes: vec![[0.5, 0.5, 0.2, 0.2]],
        masks: None,
    };
    assert!(
        detection_loss(&cfg, &feats[..2], &t).is_err(),
        "levels vs strides"
    );
    let mut c2 = cfg.clone();
    c2.overlap_mask = true;
    assert!(detection_loss(&c2, &feats, &t).is_err(), "overlap_mask");
    assert!(detection_loss(&cfg, &feats, &t).is_ok());
}
