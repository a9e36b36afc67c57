//! safetensors read/write, state dicts, module loading, BatchNorm2d/LayerNorm/Dropout,
//! init, the real shared fixtures, and a no-panic sweep over malformed headers.
mod common;
use common::shared_or_skip;
use edgedistill::io::{
    Safetensors, StateDict, bytes_materialized, save_safetensors, to_safetensors_bytes,
};
use edgedistill::nn::{
    self, BatchNorm2d, Dropout, LayerNorm, Module, freeze, load_state_dict, state_dict_of, unfreeze,
};
use edgedistill::tensor::Rng;
use edgedistill::{DType, Error, Tensor};
use half::{bf16, f16};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};

/// Every test that reads tensors out of a file holds this, so the zero-copy test can
/// measure exact deltas of the process-wide counter.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);
impl TempDir {
    fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!("edgedistill-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    fn join(&self, f: &str) -> PathBuf {
        self.0.join(f)
    }
}
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Raw file: length prefix, header JSON as given, data.
fn raw(header: &str, data: &[u8]) -> Vec<u8> {
    let mut v = (header.len() as u64).to_le_bytes().to_vec();
    v.extend_from_slice(header.as_bytes());
    v.extend_from_slice(data);
    v
}

fn bits(t: &Tensor) -> Vec<u8> {
    fn b<T: edgedistill::tensor::StorageElement>(t: &Tensor) -> Vec<u8> {
        bytemuck::cast_slice(&t.to_vec::<T>().unwrap()).to_vec()
    }
    match t.dtype() {
        DType::F32 => b::<f32>(t),
        DType::F64 => b::<f64>(t),
        DType::F16 => b::<f16>(t),
        DType::BF16 => b::<bf16>(t),
        DType::I8 => b::<i8>(t),
        DType::U8 => b::<u8>(t),
        DType::I32 => b::<i32>(t),
        DType::I64 => b::<i64>(t),
    }
}

/// One tensor of every dtype, with awkward bit patterns (NaN payloads, -0, extremes).
fn every_dtype() -> Vec<(String, Tensor)> {
    let mut r = Rng::new(5);
    let mut u = || r.next_u64();
    vec![
        (
            "f32".into(),
            Tensor::from_vec(
                (0..7)
                    .map(|_| f32::from_bits(u() as u32))
                    .chain([-0.0, f32::NAN])
                    .collect::<Vec<_>>(),
                [3, 3],
            )
            .unwrap(),
        ),
        (
            "f64".into(),
            Tensor::from_vec(
                (0..5)
                    .map(|_| f64::from_bits(u()))
                    .chain([f64::MIN_POSITIVE])
                    .collect::<Vec<_>>(),
                [2, 3],
            )
            .unwrap(),
        ),
        (
            "f16".into(),
            Tensor::from_vec(
                (0..6)
                    .map(|_| f16::from_bits(u() as u16))
                    .collect::<Vec<_>>(),
                [6],
            )
            .unwrap(),
        ),
        (
            "bf16".into(),
            Tensor::from_vec(
                (0..4)
                    .map(|_| bf16::from_bits(u() as u16))
                    .collect::<Vec<_>>(),
                [2, 1, 2],
            )
            .unwrap(),
        ),
        (
            "i8".into(),
            Tensor::from_vec(vec![i8::MIN, -1, 0, 1, i8::MAX], [5]).unwrap(),
        ),
        (
            "u8".into(),
            Tensor::from_vec(vec![0u8, 7, 255], [3]).unwrap(),
        ),
        (
            "i32".into(),
            Tensor::from_vec(vec![i32::MIN, 0, i32::MAX, 12345], [2, 2]).unwrap(),
        ),
        (
            "i64".into(),
            Tensor::from_vec(vec![i64::MIN, -3, i64::MAX], [3]).unwrap(),
        ),
        ("scalar".into(), Tensor::scalar(2.5f32)),
        ("empty".into(), Tensor::zeros([0, 4], DType::F32)),
    ]
}

