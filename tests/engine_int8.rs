//! The INT8 engine: a tiny YOLOv8-seg captured, calibrated (Collector over letterboxed
//! random images), quantized with the default f32 layers kept; the INT8 graph runs equal
//! to its engine file bit for bit, stays close to the fp32 graph, its QDQ ONNX passes
//! onnx.checker and onnxruntime agrees with it; a QConv weight stored as f32 is an error.
mod common;

use edgedistill::Tensor;
use edgedistill::engine::exec::{run, run_observed};
use edgedistill::engine::format::{
    EngineFile, EngineMeta, ModelInfo, PostprocessSpec, engine_bytes,
};
use edgedistill::engine::onnx::{OnnxOptions, write_onnx};
use edgedistill::engine::quantize::{QuantOptions, calibrated_values, quantize_graph};
use edgedistill::engine::{Graph, Op, capture_yolo};
use edgedistill::io::{Safetensors, save_safetensors};
use edgedistill::models::yolov8::{YoloConfig, YoloModel};
use edgedistill::quant::{CalibCache, Collector, Method};
use edgedistill::tensor::Rng;

const S: usize = 64;

fn setup() -> (Graph, CalibCache, EngineMeta) {
    let mut raw = YoloConfig::yolov8('n', 2, true).unwrap().raw;
    raw["scales"] = serde_json::json!({"t": [0.33, 0.125, 1024]});
    raw["scale"] = serde_json::json!("t");
    let m = YoloModel::new(&YoloConfig::from_json(&raw).unwrap(), &mut Rng::new(7)).unwrap();
    {
        let _g = edgedistill::no_grad();
        m.forward_train(&Tensor::rand([2, 3, S, S], 0.0, 1.0, &mut Rng::new(3)))
            .unwrap();
    }
    let g = capture_yolo(&m, S).unwrap();
    let wanted: std::collections::HashSet<String> = calibrated_values(&g, &QuantOptions::default())
        .into_iter()
        .collect();
    let mut col = Collector::default();
    for seed in 0..4 {
        let x = Tensor::rand([2, 3, S, S], 0.0, 1.0, &mut Rng::new(100 + seed));
        run_observed(&g, &g, &x, &mut |n, t| {
            if wanted.contains(n) {
                t.with_slice(|s: &[f32]| col.observe(n, s))??;
            }
            Ok(())
        })
        .unwrap();
    }
    let cache = col.finish(8, "test", Method::Entropy).unwrap();
    assert_eq!(cache.tensors.len(), wanted.len());
    let meta = EngineMeta {
        model: ModelInfo {
            family: "yolov8".into(),
            task: "segment".into(),
            nc: 2,
            nm: m.nm(),
            reg_max: m.reg_max(),
            config: raw,
        },
        names: vec!["a".into(), "b".into()],
        category_ids: vec![1, 2],
        postprocess: PostprocessSpec {
            conf: 0.25,
            iou: 0.7,
            max_det: 300,
            mask_threshold: 0.5,
        },
    };
    (g, cache, meta)
}

fn vals(t: &Tensor) -> Vec<f32> {
    t.to_vec_f32().unwrap()
}

