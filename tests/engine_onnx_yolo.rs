//! A captured YOLOv8 (tiny scale, seg and detect) written as ONNX and as an engine:
//! onnx.checker accepts the ONNX and onnxruntime's outputs match the engine's within
//! 1e-4·max(1, |ort|) (boxes are in pixels, so a relative bound above 1). The full-size
//! YOLOv8n-seg at 640 is compared the same way by `ed-bench engine` (BENCHMARKS.md).
mod common;

use edgedistill::Tensor;
use edgedistill::engine::capture_yolo;
use edgedistill::engine::exec;
use edgedistill::engine::onnx::{OnnxOptions, write_onnx};
use edgedistill::io::{Safetensors, save_safetensors};
use edgedistill::models::yolov8::{YoloConfig, YoloModel};
use edgedistill::tensor::Rng;

fn tiny(seg: bool) -> YoloModel {
    let mut raw = YoloConfig::yolov8('n', 3, seg).unwrap().raw;
    raw["scales"] = serde_json::json!({"t": [0.33, 0.125, 1024]});
    raw["scale"] = serde_json::json!("t");
    let m = YoloModel::new(&YoloConfig::from_json(&raw).unwrap(), &mut Rng::new(21)).unwrap();
    let x = Tensor::randn([2, 3, 96, 96], 0.4, 0.3, &mut Rng::new(4));
    let _g = edgedistill::no_grad();
    m.forward_train(&x).unwrap(); // running statistics away from (0, 1)
    m
}

#[test]
fn onnxruntime_matches_the_engine_on_captured_yolo() {
    let Some(py) = common::python_with(&["onnx", "onnxruntime", "safetensors", "numpy"]) else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("ed-onnx-yolo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for seg in [true, false] {
        let m = tiny(seg);
        let g = capture_yolo(&m, 96).unwrap();
        let (onnx, inp, out) = (
            dir.join("m.onnx"),
            dir.join("in.safetensors"),
            dir.join("out.safetensors"),
        );
        write_onnx(&onnx, &g, &OnnxOptions::default()).unwrap();
        // Batch 2: the ONNX batch dimension is free, as the engine's.
        let x = Tensor::rand([2, 3, 96, 96], 0.0, 1.0, &mut Rng::new(8));
        save_safetensors(&inp, &[("images".to_string(), x.clone())], None).unwrap();
        common::onnx_run(&py, &onnx, &inp, &out, &[]);
        let ours = exec::run(&g, &g, &x).unwrap();
        let f = Safetensors::open(&out).unwrap();
        let names: Vec<&str> = if seg {
            vec!["pred", "proto"]
        } else {
            vec!["pred"]
        };
        assert_eq!(ours.len(), names.len());
        for (name, t) in names.iter().zip(&ours) {
            let r = f.tensor(name).unwrap();
            assert_eq!(r.dims(), t.dims(), "{name}");
            let (a, b) = (t.to_vec_f32().unwrap(), r.to_vec_f32().unwrap());
            let worst = a
                .iter()
                .zip(&b)
                .map(|(x, y)| (x - y).abs() / y.abs().max(1.0))
                .fold(0f32, f32::max);
            assert!(worst <= 1e-4, "seg {seg} {name}: worst {worst:e}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