#[test]
fn round_trip_every_dtype_bit_exact_with_metadata() {
    let _s = serial();
    let dir = TempDir::new("roundtrip");
    let path = dir.join("all.safetensors");
    let ts = every_dtype();
    let mut meta = BTreeMap::new();
    meta.insert("kind".to_string(), "test".to_string());
    meta.insert("config".to_string(), "{\"a\": [1, 2]}".to_string());
    save_safetensors(&path, &ts, Some(&meta)).unwrap();
    let f = Safetensors::open(&path).unwrap();
    assert_eq!(f.metadata(), &meta);
    assert_eq!(f.len(), ts.len());
    for (name, t) in &ts {
        let got = f.tensor(name).unwrap();
        assert_eq!(got.dtype(), t.dtype(), "{name}");
        assert_eq!(got.shape(), t.shape(), "{name}");
        assert_eq!(bits(&got), bits(t), "{name}");
    }
    // The header is padded so data starts 8-byte aligned; no temp file is left behind.
    let bytes = std::fs::read(&path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap());
    assert_eq!(n % 8, 0);
    // The reference reader (the safetensors crate) accepts our file and agrees on it.
    let (_, m) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    assert_eq!(m.metadata().as_ref().unwrap()["kind"], "test");
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    for (name, t) in &ts {
        let view = st.tensor(name).unwrap();
        assert_eq!(view.shape(), t.dims(), "{name}");
        assert_eq!(view.data(), &bits(t)[..], "{name}");
        assert_eq!(
            format!("{:?}", view.dtype()),
            t.dtype().as_str().to_uppercase(),
            "{name}"
        );
    }
    let left: Vec<_> = std::fs::read_dir(&dir.0).unwrap().collect();
    assert_eq!(left.len(), 1, "temp files left: {left:?}");
    // Non-contiguous input is written in logical order; overwriting replaces the file.
    let t = Tensor::from_vec((0..6).map(|i| i as f32).collect::<Vec<_>>(), [2, 3]).unwrap();
    save_safetensors(&path, &[("t".into(), t.t().unwrap())], None).unwrap();
    let f = Safetensors::open(&path).unwrap();
    assert!(f.metadata().is_empty());
    assert_eq!(
        f.tensor("t").unwrap().to_vec::<f32>().unwrap(),
        vec![0., 3., 1., 4., 2., 5.]
    );
}

#[test]
fn bool_reads_as_u8_and_python_style_headers_parse() {
    let _s = serial();
    let h =
        r#"{"__metadata__":{"format":"pt"},"m":{"dtype":"BOOL","shape":[3],"data_offsets":[0,3]}}"#;
    let mut h = h.to_string();
    while !h.len().is_multiple_of(8) {
        h.push(' ');
    }
    let f = Safetensors::from_bytes(raw(&h, &[1, 0, 1])).unwrap();
    let t = f.tensor("m").unwrap();
    assert_eq!(t.dtype(), DType::U8);
    assert_eq!(t.to_vec::<u8>().unwrap(), vec![1, 0, 1]);
    assert_eq!(f.metadata()["format"], "pt");
}

#[test]
fn duplicate_names_refused_on_save() {
    let t = Tensor::zeros(2, DType::F32);
    let e = to_safetensors_bytes(&[("a".into(), t.clone()), ("a".into(), t)], None).unwrap_err();
    assert!(e.to_string().contains("\"a\""), "{e}");
}

#[test]
fn opening_copies_nothing_until_a_tensor_is_used() {
    let _s = serial();
    let dir = TempDir::new("zerocopy");
    let path = dir.join("big.safetensors");
    // 5 tensors of 1M f32 = 20 MB.
    let ts: Vec<(String, Tensor)> = (0..5)
        .map(|i| {
            (
                format!("t{i}"),
                Tensor::full(i as f64, [1024, 1024], DType::F32),
            )
        })
        .collect();
    save_safetensors(&path, &ts, None).unwrap();
    assert!(std::fs::metadata(&path).unwrap().len() > 20_000_000);
    let before = bytes_materialized();
    let f = Safetensors::open(&path).unwrap();
    let sd = StateDict::open(&path).unwrap();
    assert_eq!(sd.shape("t3").unwrap().dims(), &[1024, 1024]);
    assert_eq!(bytes_materialized(), before, "open copied tensor bytes");
    assert_eq!(f.bytes_copied(), 0);
    let t = f.tensor("t2").unwrap();
    assert_eq!(t.to_vec::<f32>().unwrap()[12345], 2.0);
    assert_eq!(bytes_materialized() - before, 4 * 1024 * 1024);
    assert_eq!(f.bytes_copied(), 4 * 1024 * 1024);
    sd.get("t4").unwrap();
    assert_eq!(bytes_materialized() - before, 8 * 1024 * 1024);
}

