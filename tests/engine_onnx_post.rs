//! The postprocessed ONNX model (`OnnxOutputs::Postprocessed`: boxes, scores, class_ids,
//! masks) against our own postprocess (`non_max_suppression`, `process_mask`, empty masks
//! dropped) in the letterboxed input's pixels, on a tiny random YOLOv8-seg whose `conf` is
//! set so that ~100 anchors are candidates. onnx.checker accepts the model and onnxruntime
//! runs it; two comparisons:
//! - our postprocess on onnxruntime's own raw outputs (`pred`/`proto` read from the same
//!   run): the postprocess alone, so the same detections, boxes and scores equal to 1e-6
//!   and masks on ≥ 99.99 % of pixels;
//! - the engine end to end (our graph, our postprocess): same count and classes, boxes
//!   within 1e-3 px, scores within 1e-5, masks equal on ≥ 99.9 % of pixels.
//!
//! Also: no detection gives empty outputs; the INT8 QDQ model passes the checker, runs, and
//! equals our postprocess on its own raw outputs (against our INT8 engine, whose integer
//! convs differ from QDQ-in-float by a quantization step here and there, only loosely); a
//! detect model gives boxes, scores and class_ids only; bad settings are errors; ed-export
//! writes the postprocessed model unless told `raw`. The numbers are printed
//! (`--nocapture`).
mod common;

use edgedistill::Tensor;
use edgedistill::engine::exec::{run, run_observed};
use edgedistill::engine::onnx::{OnnxOptions, OnnxOutputs, to_onnx, write_onnx};
use edgedistill::engine::quantize::{QuantOptions, quantize_graph};
use edgedistill::engine::{Graph, capture_yolo};
use edgedistill::io::{Safetensors, save_safetensors};
use edgedistill::models::yolov8::postprocess::{NmsConfig, non_max_suppression, process_mask};
use edgedistill::models::yolov8::{YoloConfig, YoloModel};
use edgedistill::tensor::Rng;
use std::collections::HashMap;
use std::path::PathBuf;

const S: usize = 128;
const NC: usize = 3;

fn tiny(seg: bool) -> YoloModel {
    let mut raw = YoloConfig::yolov8('n', NC, seg).unwrap().raw;
    raw["scales"] = serde_json::json!({"t": [0.33, 0.125, 1024]});
    raw["scale"] = serde_json::json!("t");
    let m = YoloModel::new(&YoloConfig::from_json(&raw).unwrap(), &mut Rng::new(21)).unwrap();
    let x = Tensor::randn([2, 3, S, S], 0.4, 0.3, &mut Rng::new(4));
    let _g = edgedistill::no_grad();
    m.forward_train(&x).unwrap(); // running statistics away from (0, 1)
    m
}

fn input() -> Tensor {
    Tensor::rand([1, 3, S, S], 0.0, 1.0, &mut Rng::new(8))
}

/// Detections in letterbox pixels, best first; masks full `S × S`, 0/1.
#[derive(Debug, Default)]
struct Dets {
    boxes: Vec<[f32; 4]>,
    scores: Vec<f32>,
    classes: Vec<i64>,
    masks: Vec<Vec<u8>>,
}

/// Our postprocess (what `Engine::run` does before mapping to the original image).
fn ours(pred: &Tensor, proto: Option<&Tensor>, conf: f32) -> Dets {
    let cfg = NmsConfig {
        conf,
        ..NmsConfig::default()
    };
    let d = non_max_suppression(pred, NC, &cfg).unwrap().remove(0);
    let masks = match proto {
        Some(p) => process_mask(p, &d, (S, S)).unwrap(),
        None => Vec::new(),
    };
    let keep: Vec<usize> = (0..d.len())
        .filter(|&k| masks.is_empty() || !masks[k].is_empty())
        .collect();
    Dets {
        boxes: keep.iter().map(|&k| d.boxes[k]).collect(),
        scores: keep.iter().map(|&k| d.scores[k]).collect(),
        classes: keep.iter().map(|&k| d.classes[k] as i64).collect(),
        masks: keep
            .iter()
            .filter(|_| !masks.is_empty())
            .map(|&k| masks[k].to_full())
            .collect(),
    }
}

