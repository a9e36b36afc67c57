//! The engine: graph capture runs equal to the fused model's eval forward (bit for bit),
//! the engine file runs equal to the captured graph, `Engine::run` equals the model-file
//! `Predictor`, and a damaged file (any flipped byte, any truncation, a header that does
//! not fit together) is an error naming the problem, never a panic.
use edgedistill::Tensor;
use edgedistill::engine::exec;
use edgedistill::engine::format::{
    EngineFile, EngineMeta, ModelInfo, PostprocessSpec, engine_bytes, write_engine,
};
use edgedistill::engine::{Engine, Graph, capture_yolo};
use edgedistill::models::yolov8::postprocess::NmsConfig;
use edgedistill::models::yolov8::{ModelMeta, Predictor, YoloConfig, YoloModel};
use edgedistill::tensor::Rng;
use image::{Rgb, RgbImage};
use std::path::PathBuf;

const S: usize = 64;

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ed-engine-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn tiny_config(seg: bool) -> serde_json::Value {
    let mut raw = YoloConfig::yolov8('n', 2, seg).unwrap().raw;
    raw["scales"] = serde_json::json!({"t": [0.33, 0.0625, 1024]});
    raw["scale"] = serde_json::json!("t");
    raw
}

/// A tiny model with non-trivial BN statistics (so folding matters).
fn tiny_model(seg: bool) -> (YoloModel, serde_json::Value) {
    let config = tiny_config(seg);
    let m = YoloModel::new(&YoloConfig::from_json(&config).unwrap(), &mut Rng::new(7)).unwrap();
    let x = Tensor::randn([2, 3, S, S], 0.5, 0.3, &mut Rng::new(3));
    // Two train-mode passes move the running statistics away from (0, 1).
    for _ in 0..2 {
        let _g = edgedistill::no_grad();
        m.forward_train(&x).unwrap();
    }
    (m, config)
}

fn meta(m: &YoloModel, config: &serde_json::Value) -> EngineMeta {
    EngineMeta {
        model: ModelInfo {
            family: "yolov8".into(),
            task: if m.is_seg() { "segment" } else { "detect" }.into(),
            nc: m.nc(),
            nm: m.nm(),
            reg_max: m.reg_max(),
            config: config.clone(),
        },
        names: vec!["cat".into(), "dog".into()],
        category_ids: vec![3, 7],
        postprocess: PostprocessSpec {
            conf: 0.25,
            iou: 0.7,
            max_det: 300,
            mask_threshold: 0.5,
        },
    }
}

fn input(seed: u64) -> Tensor {
    Tensor::rand([2, 3, S, S], 0.0, 1.0, &mut Rng::new(seed))
}

fn bits(t: &Tensor) -> Vec<u32> {
    t.to_vec_f32()
        .unwrap()
        .iter()
        .map(|v| v.to_bits())
        .collect()
}

#[test]
fn captured_graph_equals_fused_eval_forward() {
    for seg in [true, false] {
        let (m, _) = tiny_model(seg);
        let fused = m.fuse().unwrap();
        let g = capture_yolo(&m, S).unwrap();
        g.validate().unwrap();
        let x = input(11);
        let want = fused.forward_eval(&x).unwrap();
        let got = exec::run_with(&g, &g, &x, exec::ExecOptions::EXACT).unwrap();
        assert_eq!(got.len(), if seg { 2 } else { 1 });
        assert_eq!(got[0].dims(), want.pred.dims());
        assert_eq!(bits(&got[0]), bits(&want.pred), "pred, seg {seg}");
        if seg {
            let p = want.proto.unwrap();
            assert_eq!(got[1].dims(), p.dims());
            assert_eq!(bits(&got[1]), bits(&p), "proto");
        }
        // Every weight is used, and the parameter count is the fused model's.
        let used: std::collections::HashSet<&str> = g
            .nodes
            .iter()
            .flat_map(|n| n.inputs.iter().map(|s| s.as_str()))
            .collect();
        assert!(g.weights.iter().all(|(n, _)| used.contains(n.as_str())));
    }
}

#[test]
fn capture_rejects_sizes_off_the_stride() {
    let (m, _) = tiny_model(true);
    let e = capture_yolo(&m, 65).unwrap_err().to_string();
    assert!(e.contains("65") && e.contains("32"), "{e}");
}