fn open_err(dir: &TempDir, name: &str, bytes: &[u8]) -> String {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    let e = Safetensors::open(&p).unwrap_err().to_string();
    assert!(e.contains(name), "error does not name the file: {e}");
    e
}

#[test]
fn malformed_files_are_errors_naming_file_and_problem() {
    let _s = serial();
    let dir = TempDir::new("bad");
    let good =
        to_safetensors_bytes(&[("w".into(), Tensor::ones([2, 2], DType::F32))], None).unwrap();
    let e = open_err(&dir, "short.safetensors", &good[..5]);
    assert!(e.contains("truncated"), "{e}");
    let e = open_err(&dir, "trunc.safetensors", &good[..good.len() - 4]);
    assert!(e.contains("\"w\"") && e.contains("out of range"), "{e}");
    let e = open_err(&dir, "empty.safetensors", &[]);
    assert!(e.contains("truncated"), "{e}");
    let mut huge = good.clone();
    huge[..8].copy_from_slice(&(1u64 << 40).to_le_bytes());
    let e = open_err(&dir, "hugeheader.safetensors", &huge);
    assert!(
        e.contains("header length") && e.contains("larger than the file"),
        "{e}"
    );
    let e = open_err(&dir, "json.safetensors", &raw("{\"w\": [1, ", &[]));
    assert!(e.contains("bad JSON"), "{e}");
    let e = open_err(
        &dir,
        "range.safetensors",
        &raw(
            r#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#,
            &[0; 4],
        ),
    );
    assert!(e.contains("\"w\"") && e.contains("out of range"), "{e}");
    let e = open_err(
        &dir,
        "overlap.safetensors",
        &raw(
            r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#,
            &[0; 8],
        ),
    );
    assert!(
        e.contains("\"b\"") && e.contains("overlap") && e.contains("\"a\""),
        "{e}"
    );
    let e = open_err(
        &dir,
        "dtype.safetensors",
        &raw(
            r#"{"q":{"dtype":"F8_E4M3","shape":[2],"data_offsets":[0,2]}}"#,
            &[0; 2],
        ),
    );
    assert!(e.contains("\"q\"") && e.contains("F8_E4M3"), "{e}");
    let e = open_err(
        &dir,
        "count.safetensors",
        &raw(
            r#"{"c":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#,
            &[0; 8],
        ),
    );
    assert!(
        e.contains("\"c\"") && e.contains("12 bytes") && e.contains("span 8"),
        "{e}"
    );
    let e = open_err(
        &dir,
        "gap.safetensors",
        &raw(
            r#"{"g":{"dtype":"U8","shape":[2],"data_offsets":[2,4]}}"#,
            &[0; 4],
        ),
    );
    assert!(e.contains("gap"), "{e}");
    let e = open_err(
        &dir,
        "meta.safetensors",
        &raw(r#"{"__metadata__":{"k":3}}"#, &[]),
    );
    assert!(e.contains("__metadata__"), "{e}");
    let e = Safetensors::open(dir.join("absent.safetensors"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("absent.safetensors"), "{e}");
    let f = Safetensors::from_bytes(good).unwrap();
    let e = f.tensor("nope").unwrap_err().to_string();
    assert!(e.contains("\"nope\""), "{e}");
}

#[test]
fn header_parser_survives_random_and_mutated_input() {
    let _s = serial();
    let mut rng = Rng::new(42);
    let valid = to_safetensors_bytes(
        &every_dtype(),
        Some(&BTreeMap::from([("k".to_string(), "v".to_string())])),
    )
    .unwrap();
    let mut ok = 0;
    for i in 0..600 {
        let mut buf = if i % 3 == 0 {
            // Pure noise, sometimes with a plausible length prefix.
            let n = rng.below(200) as usize;
            let mut b: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
            if b.len() >= 8 && rng.uniform() < 0.5 {
                let h = rng.below(b.len() as u64 - 7);
                b[..8].copy_from_slice(&h.to_le_bytes());
            }
            b
        } else {
            valid.clone()
        };
        if i % 3 != 0 {
            // Flip bytes (mostly in the header), truncate, or extend.
            for _ in 0..=rng.below(4) {
                let limit = if rng.uniform() < 0.8 {
                    400.min(buf.len())
                } else {
                    buf.len()
                };
                let k = rng.below(limit as u64) as usize;
                buf[k] = rng.next_u64() as u8;
            }
            match rng.below(4) {
                0 => buf.truncate(rng.below(buf.len() as u64) as usize),
                1 => buf.extend((0..rng.below(16)).map(|_| 0u8)),
                _ => {}
            }
        }
        if let Ok(f) = Safetensors::from_bytes(buf) {
            ok += 1;
            for n in f.names() {
                f.tensor(n).unwrap();
            }
        }
    }
    // Some mutations (e.g. inside tensor data) leave the file valid.
    assert!(ok > 0);
}

#[test]
fn state_dict_prefixes_and_lazy_get() {
    let _s = serial();
    let t = |v: f32| Tensor::full(v as f64, [2], DType::F32);
    let bytes = to_safetensors_bytes(
        &[
            ("weights.model.0.conv.weight".into(), t(1.0)),
            ("weights.model.0.bn.bias".into(), t(2.0)),
            ("adapter.lora_A".into(), t(3.0)),
            ("outputs.pred".into(), t(4.0)),
        ],
        None,
    )
    .unwrap();
    let f = std::sync::Arc::new(Safetensors::from_bytes(bytes).unwrap());
    let sd = StateDict::from_safetensors(f.clone());
    assert_eq!(sd.len(), 4);
    let w = sd.strip_prefix("weights.");
    assert_eq!(
        w.names().collect::<Vec<_>>(),
        vec!["model.0.bn.bias", "model.0.conv.weight"]
    );
    assert_eq!(f.bytes_copied(), 0);
    assert_eq!(
        w.get("model.0.bn.bias").unwrap().to_vec::<f32>().unwrap(),
        vec![2.0, 2.0]
    );
    assert_eq!(f.bytes_copied(), 8);
    let a = sd.filter_prefix("adapter.");
    assert_eq!(a.names().collect::<Vec<_>>(), vec!["adapter.lora_A"]);
    let e = w.get("model.9.conv.weight").unwrap_err().to_string();
    assert!(
        e.contains("model.9.conv.weight") && e.contains("<memory>"),
        "{e}"
    );
    assert_eq!(w.dtype("model.0.conv.weight"), Some(DType::F32));
}

/// A two-level model to check dotted names: model.0 = BatchNorm2d, model.1 = LayerNorm.
struct Net {
    bn: BatchNorm2d,
    ln: LayerNorm,
    drop: Dropout,
}
struct Root(Net);
impl Module for Net {
    fn visit_children(&self, f: &mut dyn FnMut(&str, &dyn Module)) {
        f("0", &self.bn);
        f("1", &self.ln);
        f("2", &self.drop);
    }
}
impl Module for Root {
    fn visit_children(&self, f: &mut dyn FnMut(&str, &dyn Module)) {
        f("model", &self.0);
    }
}
fn net() -> Root {
    Root(Net {
        bn: BatchNorm2d::new(3).unwrap(),
        ln: LayerNorm::new(4).unwrap(),
        drop: Dropout::new(0.5, 1).unwrap(),
    })
}

#[test]
fn dotted_names_and_state_dict_order() {
    let m = net();
    let p: Vec<String> = m.named_parameters().into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        p,
        [
            "model.0.weight",
            "model.0.bias",
            "model.1.weight",
            "model.1.bias"
        ]
    );
    let b: Vec<String> = m.named_buffers().into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        b,
        [
            "model.0.running_mean",
            "model.0.running_var",
            "model.0.num_batches_tracked"
        ]
    );
    let s: Vec<String> = state_dict_of(&m).into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        s[..5],
        [
            "model.0.weight",
            "model.0.bias",
            "model.0.running_mean",
            "model.0.running_var",
            "model.0.num_batches_tracked"
        ]
    );
    assert!(m.named_parameters().iter().all(|(_, t)| t.requires_grad()));
    freeze(&m).unwrap();
    assert!(m.named_parameters().iter().all(|(_, t)| !t.requires_grad()));
    unfreeze(&m).unwrap();
    assert!(m.named_parameters().iter().all(|(_, t)| t.requires_grad()));
    m.eval();
    assert!(!m.0.bn.is_training() && !m.0.drop.is_training());
    m.train();
    assert!(m.0.bn.is_training());
}

