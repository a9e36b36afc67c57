//! Grounding DINO loss against transformers 5.23 (losses, matched indices, gradients of
//! every head), the linear-assignment solver against brute force and scipy, f64
//! gradchecks of the focal and GIoU terms, and bad-input errors.
mod common;
use edgedistill::autograd::gradcheck::{GradcheckOpts, gradcheck};
use edgedistill::io::Safetensors;
use edgedistill::loss::grounding_dino::{
    GroundingDinoLossConfig, dense_label_map, grounding_dino_loss,
};
use edgedistill::loss::grounding_dino_match::{
    GdPrediction, GdTarget, LabelMap, build_label_maps, build_text_mask,
};
use edgedistill::loss::linear_sum_assignment;
use edgedistill::{DType, Tensor};

fn fixture() -> Safetensors {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    Safetensors::open(dir.join("tests/fixtures/grounding-dino-loss.safetensors")).unwrap()
}

/// xorshift64* in [0, 1).
struct Rand(u64);
impl Rand {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545F4914F6CDD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Minimum total over all assignments of the smaller side (None if every one hits +inf).
fn brute_force(c: &[f64], r: usize, k: usize) -> Option<f64> {
    fn rec(c: &[f64], r: usize, k: usize, i: usize, used: &mut [bool], acc: f64, best: &mut f64) {
        if i == r {
            *best = best.min(acc);
            return;
        }
        for j in 0..k {
            if !used[j] {
                used[j] = true;
                rec(c, r, k, i + 1, used, acc + c[i * k + j], best);
                used[j] = false;
            }
        }
    }
    // Work on the orientation with rows <= cols.
    let (c, r, k) = if r <= k {
        (c.to_vec(), r, k)
    } else {
        let t = (0..k)
            .flat_map(|j| (0..r).map(move |i| c[i * k + j]))
            .collect();
        (t, k, r)
    };
    let mut best = f64::INFINITY;
    rec(&c, r, k, 0, &mut vec![false; k], 0.0, &mut best);
    best.is_finite().then_some(best)
}

fn check_pairs(p: &[(usize, usize)], r: usize, k: usize) {
    assert_eq!(p.len(), r.min(k));
    assert!(
        p.windows(2).all(|w| w[0].0 < w[1].0),
        "sorted by row: {p:?}"
    );
    let mut cols: Vec<usize> = p.iter().map(|x| x.1).collect();
    cols.sort_unstable();
    cols.dedup();
    assert_eq!(cols.len(), p.len(), "distinct columns: {p:?}");
    assert!(p.iter().all(|&(i, j)| i < r && j < k));
}

#[test]
fn assignment_matches_brute_force() {
    let mut rng = Rand(0x9E3779B97F4A7C15);
    let mut n = 0;
    for r in 1..=6 {
        for k in 1..=6 {
            for kind in 0..4 {
                for _ in 0..6 {
                    let c: Vec<f64> = (0..r * k)
                        .map(|_| match kind {
                            0 => rng.next() * 20.0 - 10.0,
                            1 => (rng.next() * 3.0).floor(), // many ties
                            2 => (rng.next() * 100.0).floor() - 50.0,
                            _ if rng.next() < 0.25 => f64::INFINITY,
                            _ => rng.next(),
                        })
                        .collect();
                    let want = brute_force(&c, r, k);
                    match linear_sum_assignment(&c, r, k) {
                        Ok(p) => {
                            check_pairs(&p, r, k);
                            let got: f64 = p.iter().map(|&(i, j)| c[i * k + j]).sum();
                            let want =
                                want.expect("solver found an assignment brute force did not");
                            assert!(
                                (got - want).abs() < 1e-9,
                                "{r}x{k} kind {kind}: {got} vs {want}"
                            );
                        }
                        Err(e) => {
                            assert!(
                                want.is_none(),
                                "{r}x{k}: {e} but brute force found {want:?}"
                            );
                            assert!(e.to_string().contains("infeasible"), "{e}");
                        }
                    }
                    n += 1;
                }
            }
        }
    }
    assert_eq!(n, 36 * 24);
}

#[test]
fn assignment_matches_scipy() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(dir.join("tests/fixtures/lsap-scipy.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    for case in v["cases"].as_array().unwrap() {
        let (r, k) = (
            case["rows"].as_u64().unwrap() as usize,
            case["cols"].as_u64().unwrap() as usize,
        );
        let c: Vec<f64> = case["cost"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap_or(f64::INFINITY))
            .collect();
        let p = linear_sum_assignment(&c, r, k).unwrap();
        check_pairs(&p, r, k);
        let total: f64 = p.iter().map(|&(i, j)| c[i * k + j]).sum();
        let want = case["total"].as_f64().unwrap();
        assert!(
            (total - want).abs() <= 1e-9 * (1.0 + want.abs()),
            "{r}x{k}: {total} vs {want}"
        );
        // Same algorithm and loop order as scipy, so even ties resolve identically.
        let rows: Vec<u64> = p.iter().map(|x| x.0 as u64).collect();
        let cols: Vec<u64> = p.iter().map(|x| x.1 as u64).collect();
        let want_rows: Vec<u64> = case["row_ind"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap())
            .collect();
        let want_cols: Vec<u64> = case["col_ind"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap())
            .collect();
        assert_eq!(
            (rows, cols),
            (want_rows, want_cols),
            "{r}x{k} {}",
            case["kind"]
        );
    }
}

#[test]
fn assignment_errors() {
    let e = linear_sum_assignment(&[1.0, f64::NAN, 2.0, 3.0], 2, 2).unwrap_err();
    assert!(e.to_string().contains("invalid numeric entries"), "{e}");
    let e = linear_sum_assignment(&[1.0, f64::NEG_INFINITY], 1, 2).unwrap_err();
    assert!(e.to_string().contains("invalid numeric entries"), "{e}");
    let inf = f64::INFINITY;
    let e = linear_sum_assignment(&[inf, inf, 1.0, 2.0], 2, 2).unwrap_err();
    assert!(e.to_string().contains("infeasible"), "{e}");
    assert!(linear_sum_assignment(&[1.0; 5], 2, 3).is_err());
    assert!(linear_sum_assignment(&[], 0, 4).unwrap().is_empty());
    assert!(linear_sum_assignment(&[], 3, 0).unwrap().is_empty());
    assert_eq!(
        linear_sum_assignment(&[inf, 1.0, 2.0, inf], 2, 2).unwrap(),
        vec![(0, 1), (1, 0)]
    );
}

fn ints(t: &Tensor) -> Vec<i64> {
    t.to_dtype(DType::I64).unwrap().to_vec::<i64>().unwrap()
}

struct Case {
    decoder: Vec<GdPrediction>,
    encoder: GdPrediction,
    maps: Vec<LabelMap>,
    mask: Vec<Vec<bool>>,
    targets: Vec<GdTarget>,
}

fn load_case(fx: &Safetensors) -> Case {
    let leaf = |n: &str| fx.tensor(n).unwrap().requires_grad_().unwrap();
    let head = |s: &str| GdPrediction {
        logits: leaf(&format!("logits.{s}")),
        pred_boxes: leaf(&format!("boxes.{s}")),
    };
    let t = fx.tensor("logits.1").unwrap().dims()[2];
    let ids = fx.tensor("input_ids").unwrap();
    Case {
        decoder: vec![head("0"), head("1")],
        encoder: head("enc"),
        maps: build_label_maps(&ids, t).unwrap(),
        mask: build_text_mask(&fx.tensor("attention_mask").unwrap(), t).unwrap(),
        targets: (0..2)
            .map(|b| GdTarget {
                class_labels: ints(&fx.tensor(&format!("target.labels.{b}")).unwrap())
                    .iter()
                    .map(|&c| c as usize)
                    .collect(),
                boxes: fx.tensor(&format!("target.boxes.{b}")).unwrap(),
            })
            .collect(),
    }
}

#[test]
fn label_maps_and_text_mask_match_transformers() {
    let fx = fixture();
    let c = load_case(&fx);
    for (b, m) in c.maps.iter().enumerate() {
        let want = common::vals(&fx.tensor(&format!("label_maps.{b}")).unwrap());
        assert_eq!(
            common::vals(&dense_label_map(m).unwrap()),
            want,
            "label map {b}"
        );
    }
    let want = ints(&fx.tensor("text_mask").unwrap());
    let got: Vec<i64> = c.mask.iter().flatten().map(|&v| v as i64).collect();
    assert_eq!(got, want);
    // Tokens before the first delimiter and prompts without delimiters have no phrase.
    let ids = Tensor::from_vec(vec![7i64, 101, 5, 6, 1012, 8, 9, 4, 4, 4, 4, 4], [2, 6]).unwrap();
    let m = build_label_maps(&ids, 8).unwrap();
    assert_eq!(m[0].phrases, vec![vec![2, 3], vec![5]]);
    assert!(m[1].phrases.is_empty());
    assert!(build_label_maps(&ids, 5).is_err());
}

#[test]
fn loss_matches_transformers() {
    let fx = fixture();
    let c = load_case(&fx);
    let cfg = GroundingDinoLossConfig::default();
    let out = grounding_dino_loss(
        &c.decoder,
        Some(&c.encoder),
        &c.maps,
        &c.mask,
        &c.targets,
        &cfg,
    )
    .unwrap();
    let mut names: Vec<String> = out.terms.iter().map(|(n, _)| n.clone()).collect();
    for (n, v) in out
        .terms
        .iter()
        .map(|(n, t)| (n, t.to_scalar_f64().unwrap()))
        .chain(out.cardinality.iter().map(|(n, v)| (n, *v)))
    {
        let want = fx
            .tensor(&format!("loss.{n}"))
            .unwrap()
            .to_vec_f64()
            .unwrap()[0];
        common::assert_close(&[v], &[want], 1e-6, 1e-5, n);
    }
    names.extend(out.cardinality.iter().map(|(n, _)| n.clone()));
    let n_ref = fx.names().iter().filter(|n| n.starts_with("loss.")).count();
    assert_eq!(names.len(), n_ref, "every loss_dict key: {names:?}");
    let want = fx.tensor("loss").unwrap().to_vec_f64().unwrap();
    common::assert_close(
        &[out.total.to_scalar_f64().unwrap()],
        &want,
        1e-6,
        1e-5,
        "total",
    );

    for (suffix, idx) in &out.indices {
        let head = match suffix.as_str() {
            "" => "final",
            "_0" => "aux0",
            _ => "enc",
        };
        for (b, pairs) in idx.iter().enumerate() {
            let want = ints(&fx.tensor(&format!("indices.{head}.{b}")).unwrap());
            let n = want.len() / 2;
            let got: Vec<i64> = pairs
                .iter()
                .map(|p| p.0 as i64)
                .chain(pairs.iter().map(|p| p.1 as i64))
                .collect();
            assert_eq!(got, want, "indices {head} image {b} ({n} pairs)");
        }
    }

    out.total.backward().unwrap();
    let leaves = [
        ("logits.0", &c.decoder[0].logits),
        ("logits.1", &c.decoder[1].logits),
        ("boxes.0", &c.decoder[0].pred_boxes),
        ("boxes.1", &c.decoder[1].pred_boxes),
        ("logits.enc", &c.encoder.logits),
        ("boxes.enc", &c.encoder.pred_boxes),
    ];
    for (name, t) in leaves {
        let want = common::vals(&fx.tensor(&format!("grad.{name}")).unwrap());
        let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        common::assert_close(
            &common::vals(&t.grad().unwrap()),
            &want,
            1e-5 * scale,
            1e-5,
            name,
        );
    }
}

/// A tiny f64 case: one image, 3 queries, 5 token slots (the last masked), 2 phrases.
fn tiny() -> (Tensor, Tensor, Vec<LabelMap>, Vec<Vec<bool>>, Vec<GdTarget>) {
    let logits = common::randn64(&[1, 3, 5], 11).mul_scalar(1.5).unwrap();
    let boxes = Tensor::from_vec(
        vec![
            0.41, 0.5, 0.3, 0.2, 0.55, 0.45, 0.25, 0.35, 0.3, 0.6, 0.2, 0.3f64,
        ],
        [1, 3, 4],
    )
    .unwrap();
    let maps = vec![LabelMap {
        text_len: 5,
        phrases: vec![vec![1], vec![2, 3]],
    }];
    let mask = vec![vec![true, true, true, true, false]];
    let targets = vec![GdTarget {
        class_labels: vec![1, 0],
        boxes: Tensor::from_vec(vec![0.5, 0.5, 0.3, 0.3, 0.36, 0.57, 0.2, 0.2f64], [2, 4]).unwrap(),
    }];
    (logits, boxes, maps, mask, targets)
}

#[test]
fn gradcheck_focal_and_giou() {
    let (logits, boxes, maps, mask, targets) = tiny();
    let cfg = GroundingDinoLossConfig::default();
    let f = |x: &[Tensor]| {
        let p = GdPrediction {
            logits: x[0].clone(),
            pred_boxes: x[1].clone(),
        };
        let out = grounding_dino_loss(&[p], None, &maps, &mask, &targets, &cfg)?;
        let pick = |n: &str| out.terms.iter().find(|t| t.0 == n).unwrap().1.clone();
        Tensor::stack(&[&pick("loss_ce"), &pick("loss_giou")], 0)
    };
    gradcheck(
        "gd focal+giou",
        &[logits, boxes],
        f,
        &GradcheckOpts::default(),
    )
    .unwrap();
}

#[test]
fn bad_inputs_are_errors() {
    let (logits, boxes, maps, mask, targets) = tiny();
    let cfg = GroundingDinoLossConfig::default();
    let run = |lg: &Tensor, bx: &Tensor, tg: &[GdTarget]| {
        let p = GdPrediction {
            logits: lg.clone(),
            pred_boxes: bx.clone(),
        };
        grounding_dino_loss(&[p], None, &maps, &mask, tg, &cfg).map(|_| ())
    };
    run(&logits, &boxes, &targets).unwrap();
    let with = |t: &Tensor, k: usize, v: f64| {
        let mut x = t.to_vec_f64().unwrap();
        x[k] = v;
        Tensor::from_vec(x, t.shape().clone()).unwrap()
    };
    let target = |labels: Vec<usize>, b: Vec<f64>| {
        vec![GdTarget {
            class_labels: labels,
            boxes: Tensor::from_vec(b, [2, 4]).unwrap(),
        }]
    };
    let good = vec![0.5, 0.5, 0.3, 0.3, 0.35, 0.55, 0.2, 0.2];
    let msg = |r: edgedistill::Result<()>| r.unwrap_err().to_string();

    let e = msg(run(&logits, &boxes, &target(vec![1, 2], good.clone())));
    assert!(
        e.contains("target class 2") && e.contains("2 phrases"),
        "{e}"
    );
    let mut zero_w = good.clone();
    zero_w[6] = 0.0;
    let e = msg(run(&logits, &boxes, &target(vec![1, 0], zero_w)));
    assert!(e.contains("width and height > 0"), "{e}");
    let mut neg_h = good.clone();
    neg_h[3] = -0.1;
    assert!(run(&logits, &boxes, &target(vec![1, 0], neg_h)).is_err());
    let e = msg(run(&with(&logits, 2, f64::NAN), &boxes, &targets));
    assert!(e.contains("NaN"), "{e}");
    // -inf is what the class head writes on masked slots; only there is it allowed.
    run(&with(&logits, 4, f64::NEG_INFINITY), &boxes, &targets).unwrap();
    assert!(run(&with(&logits, 3, f64::NEG_INFINITY), &boxes, &targets).is_err());
    let e = msg(run(&logits, &with(&boxes, 5, f64::NAN), &targets));
    assert!(e.contains("predicted box"), "{e}");
    assert!(run(&logits, &with(&boxes, 6, -0.2), &targets).is_err());
    let e = msg(run(&logits, &boxes, &[]));
    assert!(e.contains("targets"), "{e}");
    let wrong = vec![GdTarget {
        class_labels: vec![0],
        boxes: Tensor::from_vec(good.clone(), [2, 4]).unwrap(),
    }];
    assert!(run(&logits, &boxes, &wrong).is_err());
}

#[test]
fn no_targets_gives_zero_box_losses() {
    let (logits, boxes, maps, mask, _) = tiny();
    let empty = vec![GdTarget {
        class_labels: vec![],
        boxes: Tensor::zeros([0, 4], DType::F64),
    }];
    let p = GdPrediction {
        logits: logits.requires_grad_().unwrap(),
        pred_boxes: boxes,
    };
    let out = grounding_dino_loss(
        std::slice::from_ref(&p),
        None,
        &maps,
        &mask,
        &empty,
        &Default::default(),
    )
    .unwrap();
    assert!(out.indices[0].1[0].is_empty());
    let v: Vec<f64> = out
        .terms
        .iter()
        .map(|t| t.1.to_scalar_f64().unwrap())
        .collect();
    assert!(v[0] > 0.0 && v[1] == 0.0 && v[2] == 0.0, "{v:?}");
    out.total.backward().unwrap();
    assert!(p.logits.grad().is_some());
}