#[test]
fn engine_file_runs_equal_to_the_graph_and_predictor() {
    let dir = tmpdir("roundtrip");
    let (m, config) = tiny_model(true);
    let g = capture_yolo(&m, S).unwrap();
    let path = dir.join("m.engine");
    let size = write_engine(&path, &g, &meta(&m, &config)).unwrap();
    assert_eq!(size, std::fs::metadata(&path).unwrap().len());
    // Data is the f32 weights plus at most 63 bytes of alignment each, plus the header.
    assert!(size as usize >= g.num_params() * 4);
    let engine = Engine::load(&path).unwrap();
    let x = input(5);
    let want = exec::run(&g, &g, &x).unwrap();
    let got = engine.forward(&x).unwrap();
    for (a, b) in got.iter().zip(&want) {
        assert_eq!(bits(a), bits(b));
    }
    // Batch of one and of two give the same rows.
    let one = engine
        .forward(&x.narrow(0, 1, 1).unwrap().contiguous().unwrap())
        .unwrap();
    assert_eq!(
        bits(&one[0]),
        bits(&want[0].narrow(0, 1, 1).unwrap().contiguous().unwrap())
    );

    // Engine::run = Predictor::predict on the same weights.
    let mm = ModelMeta {
        config,
        names: vec!["cat".into(), "dog".into()],
        category_ids: vec![3, 7],
        imgsz: S as u32,
    };
    let nms = NmsConfig {
        conf: 0.0,
        max_det: 20,
        ..NmsConfig::default()
    };
    let pr = Predictor::new(m, mm).unwrap().with_nms(nms.clone());
    // Bit for bit with the model's forward only with the direct kernels.
    let engine = engine.with_nms(nms).with_exec(exec::ExecOptions::EXACT);
    let imgs: Vec<RgbImage> = [(80u32, 60u32), (50, 70)]
        .iter()
        .map(|&(w, h)| {
            RgbImage::from_fn(w, h, |x, y| {
                Rgb([(x * 7 % 256) as u8, (y * 13 % 256) as u8, 90])
            })
        })
        .collect();
    let a = engine.run_batch(&imgs).unwrap();
    let b = pr.predict_batch(&imgs).unwrap();
    assert_eq!(a, b);
    assert!(
        a.iter()
            .all(|p| !p.boxes.is_empty() && p.masks.len() == p.boxes.len())
    );
    assert_eq!(engine.run(&imgs[1]).unwrap(), b[1]);
    // With Winograd (the default) the raw outputs agree within rounding.
    let x = input(5);
    let exact = engine.forward(&x).unwrap();
    let fast = engine
        .with_exec(exec::ExecOptions::FAST)
        .forward(&x)
        .unwrap();
    for (f, e) in fast.iter().zip(&exact) {
        let (f, e) = (f.to_vec_f32().unwrap(), e.to_vec_f32().unwrap());
        assert_eq!(f.len(), e.len());
        assert_ne!(f, e, "FAST should not be the direct kernels");
        for (a, b) in f.iter().zip(&e) {
            assert!((a - b).abs() <= 1e-4 * b.abs().max(1.0), "{a} vs {b}");
        }
    }
}

fn tiny_engine_bytes() -> (Vec<u8>, Graph) {
    let (m, config) = tiny_model(false);
    let g = capture_yolo(&m, S).unwrap();
    (engine_bytes(&g, &meta(&m, &config)).unwrap(), g)
}

#[test]
fn every_flipped_byte_and_truncation_is_an_error() {
    let (bytes, _) = tiny_engine_bytes();
    EngineFile::from_bytes(&bytes).unwrap();
    let data_off = u64::from_le_bytes(bytes[16..24].try_into().unwrap()) as usize;
    // Every byte of the fixed header, every 13th of the JSON and the padding, every
    // 1009th of the data (each load hashes the whole file; the fuzz target covers the rest).
    let positions = (0..64)
        .chain((64..data_off).step_by(13))
        .chain((data_off..bytes.len()).step_by(1009));
    let mut n = 0;
    for i in positions {
        for flip in [0x01u8, 0x80] {
            let mut b = bytes.clone();
            b[i] ^= flip;
            let r = std::panic::catch_unwind(|| EngineFile::from_bytes(&b).map(|_| ()));
            let r = r.unwrap_or_else(|_| panic!("byte {i} ^ {flip:#x}: panicked"));
            assert!(r.is_err(), "byte {i} ^ {flip:#x} was accepted");
            n += 1;
        }
    }
    assert!(n > 2 * data_off / 13);
    for len in [0, 7, 8, 63, 64, data_off - 1, data_off, bytes.len() - 1] {
        let e = EngineFile::from_bytes(&bytes[..len])
            .err()
            .expect("truncated file accepted");
        assert!(e.to_string().contains("<memory>"), "{e}");
    }
    let mut longer = bytes.clone();
    longer.push(0);
    let e = EngineFile::from_bytes(&longer).err().unwrap().to_string();
    assert!(e.contains("truncated or extended"), "{e}");
}