#[test]
fn load_state_dict_checks_everything_then_copies_in_place() {
    let _s = serial();
    let src = net();
    let mut rng = Rng::new(3);
    for (_, t) in state_dict_of(&src) {
        if t.dtype().is_float() {
            t.assign(&Tensor::randn(t.shape().clone(), 0.0, 1.0, &mut rng))
                .unwrap();
        }
    }
    // Save in f64 to check the dtype conversion on load; read back lazily from a file.
    let dir = TempDir::new("load");
    let path = dir.join("m.safetensors");
    let saved: Vec<(String, Tensor)> = state_dict_of(&src)
        .into_iter()
        .map(|(n, t)| {
            let t = if t.dtype().is_float() {
                t.to_dtype(DType::F64).unwrap()
            } else {
                t
            };
            (format!("weights.{n}"), t)
        })
        .collect();
    save_safetensors(&path, &saved, None).unwrap();
    let sd = StateDict::open(&path).unwrap().strip_prefix("weights.");
    let dst = net();
    let w_before = dst.0.bn.weight.clone();
    let r = load_state_dict(&dst, &sd, true).unwrap();
    assert_eq!(r.loaded, 7);
    assert!(r.missing.is_empty() && r.unexpected.is_empty());
    assert_eq!(
        w_before.to_vec_f32().unwrap(),
        src.0.bn.weight.to_vec_f32().unwrap(),
        "not in place"
    );
    assert!(dst.0.bn.weight.requires_grad());
    assert_eq!(dst.0.ln.bias.as_ref().unwrap().dtype(), DType::F32);

    // Missing, unexpected and mis-shaped names are all listed; nothing is changed.
    let mut bad = StateDict::from_tensors(state_dict_of(&src));
    bad.remove("model.1.bias");
    bad.insert("model.7.weight", Tensor::zeros(1, DType::F32));
    bad.insert("model.0.running_var", Tensor::zeros(5, DType::F32));
    let fresh = net();
    let e = load_state_dict(&fresh, &bad, true).unwrap_err();
    match &e {
        Error::Load {
            missing,
            unexpected,
            mismatched,
        } => {
            assert_eq!(missing, &["model.1.bias"]);
            assert_eq!(unexpected, &["model.7.weight"]);
            assert_eq!(mismatched.len(), 1);
            let m = &mismatched[0];
            assert!(
                m.contains("model.0.running_var") && m.contains("[3]") && m.contains("[5]"),
                "{m}"
            );
        }
        other => panic!("expected Error::Load, got {other}"),
    }
    let text = e.to_string();
    assert!(
        text.contains("model.1.bias") && text.contains("model.7.weight"),
        "{text}"
    );
    assert_eq!(
        fresh.0.bn.weight.to_vec_f32().unwrap(),
        vec![1.0; 3],
        "failed load changed weights"
    );

    // Non-strict: missing/unexpected are reported, a shape mismatch is still an error.
    bad.insert("model.0.running_var", Tensor::ones(3, DType::F32));
    let r = load_state_dict(&fresh, &bad, false).unwrap();
    assert_eq!((r.missing.len(), r.unexpected.len()), (1, 1));
    bad.insert("model.0.running_var", Tensor::zeros(5, DType::F32));
    assert!(load_state_dict(&fresh, &bad, false).is_err());

    // A missing num_batches_tracked is accepted, as torch does for plain state dicts.
    let mut no_counter = StateDict::from_tensors(state_dict_of(&src));
    no_counter.remove("model.0.num_batches_tracked");
    let r = load_state_dict(&net(), &no_counter, true).unwrap();
    assert_eq!(r.defaulted, ["model.0.num_batches_tracked"]);
}