#[test]
fn int8_engine_runs_as_its_graph_and_near_fp32() {
    let (g, cache, meta) = setup();
    for method in [Method::Entropy, Method::MinMax, Method::Percentile(99.99)] {
        let (q, report) =
            quantize_graph(&g, &|v| cache.amax(v, method), &QuantOptions::default()).unwrap();
        // The head's last convs (3 levels × box/class/mask) and the last proto conv stay f32.
        assert_eq!(report.fp32_layers.len(), 10, "{:?}", report.fp32_layers);
        assert!(report.int8_layers.len() > 40);
        let nq = q
            .nodes
            .iter()
            .filter(|n| matches!(n.op, Op::QConv { .. }))
            .count();
        assert_eq!(nq, report.int8_layers.len());
        let x = Tensor::rand([2, 3, S, S], 0.0, 1.0, &mut Rng::new(55));
        let got = run(&q, &q, &x).unwrap();
        let f = EngineFile::from_bytes(&engine_bytes(&q, &meta).unwrap()).unwrap();
        assert_eq!(f.header().precision, "int8");
        let from_file = run(f.graph(), &f, &x).unwrap();
        assert_eq!(vals(&got[0]), vals(&from_file[0]));
        assert_eq!(vals(&got[1]), vals(&from_file[1]));
        // Close to fp32: class probabilities within a few hundredths, boxes within pixels.
        let want = run(&g, &g, &x).unwrap();
        let (a, b) = (vals(&got[0]), vals(&want[0]));
        let a_rows = a.len() / 2;
        let mut worst_box = 0f32;
        let mut worst_cls = 0f32;
        let anchors = want[0].dims()[2];
        for (i, (x, y)) in a.iter().zip(&b).enumerate() {
            let ch = (i % a_rows) / anchors;
            let d = (x - y).abs();
            if ch < 4 {
                worst_box = worst_box.max(d);
            } else if ch < 6 {
                worst_cls = worst_cls.max(d);
            }
        }
        assert!(
            worst_box < 3.0 && worst_cls < 0.05,
            "{method}: box {worst_box} cls {worst_cls}"
        );
        assert!(
            a != b,
            "{method}: INT8 equal to fp32: nothing was quantized"
        );
    }
}

#[test]
fn qconv_weights_must_be_i8_in_the_file() {
    let (g, cache, meta) = setup();
    let (q, _) = quantize_graph(
        &g,
        &|v| cache.amax(v, Method::Entropy),
        &QuantOptions::default(),
    )
    .unwrap();
    let mut bad = q.clone();
    let name = bad
        .nodes
        .iter()
        .find(|n| matches!(n.op, Op::QConv { .. }))
        .unwrap()
        .inputs[1]
        .clone();
    let i = bad.weights.iter().position(|(n, _)| *n == name).unwrap();
    let w = &bad.weights[i].1;
    let vals: Vec<f32> = w.as_i8().unwrap().iter().map(|&v| v as f32).collect();
    bad.weights[i].1 = edgedistill::engine::Weight::f32(w.shape.clone(), vals);
    let e = EngineFile::from_bytes(&engine_bytes(&bad, &meta).unwrap())
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("needs i8"), "{e}");
}

#[test]
fn qdq_onnx_passes_the_checker_and_matches_onnxruntime() {
    let Some(py) = common::python_with(&["onnx", "onnxruntime", "safetensors", "numpy"]) else {
        return;
    };
    let (g, cache, _) = setup();
    let (q, _) = quantize_graph(
        &g,
        &|v| cache.amax(v, Method::Entropy),
        &QuantOptions::default(),
    )
    .unwrap();
    let dir = std::env::temp_dir().join(format!("ed-int8-onnx-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (onnx, inp, out) = (
        dir.join("q.onnx"),
        dir.join("in.safetensors"),
        dir.join("out.safetensors"),
    );
    write_onnx(&onnx, &q, &OnnxOptions::default()).unwrap();
    let x = Tensor::rand([1, 3, S, S], 0.0, 1.0, &mut Rng::new(9));
    save_safetensors(&inp, &[("images".to_string(), x.clone())], None).unwrap();
    common::onnx_run(&py, &onnx, &inp, &out, &[]);
    let ours = run(&q, &q, &x).unwrap();
    let f = Safetensors::open(&out).unwrap();
    // ORT dequantizes and convolves in float; the two differ by float rounding and, where
    // a value sits on a rounding boundary, one quantization step — so a loose bound, with
    // nearly all values much closer.
    let (a, b) = (
        vals(&ours[0]),
        f.tensor("pred").unwrap().to_vec_f32().unwrap(),
    );
    let errs: Vec<f32> = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs() / y.abs().max(1.0))
        .collect();
    let close = errs.iter().filter(|&&e| e <= 1e-4).count();
    assert!(
        close as f64 >= 0.99 * errs.len() as f64,
        "{close} of {} within 1e-4",
        errs.len()
    );
    let worst = errs.iter().copied().fold(0f32, f32::max);
    assert!(worst < 0.05, "worst {worst}");
    let _ = std::fs::remove_dir_all(&dir);
}