/// onnxruntime's outputs, read back.
fn theirs(f: &Safetensors, seg: bool) -> Dets {
    let b = f.tensor("boxes").unwrap();
    let s = f.tensor("scores").unwrap().to_vec_f32().unwrap();
    let c = f.tensor("class_ids").unwrap();
    let k = s.len();
    assert_eq!(b.dims(), [k, 4]);
    assert_eq!(c.dims(), [k]);
    assert_eq!(c.dtype(), edgedistill::DType::I64);
    let bv = b.to_vec_f32().unwrap();
    let masks = if seg {
        let m = f.tensor("masks").unwrap();
        assert_eq!(m.dims(), [k, S, S]);
        assert_eq!(m.dtype(), edgedistill::DType::U8); // bool, read as u8
        let mv: Vec<u8> = m.to_vec::<u8>().unwrap();
        mv.chunks(S * S).map(<[u8]>::to_vec).collect()
    } else {
        assert!(!f.contains("masks"));
        Vec::new()
    };
    Dets {
        boxes: bv.chunks(4).map(|r| [r[0], r[1], r[2], r[3]]).collect(),
        scores: s,
        classes: c.to_vec::<i64>().unwrap(),
        masks,
    }
}

/// How well `got` agrees with `want`.
#[derive(Debug)]
struct Agreement {
    /// Worst box coordinate error (px) and score error over matched rows.
    box_err: f32,
    score_err: f32,
    /// Mask pixels equal, over all matched rows.
    mask_frac: f64,
    /// Mask pixels that differ, and pixels set in `want`'s masks.
    mask_diff: usize,
    mask_set: usize,
    /// Rows at the same position in both.
    same_order: usize,
}

/// Match every row of `got` to its own row of `want` (same class, box within `box_tol`,
/// score within `score_tol`): rows whose scores tie may come in another order (ours
/// replays torch's sort, onnxruntime's NMS its heap). Panics when the counts differ or a
/// row has no partner; both must be sorted by score, best first.
fn agreement(got: &Dets, want: &Dets, box_tol: f32, score_tol: f32, what: &str) -> Agreement {
    let n = want.scores.len();
    assert_eq!(got.scores.len(), n, "{what}: detection count");
    for d in [got, want] {
        assert!(d.scores.windows(2).all(|w| w[0] >= w[1]), "{what}: sorted");
    }
    let berr = |a: &[f32; 4], b: &[f32; 4]| {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max)
    };
    let mut used = vec![false; n];
    let (mut box_err, mut score_err, mut same_order) = (0f32, 0f32, 0);
    let (mut same, mut all, mut set) = (0usize, 0usize, 0usize);
    for i in 0..n {
        // The row at the same position first, then any.
        let j = std::iter::once(i)
            .chain(0..n)
            .find(|&j| {
                !used[j]
                    && got.classes[i] == want.classes[j]
                    && berr(&got.boxes[i], &want.boxes[j]) <= box_tol
                    && (got.scores[i] - want.scores[j]).abs() <= score_tol
            })
            .unwrap_or_else(|| {
                panic!(
                    "{what}: row {i} (class {}, box {:?}, score {}) has no partner",
                    got.classes[i], got.boxes[i], got.scores[i]
                )
            });
        used[j] = true;
        same_order += usize::from(i == j);
        box_err = box_err.max(berr(&got.boxes[i], &want.boxes[j]));
        score_err = score_err.max((got.scores[i] - want.scores[j]).abs());
        if let (Some(a), Some(b)) = (got.masks.get(i), want.masks.get(j)) {
            assert!(a.iter().all(|&v| v <= 1), "{what}: masks are 0/1");
            same += a.iter().zip(b).filter(|(x, y)| x == y).count();
            all += a.len();
            set += b.iter().map(|&v| v as usize).sum::<usize>();
        }
    }
    assert_eq!(got.masks.len(), want.masks.len(), "{what}: mask count");
    let mask_frac = if all == 0 {
        1.0
    } else {
        same as f64 / all as f64
    };
    Agreement {
        box_err,
        score_err,
        mask_frac,
        mask_diff: all - same,
        mask_set: set,
        same_order,
    }
}