#[test]
fn batch_norm2d_train_and_eval() {
    let bn = BatchNorm2d::new(2)
        .unwrap()
        .with_eps(1e-3)
        .with_momentum(Some(0.03));
    let x = Tensor::from_vec((0..16).map(|i| i as f32).collect::<Vec<_>>(), [2, 2, 2, 2]).unwrap();
    let y = bn.forward(&x).unwrap();
    // Channel 0 holds 0,1,2,3,8,9,10,11: mean 5.5, biased var 17.25, unbiased 17.25*8/7.
    let yv = y.to_vec_f32().unwrap();
    assert!((yv[0] as f64 - (0.0 - 5.5) / (17.25f64 + 1e-3).sqrt()).abs() < 1e-5);
    let rm = bn.running_mean.to_vec_f32().unwrap();
    let rv = bn.running_var.to_vec_f32().unwrap();
    assert!((rm[0] as f64 - 0.03 * 5.5).abs() < 1e-6 && (rm[1] as f64 - 0.03 * 9.5).abs() < 1e-6);
    assert!((rv[0] as f64 - (0.97 + 0.03 * 17.25 * 8.0 / 7.0)).abs() < 1e-5);
    assert_eq!(bn.num_batches_tracked.to_vec::<i64>().unwrap(), vec![1]);
    // Eval: running statistics, no updates.
    bn.eval();
    let y = bn.forward(&x).unwrap();
    let want = (0.0 - rm[0] as f64) / (rv[0] as f64 + 1e-3).sqrt();
    assert!((y.to_vec_f32().unwrap()[0] as f64 - want).abs() < 1e-5);
    assert_eq!(bn.running_mean.to_vec_f32().unwrap(), rm);
    assert_eq!(bn.num_batches_tracked.to_vec::<i64>().unwrap(), vec![1]);
    // Gradients reach weight and bias.
    bn.train();
    let loss = bn.forward(&x).unwrap().sqr().unwrap().sum_all().unwrap();
    loss.backward().unwrap();
    assert!(bn.weight.grad().is_some() && bn.bias.grad().is_some());
    let e = bn
        .forward(&Tensor::zeros([2, 2], DType::F32))
        .unwrap_err()
        .to_string();
    assert!(e.contains("BatchNorm2d") && e.contains("[2, 2]"), "{e}");
    // momentum None: cumulative average, first batch replaces the running mean.
    let cma = BatchNorm2d::new(2).unwrap().with_momentum(None);
    cma.forward(&x).unwrap();
    assert!((cma.running_mean.to_vec_f32().unwrap()[0] - 5.5).abs() < 1e-6);
}