/// Re-seal an engine whose JSON header was edited (checksums and lengths made right), so
/// the checks behind the checksums are reached.
fn reseal(bytes: &[u8], edit: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
    use edgedistill::io::checksum::fnv1a64;
    let hlen = u32::from_le_bytes(bytes[12..16].try_into().unwrap()) as usize;
    let data_off = u64::from_le_bytes(bytes[16..24].try_into().unwrap()) as usize;
    let mut h: serde_json::Value = serde_json::from_slice(&bytes[64..64 + hlen]).unwrap();
    edit(&mut h);
    let json = serde_json::to_vec(&h).unwrap();
    let data = &bytes[data_off..];
    let off = (64 + json.len()).div_ceil(64) * 64;
    let mut out = bytes[..64].to_vec();
    out[12..16].copy_from_slice(&(json.len() as u32).to_le_bytes());
    out[16..24].copy_from_slice(&(off as u64).to_le_bytes());
    out[32..40].copy_from_slice(&fnv1a64(&json).to_le_bytes());
    out.extend_from_slice(&json);
    out.resize(off, 0);
    out.extend_from_slice(data);
    out
}

#[test]
fn headers_that_do_not_fit_together_are_errors() {
    let (bytes, _) = tiny_engine_bytes();
    EngineFile::from_bytes(&reseal(&bytes, |_| {})).unwrap();
    let cases: Vec<(&str, Box<dyn Fn(&mut serde_json::Value)>)> = vec![
        (
            "past the data",
            Box::new(|h| h["tensors"][0]["offset"] = (1u64 << 40).into()),
        ),
        (
            "bytes for shape",
            Box::new(|h| h["tensors"][0]["shape"][0] = 3.into()),
        ),
        (
            "aligned",
            Box::new(|h| h["tensors"][1]["offset"] = 4.into()),
        ),
        (
            "unknown dtype",
            Box::new(|h| h["tensors"][0]["dtype"] = "q4".into()),
        ),
        (
            "listed twice",
            Box::new(|h| h["tensors"][1]["name"] = h["tensors"][0]["name"].clone()),
        ),
        (
            "nothing produced",
            Box::new(|h| h["ops"][1]["inputs"][0] = "nowhere".into()),
        ),
        (
            "groups",
            Box::new(|h| h["ops"][0]["op"]["groups"] = 2.into()),
        ),
        (
            "window",
            Box::new(|h| h["ops"][0]["op"]["stride"] = serde_json::json!([0, 1])),
        ),
        (
            "must be a constant",
            Box::new(|h| {
                let v = h["ops"][0]["inputs"][0].clone();
                h["ops"][0]["inputs"][1] = v;
            }),
        ),
        (
            "JSON",
            Box::new(|h| h["ops"][0]["op"]["type"] = "conv3d".into()),
        ),
        (
            "declared",
            Box::new(|h| h["raw_outputs"][0]["shape"][2] = 7.into()),
        ),
        (
            "too large",
            Box::new(|h| {
                h["input"]["shape"] = serde_json::json!([1, 3, 1 << 20, 1 << 20]);
            }),
        ),
    ];
    for (want, edit) in cases {
        let b = reseal(&bytes, edit);
        let e = EngineFile::from_bytes(&b)
            .err()
            .unwrap_or_else(|| panic!("{want}: accepted"))
            .to_string();
        assert!(e.contains(want) && e.contains("<memory>"), "{want}: {e}");
    }
    // A header whose pieces disagree with the model (names vs nc) fails at Engine level.
    let b = reseal(&bytes, |h| h["names"] = serde_json::json!(["one"]));
    let e = Engine::from_file(EngineFile::from_bytes(&b).unwrap())
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("1 names"), "{e}");
}

#[test]
fn engine_load_names_the_file() {
    let dir = tmpdir("names");
    let p = dir.join("broken.engine");
    std::fs::write(&p, b"EDENGINE\x01\x00\x00\x00").unwrap();
    let e = Engine::load(&p).err().unwrap().to_string();
    assert!(
        e.contains("broken.engine") && e.contains("truncated"),
        "{e}"
    );
    let e = Engine::load(&dir.join("missing.engine"))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("missing.engine"), "{e}");
}