/// A `conf` with ~100 candidate anchors: in the widest gap between the 80th and 120th best
/// class scores, so no anchor sits near it.
fn pick_conf(pred: &Tensor) -> f32 {
    let (ch, a) = (pred.dims()[1], pred.dims()[2]);
    let p = pred.to_vec_f32().unwrap();
    let mut best: Vec<f32> = (0..a)
        .map(|k| (0..NC).map(|c| p[(4 + c) * a + k]).fold(f32::MIN, f32::max))
        .collect();
    assert!(ch >= 4 + NC && a > 130);
    best.sort_by(|x, y| y.total_cmp(x));
    let i = (80..120)
        .max_by(|&i, &j| (best[i] - best[i + 1]).total_cmp(&(best[j] - best[j + 1])))
        .unwrap();
    (best[i] + best[i + 1]) / 2.0
}

struct Ort {
    py: String,
    dir: PathBuf,
}

impl Ort {
    /// Write `g` as ONNX with `outputs`, run it on `x` in onnxruntime (checker first),
    /// returning `pred`/`proto` too.
    fn run(&self, tag: &str, g: &Graph, outputs: OnnxOutputs, x: &Tensor) -> Safetensors {
        let (onnx, inp, out) = (
            self.dir.join(format!("{tag}.onnx")),
            self.dir.join(format!("{tag}_in.safetensors")),
            self.dir.join(format!("{tag}_out.safetensors")),
        );
        let opts = OnnxOptions {
            outputs,
            ..Default::default()
        };
        write_onnx(&onnx, g, &opts).unwrap();
        save_safetensors(&inp, &[("images".to_string(), x.clone())], None).unwrap();
        let also = if g.outputs.len() == 2 {
            "pred,proto"
        } else {
            "pred"
        };
        common::onnx_run(&self.py, &onnx, &inp, &out, &["--also", also]);
        Safetensors::open(&out).unwrap()
    }
}

fn post(conf: f32) -> OnnxOutputs {
    OnnxOutputs::Postprocessed {
        conf,
        iou: 0.7,
        max_det: 300,
        mask_threshold: 0.5,
    }
}