#[test]
fn layer_norm_module() {
    let ln = LayerNorm::new([2, 3]).unwrap();
    let x = Tensor::randn([4, 2, 3], 1.0, 2.0, &mut Rng::new(9));
    let y = ln.forward(&x).unwrap();
    let v = y.to_vec_f32().unwrap();
    let mean: f32 = v[..6].iter().sum::<f32>() / 6.0;
    assert!(mean.abs() < 1e-5);
    let e = ln
        .forward(&Tensor::zeros([4, 3, 2], DType::F32))
        .unwrap_err()
        .to_string();
    assert!(e.contains("[4, 3, 2]") && e.contains("[2, 3]"), "{e}");
    assert!(LayerNorm::without_affine(3).named_parameters().is_empty());
}

#[test]
fn dropout_is_seeded_scaled_and_identity_in_eval() {
    let x = Tensor::ones([1000], DType::F32).requires_grad_().unwrap();
    let d = Dropout::new(0.25, 7).unwrap();
    let y = d.forward(&x).unwrap();
    let v = y.to_vec_f32().unwrap();
    assert!(v.iter().all(|&a| a == 0.0 || (a - 1.0 / 0.75).abs() < 1e-6));
    let kept = v.iter().filter(|&&a| a != 0.0).count();
    assert!((650..850).contains(&kept), "{kept}");
    y.sum_all().unwrap().backward().unwrap();
    assert_eq!(
        x.grad().unwrap().to_vec_f32().unwrap(),
        v,
        "grad = mask * scale"
    );
    let again = Dropout::new(0.25, 7).unwrap().forward(&x).unwrap();
    assert_eq!(again.to_vec_f32().unwrap(), v, "same seed, same mask");
    d.eval();
    assert_eq!(
        d.forward(&x).unwrap().to_vec_f32().unwrap(),
        vec![1.0; 1000]
    );
    assert!(Dropout::new(1.5, 0).is_err());
    assert!(
        Dropout::new(1.0, 0)
            .unwrap()
            .forward(&x)
            .unwrap()
            .to_vec_f32()
            .unwrap()
            .iter()
            .all(|&a| a == 0.0)
    );
}

#[test]
fn default_inits_have_torch_bounds() {
    let mut rng = Rng::new(1);
    let w = nn::init::default_weight([8, 4, 3, 3], &mut rng).unwrap();
    let bound = 1.0 / (36f32).sqrt();
    let v = w.to_vec_f32().unwrap();
    assert!(v.iter().all(|a| a.abs() <= bound));
    assert!(v.iter().any(|a| a.abs() > 0.8 * bound));
    let b = nn::init::default_bias(8, 36, &mut rng);
    assert!(b.to_vec_f32().unwrap().iter().all(|a| a.abs() <= bound));
    assert_eq!(
        nn::init::fan_in_fan_out(&[8, 4, 3, 3].into()).unwrap(),
        (36, 72)
    );
    assert!(nn::init::fan_in_fan_out(&[8].into()).is_err());
    // kaiming_uniform with a = 0: bound sqrt(6 / fan_in).
    let k = nn::init::kaiming_uniform([100, 6], 0.0, &mut rng).unwrap();
    assert!(
        k.to_vec_f32()
            .unwrap()
            .iter()
            .all(|a| a.abs() <= 1.0 + 1e-6)
    );
    let p = nn::parameter(Tensor::zeros(2, DType::F32)).unwrap();
    assert!(p.requires_grad());
}

#[test]
fn reads_real_yolov8_fixture() {
    let _s = serial();
    let name = "yolov8n-seg-visible.safetensors";
    let Some(path) = shared_or_skip(name) else {
        return;
    };
    let before = bytes_materialized();
    let f = Safetensors::open(&path).unwrap();
    assert_eq!(bytes_materialized(), before);
    assert_eq!(f.metadata()["kind"], "yolov8-seg");
    assert!(f.metadata()["reference"].contains("ultralytics"));
    assert_eq!(f.shape("inputs.images").unwrap().dims(), &[2, 3, 256, 256]);
    let w = StateDict::from_safetensors(std::sync::Arc::new(f)).strip_prefix("weights.");
    let t = w.get("model.0.conv.weight").unwrap();
    assert_eq!(t.dims(), &[16, 3, 3, 3]);
    assert_eq!(t.dtype(), DType::F32);
    let fx = edgedistill::check::Fixture::open(&path).unwrap();
    assert_eq!(fx.kind(), "yolov8-seg");
    assert_eq!(fx.config().unwrap()["nc"], 3);
    assert_eq!(fx.tolerance("outputs.loss_sum").atol, 1e-4);
    assert_eq!(fx.tolerance("outputs.pred").atol, 2e-4);
    let pred = fx.tensor("outputs.pred").unwrap();
    assert!(fx.compare("outputs.pred", &pred).pass);
    assert!(
        !fx.compare("outputs.pred", &pred.affine(1.0, 1.0).unwrap())
            .pass
    );
}