fn setup(tag: &str) -> Option<Ort> {
    let py = common::python_with(&["onnx", "onnxruntime", "numpy", "safetensors"])?;
    let dir = std::env::temp_dir().join(format!("ed-onnx-post-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    Some(Ort { py, dir })
}

/// The captured tiny model with its head's last convs rescaled: a random model's class
/// logits are nearly its bias everywhere (scores tie or differ in the 7th digit), its box
/// distributions nearly uniform (boxes all alike), its mask coefficients the same for
/// every anchor and its prototypes ~1e-3. Each output channel `y` of those convs becomes
/// `a·(y − mean) + target` over the test input's anchors (through the weights and bias):
/// class logits std 2 around −1, box bin logits std 1.5 with later bins less likely (boxes
/// of a few strides), coefficients std 1; the last prototype conv is scaled to std ~1.
fn capture(seg: bool, x: &Tensor) -> Graph {
    let mut g = capture_yolo(&tiny(seg), S).unwrap();
    // (node output, weight, bias, target std, target mean per output channel)
    type Target = (String, String, String, f32, fn(usize) -> f32);
    let heads: Vec<Target> = g
        .nodes
        .iter()
        .filter_map(|n| {
            let (std, mean): (f32, fn(usize) -> f32) = if n.name.ends_with("proto.cv3") {
                (1.0, |_| 0.0)
            } else if !(n.name.ends_with(".2") && n.name.contains(".cv")) {
                return None;
            } else if n.name.contains(".cv3.") {
                (2.0, |_| -1.0)
            } else if n.name.contains(".cv2.") {
                (1.5, |c| -0.5 * (c % 16) as f32)
            } else if n.name.contains(".cv4.") {
                (1.0, |_| 0.0)
            } else {
                return None;
            };
            let io = (
                n.outputs[0].clone(),
                n.inputs[1].clone(),
                n.inputs[2].clone(),
            );
            Some((io.0, io.1, io.2, std, mean))
        })
        .collect();
    assert_eq!(heads.len(), if seg { 10 } else { 6 });
    // Per output channel: (mean, std) over the value's pixels.
    let mut stats: HashMap<String, Vec<(f32, f32)>> = HashMap::new();
    run_observed(&g, &g, x, &mut |n, t| {
        if heads.iter().any(|h| h.0 == n) {
            let v = t.to_vec_f32()?;
            let c = t.dims()[1];
            let per: Vec<(f32, f32)> = v
                .chunks(v.len() / c)
                .map(|ch| {
                    let m = ch.iter().sum::<f32>() / ch.len() as f32;
                    let var = ch.iter().map(|x| (x - m) * (x - m)).sum::<f32>() / ch.len() as f32;
                    (m, var.sqrt().max(1e-12))
                })
                .collect();
            stats.insert(n.to_string(), per);
        }
        Ok(())
    })
    .unwrap();
    for (out, w, b, std, mean) in heads {
        let st = &stats[&out];
        for (n, wt) in g.weights.iter_mut() {
            let edgedistill::engine::WeightData::F32(v) = &mut wt.data else {
                continue;
            };
            if *n == w {
                let row = v.len() / st.len();
                for (c, r) in v.chunks_mut(row).enumerate() {
                    r.iter_mut().for_each(|x| *x *= std / st[c].1);
                }
            } else if *n == b {
                for (c, x) in v.iter_mut().enumerate() {
                    let (m, sd) = st[c];
                    *x = std / sd * (*x - m) + mean(c);
                }
            }
        }
    }
    g
}

fn line(a: &Agreement) -> String {
    let masks = if a.mask_set == 0 && a.mask_diff == 0 {
        String::new()
    } else {
        format!(
            ", masks {:.4} % equal ({} pixels differ, {} set)",
            a.mask_frac * 100.0,
            a.mask_diff,
            a.mask_set
        )
    };
    format!(
        "boxes {:.2e} px, scores {:.2e}{masks}, {} rows in the same place",
        a.box_err, a.score_err, a.same_order
    )
}

#[test]
fn postprocessed_seg_onnx_matches_our_postprocess() {
    let Some(ort) = setup("seg") else {
        return;
    };
    let x = input();
    let g = capture(true, &x);
    let raw = run(&g, &g, &x).unwrap();
    let conf = pick_conf(&raw[0]);
    let want = ours(&raw[0], Some(&raw[1]), conf);
    let n = want.scores.len();
    assert!((10..=100).contains(&n), "{n} detections at conf {conf}");

    let f = ort.run("fp32", &g, post(conf), &x);
    let got = theirs(&f, true);
    // The postprocess alone: ours on onnxruntime's raw outputs.
    let (ort_pred, ort_proto) = (f.tensor("pred").unwrap(), f.tensor("proto").unwrap());
    let a0 = agreement(
        &got,
        &ours(&ort_pred, Some(&ort_proto), conf),
        0.0,
        0.0,
        "same raw",
    );
    // End to end: the engine's graph and postprocess.
    let a1 = agreement(&got, &want, 1e-3, 1e-5, "engine end to end");
    let set: usize = got.masks.iter().flatten().map(|&v| v as usize).sum();
    let nms = non_max_suppression(
        &raw[0],
        NC,
        &NmsConfig {
            conf,
            ..NmsConfig::default()
        },
    )
    .unwrap()[0]
        .len();
    eprintln!(
        "fp32 seg: {n} detections at conf {conf:.4} ({} after NMS, empty masks dropped), \
         {set} mask pixels set ({:.1} % of {n}·{S}²)\n  on the same raw outputs: {}\n  engine end to end: {}",
        nms,
        100.0 * set as f64 / (n * S * S) as f64,
        line(&a0),
        line(&a1)
    );
    assert!(set > n * S * S / 50, "masks nearly empty: {set} pixels");
    assert!(nms > n, "no empty mask to drop: {nms} after NMS, {n} kept");
    assert!(a0.mask_frac >= 0.9999, "{a0:?}");
    assert!(a1.mask_frac >= 0.999, "{a1:?}");

    // No candidate: every output has zero rows.
    let f = ort.run("empty", &g, post(1.0), &x);
    let none = theirs(&f, true);
    assert!(none.scores.is_empty() && none.masks.is_empty());

    // INT8 QDQ: amax of every value from one run of the fp32 graph.
    let mut amax: HashMap<String, f32> = HashMap::new();
    run_observed(&g, &g, &x, &mut |n, t| {
        let m = t.to_vec_f32()?.iter().fold(0f32, |m, v| m.max(v.abs()));
        amax.insert(n.to_string(), m);
        Ok(())
    })
    .unwrap();
    let (q, _) = quantize_graph(
        &g,
        &|v| Ok(amax.get(v).copied().unwrap_or(1.0)),
        &QuantOptions::default(),
    )
    .unwrap();
    let qraw = run(&q, &q, &x).unwrap();
    let qwant = ours(&qraw[0], Some(&qraw[1]), conf);
    let f = ort.run("int8", &q, post(conf), &x);
    let qgot = theirs(&f, true);
    let (qp, qm) = (f.tensor("pred").unwrap(), f.tensor("proto").unwrap());
    let a2 = agreement(
        &qgot,
        &ours(&qp, Some(&qm), conf),
        0.0,
        0.0,
        "int8 same raw",
    );
    // Against our INT8 engine end to end: QDQ in float vs our integer convolution differ
    // by a quantization step here and there, so only loosely.
    let a3 = agreement(&qgot, &qwant, 0.5, 1e-3, "int8 end to end");
    eprintln!(
        "int8 QDQ: onnxruntime {} detections, our int8 engine {}\n  on the same raw outputs: {}\n  int8 engine end to end: {}",
        qgot.scores.len(),
        qwant.scores.len(),
        line(&a2),
        line(&a3)
    );
    assert!(!qgot.scores.is_empty());
    assert!(a2.mask_frac >= 0.9999, "{a2:?}");
    let _ = std::fs::remove_dir_all(&ort.dir);
}

#[test]
fn postprocessed_detect_onnx_matches_our_nms() {
    let Some(ort) = setup("det") else {
        return;
    };
    let x = input();
    let g = capture(false, &x);
    let raw = run(&g, &g, &x).unwrap();
    let conf = pick_conf(&raw[0]);
    let want = ours(&raw[0], None, conf);
    assert!(want.scores.len() >= 10);
    let f = ort.run("det", &g, post(conf), &x);
    let got = theirs(&f, false);
    let same = ours(&f.tensor("pred").unwrap(), None, conf);
    let a0 = agreement(&got, &same, 0.0, 0.0, "detect same raw");
    let a1 = agreement(&got, &want, 1e-3, 1e-5, "detect end to end");
    eprintln!(
        "detect: {} detections\n  on the same raw outputs: {}\n  end to end: {}",
        got.scores.len(),
        line(&a0),
        line(&a1)
    );
    let _ = std::fs::remove_dir_all(&ort.dir);
}

#[test]
fn postprocess_settings_and_names_are_checked() {
    let g = capture_yolo(&tiny(true), 64).unwrap(); // any size works here
    let bad = |o: OnnxOutputs| {
        let opts = OnnxOptions {
            outputs: o,
            ..Default::default()
        };
        to_onnx(&g, &opts).unwrap_err().to_string()
    };
    let with = |f: &dyn Fn(&mut OnnxOutputs)| {
        let mut o = OnnxOutputs::default_postprocessed();
        f(&mut o);
        o
    };
    for (o, needle) in [
        (
            with(&|o| {
                if let OnnxOutputs::Postprocessed { iou, .. } = o {
                    *iou = 1.5
                }
            }),
            "iou",
        ),
        (
            with(&|o| {
                if let OnnxOutputs::Postprocessed { max_det, .. } = o {
                    *max_det = 0
                }
            }),
            "max_det",
        ),
        (
            with(&|o| {
                if let OnnxOutputs::Postprocessed { mask_threshold, .. } = o {
                    *mask_threshold = 1.0
                }
            }),
            "mask threshold",
        ),
    ] {
        let e = bad(o);
        assert!(e.contains(needle), "{e}");
    }
    // An output name taken by a graph value.
    let mut g2 = g.clone();
    let last = g2.nodes.len() - 1;
    g2.nodes[last].outputs = vec!["masks".into()];
    g2.outputs[1].name = "masks".into();
    let opts = OnnxOptions {
        outputs: OnnxOutputs::default_postprocessed(),
        ..Default::default()
    };
    let e = to_onnx(&g2, &opts).unwrap_err().to_string();
    assert!(e.contains("\"masks\""), "{e}");
    // Raw stays the default.
    assert_eq!(OnnxOptions::default().outputs, OnnxOutputs::Raw);
    assert!(
        to_onnx(&g, &opts).unwrap().len() > to_onnx(&g, &OnnxOptions::default()).unwrap().len()
    );
}

#[test]
fn ed_export_writes_postprocessed_onnx_by_default() {
    use edgedistill::engine::export::{ExportOptions, OnnxOutputKind, export};
    use edgedistill::models::yolov8::{ModelMeta, save_model};
    let dir = std::env::temp_dir().join(format!("ed-onnx-post-export-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut raw = YoloConfig::yolov8('n', NC, true).unwrap().raw;
    raw["scales"] = serde_json::json!({"t": [0.33, 0.125, 1024]});
    raw["scale"] = serde_json::json!("t");
    let m = YoloModel::new(&YoloConfig::from_json(&raw).unwrap(), &mut Rng::new(21)).unwrap();
    let meta = ModelMeta {
        config: raw,
        names: vec!["a".into(), "b".into(), "c".into()],
        category_ids: vec![1, 2, 3],
        imgsz: 64,
    };
    let model = dir.join("m.safetensors");
    save_model(&model, &m, &meta).unwrap();
    let has = |b: &[u8], s: &str| b.windows(s.len()).any(|w| w == s.as_bytes());
    for (kind, post) in [
        (OnnxOutputKind::default(), true),
        ("raw".parse().unwrap(), false),
    ] {
        let out = dir.join(kind.as_str());
        let o = ExportOptions {
            engine: false,
            onnx_outputs: kind,
            ..ExportOptions::default()
        };
        let s = export(&model, &out, &o).unwrap();
        assert_eq!(s.onnx_outputs, if post { "postprocessed" } else { "raw" });
        let bytes = std::fs::read(&s.onnx.unwrap().path).unwrap();
        assert_eq!(has(&bytes, "NonMaxSuppression"), post);
        assert_eq!(has(&bytes, "class_ids"), post);
    }
    assert!("nms".parse::<OnnxOutputKind>().is_err());
    let _ = std::fs::remove_dir_all(&dir);
}
