//! ONNX writer: a hand-built graph covering every op is written as ONNX, checked and run by
//! onnxruntime (tools/reference/onnx_run.py) and compared with the same network computed
//! with our tensor ops; plus a pure-Rust structural check of the bytes.
mod common;

use edgedistill::engine::onnx::{OnnxOptions, to_onnx, write_onnx};
use edgedistill::engine::{Act, Graph, Level, Node, Op, ValueInfo, Weight};
use edgedistill::io::{Safetensors, save_safetensors};
use edgedistill::models::yolov8::anchors::{dist2bbox, make_anchors};
use edgedistill::tensor::{Conv2dParams, Rng};
use edgedistill::{DType, Tensor};
use std::collections::{HashMap, HashSet};

/// A graph under construction plus its weights as tensors (for the reference forward).
struct Build {
    g: Graph,
    rng: Rng,
    w: HashMap<String, Tensor>,
}

impl Build {
    fn weight(&mut self, name: &str, shape: &[usize]) -> Tensor {
        let t = Tensor::randn(shape.to_vec(), 0.0, 0.5, &mut self.rng);
        let data = t.to_vec_f32().unwrap();
        self.g
            .weights
            .push((name.into(), Weight::f32(shape.to_vec(), data)));
        self.w.insert(name.into(), t.clone());
        t
    }

    fn node(&mut self, name: &str, op: Op, ins: &[&str], outs: &[&str]) {
        self.g.nodes.push(Node {
            name: name.into(),
            op,
            inputs: ins.iter().map(|s| s.to_string()).collect(),
            outputs: outs.iter().map(|s| s.to_string()).collect(),
        });
    }

    /// Conv with weight `{name}.w` and bias `{name}.b` (unless `bias` is false).
    #[allow(clippy::too_many_arguments)]
    fn conv(
        &mut self,
        name: &str,
        x: &str,
        out: &str,
        w: [usize; 4],
        bias: bool,
        p: Conv2dParams,
        act: Act,
    ) {
        self.weight(&format!("{name}.w"), &w);
        let mut ins = vec![x.to_string(), format!("{name}.w")];
        if bias {
            self.weight(&format!("{name}.b"), &[w[0]]);
            ins.push(format!("{name}.b"));
        }
        let ins: Vec<&str> = ins.iter().map(String::as_str).collect();
        let op = Op::Conv {
            stride: [p.stride.0, p.stride.1],
            pad: [p.padding.0, p.padding.1],
            dilation: [p.dilation.0, p.dilation.1],
            groups: p.groups,
            act,
        };
        self.node(name, op, &ins, &[out]);
    }
}

fn params(stride: usize, pad: usize, dilation: usize, groups: usize) -> Conv2dParams {
    Conv2dParams {
        stride: (stride, stride),
        padding: (pad, pad),
        dilation: (dilation, dilation),
        groups,
    }
}

const LEVELS: [Level; 2] = [
    Level {
        h: 8,
        w: 8,
        stride: 2.0,
    },
    Level {
        h: 4,
        w: 4,
        stride: 4.0,
    },
];

/// Every op, on a [N, 3, 16, 16] input. Two names collide on purpose with ones the writer
/// makes up for m.0's SiLU (`m.0/conv` value, `m.0/sigmoid` node).
fn build() -> Build {
    let mut b = Build {
        g: Graph::default(),
        rng: Rng::new(7),
        w: HashMap::new(),
    };
    b.g.input = Some(ValueInfo {
        name: "images".into(),
        shape: vec![1, 3, 16, 16],
    });
    b.conv(
        "m.0",
        "images",
        "x0",
        [4, 3, 3, 3],
        true,
        params(2, 1, 1, 1),
        Act::Silu,
    );
    b.node(
        "m.1",
        Op::Split {
            axis: 1,
            sizes: vec![2, 2],
        },
        &["x0"],
        &["s0", "s1"],
    );
    b.conv(
        "m.2",
        "s1",
        "x2",
        [4, 1, 3, 3],
        false,
        params(1, 2, 2, 2),
        Act::None,
    );
    b.node("m.3", Op::Concat { axis: 1 }, &["s0", "x2"], &["c3"]);
    let pool = Op::MaxPool {
        kernel: 3,
        stride: 2,
        pad: 1,
    };
    b.node("m.4", pool, &["c3"], &["p4"]);
    b.node("m.5", Op::Upsample { scale: 2 }, &["p4"], &["u5"]);
    b.node("m.6", Op::Add, &["u5", "c3"], &["a6"]);
    b.conv(
        "m.7",
        "a6",
        "d7",
        [8, 6, 1, 1],
        true,
        params(1, 0, 1, 1),
        Act::None,
    );
    b.node("m.8", Op::DepthToSpace { block: 2 }, &["d7"], &["proto"]);
    // DFL head, two levels, reg_max 4.
    b.conv(
        "m.9.a",
        "a6",
        "ha",
        [16, 6, 1, 1],
        true,
        params(1, 0, 1, 1),
        Act::None,
    );
    b.conv(
        "m.9.b",
        "p4",
        "hb",
        [16, 6, 1, 1],
        true,
        params(1, 0, 1, 1),
        Act::None,
    );
    let flat = |c: i64| Op::Reshape {
        shape: vec![0, c, -1],
    };
    b.node("m.9.a.flat", flat(16), &["ha"], &["ha_f"]);
    b.node("m.9.b.flat", flat(16), &["hb"], &["hb_f"]);
    b.node(
        "m.9.cat",
        Op::Concat { axis: 2 },
        &["ha_f", "hb_f"],
        &["dist"],
    );
    let decode = Op::DecodeBoxes {
        reg_max: 4,
        levels: LEVELS.to_vec(),
    };
    b.node("m.9.decode", decode, &["dist"], &["boxes"]);
    // Class scores.
    b.conv(
        "m.10",
        "a6",
        "cls",
        [3, 6, 1, 1],
        true,
        params(1, 0, 1, 1),
        Act::None,
    );
    b.node("m.10.flat", flat(3), &["cls"], &["m.0/conv"]);
    b.node("m.0/sigmoid", Op::Sigmoid, &["m.0/conv"], &["scores"]);
    // reg_max 1: no DFL.
    b.conv(
        "m.11",
        "p4",
        "h1",
        [4, 6, 1, 1],
        true,
        params(1, 0, 1, 1),
        Act::None,
    );
    b.node("m.11.flat", flat(4), &["h1"], &["h1_f"]);
    let decode1 = Op::DecodeBoxes {
        reg_max: 1,
        levels: vec![LEVELS[1]],
    };
    b.node("m.11.decode", decode1, &["h1_f"], &["boxes1"]);
    for (name, shape) in [
        ("boxes", vec![1, 4, 80]),
        ("scores", vec![1, 3, 64]),
        ("proto", vec![1, 2, 16, 16]),
        ("boxes1", vec![1, 4, 16]),
    ] {
        b.g.outputs.push(ValueInfo {
            name: name.into(),
            shape,
        });
    }
    b.g.validate().unwrap();
    b
}

/// ultralytics box decode with our ops: DFL (if reg_max > 1), dist2bbox xywh, × stride.
fn decode_ref(dist: &Tensor, reg_max: usize, levels: &[Level]) -> Tensor {
    let n = dist.dims()[0];
    let a = dist.dims()[2];
    let d = if reg_max > 1 {
        let bins = Tensor::arange(0.0, reg_max as f64, 1.0, DType::F32)
            .unwrap()
            .reshape([1, 1, reg_max, 1])
            .unwrap();
        let p = dist
            .reshape([n, 4, reg_max, a])
            .unwrap()
            .softmax(2)
            .unwrap();
        p.mul(&bins).unwrap().sum(&[2], false).unwrap()
    } else {
        dist.clone()
    };
    let sizes: Vec<(usize, usize)> = levels.iter().map(|l| (l.h, l.w)).collect();
    let strides: Vec<f32> = levels.iter().map(|l| l.stride).collect();
    let (pts, st) = make_anchors(&sizes, &strides, 0.5).unwrap();
    let anchors = pts.t().unwrap().unsqueeze(0).unwrap();
    let st = st.t().unwrap().unsqueeze(0).unwrap();
    dist2bbox(&d, &anchors, true, 1).unwrap().mul(&st).unwrap()
}

/// The graph of [`build`] computed with our tensor ops.
fn reference(b: &Build, x: &Tensor) -> HashMap<&'static str, Tensor> {
    let w = |n: &str| &b.w[n];
    let n = x.dims()[0];
    let p1 = params(1, 0, 1, 1);
    let x0 = x
        .conv2d(w("m.0.w"), Some(w("m.0.b")), params(2, 1, 1, 1))
        .unwrap()
        .silu()
        .unwrap();
    let s = x0.split(&[2, 2], 1).unwrap();
    let x2 = s[1].conv2d(w("m.2.w"), None, params(1, 2, 2, 2)).unwrap();
    let c3 = Tensor::cat(&[&s[0], &x2], 1).unwrap();
    let p4 = c3.max_pool2d((3, 3), (2, 2), (1, 1)).unwrap();
    let a6 = p4.upsample_nearest2d((8, 8)).unwrap().add(&c3).unwrap();
    let d7 = a6.conv2d(w("m.7.w"), Some(w("m.7.b")), p1).unwrap();
    // DepthToSpace CRD: channel c·b² + i·b + j goes to (c, h·b + i, w·b + j).
    let proto = d7
        .reshape([n, 2, 2, 2, 8, 8])
        .unwrap()
        .permute(&[0, 1, 4, 2, 5, 3])
        .unwrap()
        .contiguous()
        .unwrap()
        .reshape([n, 2, 16, 16])
        .unwrap();
    let head = |x: &Tensor, name: &str, c: usize| {
        let y = x
            .conv2d(w(&format!("{name}.w")), Some(w(&format!("{name}.b"))), p1)
            .unwrap();
        let hw = y.dims()[2] * y.dims()[3];
        y.reshape([n, c, hw]).unwrap()
    };
    let dist = Tensor::cat(&[&head(&a6, "m.9.a", 16), &head(&p4, "m.9.b", 16)], 2).unwrap();
    let mut out = HashMap::new();
    out.insert("boxes", decode_ref(&dist, 4, &LEVELS));
    out.insert("scores", head(&a6, "m.10", 3).sigmoid().unwrap());
    out.insert("proto", proto);
    out.insert("boxes1", decode_ref(&head(&p4, "m.11", 4), 1, &LEVELS[1..]));
    out
}

#[test]
fn onnxruntime_matches_our_ops() {
    let Some(py) = common::python_with(&["onnx", "onnxruntime", "safetensors", "numpy"]) else {
        return;
    };
    let b = build();
    let x = Tensor::randn([2, 3, 16, 16], 0.0, 1.0, &mut Rng::new(11));
    let want = reference(&b, &x);

    let dir = std::env::temp_dir().join(format!("ed-onnx-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (model, inp, outp) = (
        dir.join("m.onnx"),
        dir.join("in.safetensors"),
        dir.join("out.safetensors"),
    );
    write_onnx(&model, &b.g, &OnnxOptions::default()).unwrap();
    save_safetensors(&inp, &[("images".to_string(), x)], None).unwrap();
    let text = common::onnx_run(&py, &model, &inp, &outp, &["--threads", "2"]);
    println!("{}", text.trim());

    let got = Safetensors::open(&outp).unwrap();
    let mut names = got.names();
    names.sort();
    assert_eq!(names, ["boxes", "boxes1", "proto", "scores"]);
    for (name, want) in &want {
        let g = got.tensor(name).unwrap();
        assert_eq!(g.dims(), want.dims(), "{name}: shape");
        let (g, w) = (g.to_vec_f32().unwrap(), want.to_vec_f32().unwrap());
        let mut worst = 0f32;
        for (i, (a, b)) in g.iter().zip(&w).enumerate() {
            let err = (a - b).abs() / b.abs().max(1.0);
            assert!(err <= 1e-4, "{name}[{i}]: onnxruntime {a}, ours {b}");
            worst = worst.max(err);
        }
        println!("{name}: {} values, max rel err {worst:.2e}", g.len());
    }
    std::fs::remove_dir_all(&dir).ok();
}

// --- a minimal protobuf reader, enough to walk the model we wrote ---

enum Val<'a> {
    Int(u64),
    Bytes(&'a [u8]),
}

fn varint(b: &[u8], i: &mut usize) -> u64 {
    let (mut v, mut shift) = (0u64, 0);
    loop {
        let byte = b[*i];
        *i += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return v;
        }
        shift += 7;
    }
}

fn fields(b: &[u8]) -> Vec<(u64, Val<'_>)> {
    let (mut out, mut i) = (Vec::new(), 0);
    while i < b.len() {
        let tag = varint(b, &mut i);
        let val = match tag & 7 {
            0 => Val::Int(varint(b, &mut i)),
            2 => {
                let n = varint(b, &mut i) as usize;
                i += n;
                Val::Bytes(&b[i - n..i])
            }
            5 => {
                i += 4;
                Val::Int(0)
            }
            w => panic!("unexpected wire type {w}"),
        };
        out.push((tag >> 3, val));
    }
    out
}

fn all(b: &[u8], field: u64) -> Vec<&[u8]> {
    fields(b)
        .into_iter()
        .filter_map(|(f, v)| match v {
            Val::Bytes(s) if f == field => Some(s),
            _ => None,
        })
        .collect()
}

fn strs(b: &[u8], field: u64) -> Vec<String> {
    all(b, field)
        .into_iter()
        .map(|s| String::from_utf8(s.to_vec()).unwrap())
        .collect()
}

fn int(b: &[u8], field: u64) -> Option<u64> {
    fields(b).into_iter().find_map(|(f, v)| match v {
        Val::Int(x) if f == field => Some(x),
        _ => None,
    })
}

#[test]
fn model_structure_is_sound() {
    let b = build();
    let opts = OnnxOptions {
        doc: "test".into(),
        ..Default::default()
    };
    let bytes = to_onnx(&b.g, &opts).unwrap();
    // ModelProto.ir_version (field 1, varint) = 8 comes first.
    assert_eq!(&bytes[..2], &[0x08, 0x08]);
    assert_eq!(bytes, to_onnx(&b.g, &opts).unwrap(), "deterministic");
    assert_eq!(strs(&bytes, 2), ["edgedistill"]);
    let opset = all(&bytes, 8);
    assert_eq!(opset.len(), 1);
    assert_eq!(
        (strs(opset[0], 1), int(opset[0], 2)),
        (vec![String::new()], Some(17))
    );

    let graph = all(&bytes, 7)[0];
    assert_eq!(strs(graph, 2), ["edgedistill"]);
    let inits: Vec<String> = all(graph, 5).iter().flat_map(|t| strs(t, 8)).collect();
    let unique: HashSet<&String> = inits.iter().collect();
    assert_eq!(
        unique.len(),
        inits.len(),
        "initializer names unique: {inits:?}"
    );
    for (name, _) in &b.g.weights {
        assert!(unique.contains(name), "weight {name} is an initializer");
    }
    let inputs: Vec<String> = all(graph, 11).iter().flat_map(|v| strs(v, 1)).collect();
    assert_eq!(inputs, ["images"]);
    let outputs: Vec<String> = all(graph, 12).iter().flat_map(|v| strs(v, 1)).collect();
    assert_eq!(outputs, ["boxes", "scores", "proto", "boxes1"]);

    // SSA: every node input exists before it (or is "" = absent), every output is new.
    let mut defined: HashSet<String> = inits.iter().cloned().chain(inputs).collect();
    let mut node_names = HashSet::new();
    for node in all(graph, 1) {
        let name = strs(node, 3).pop().unwrap();
        assert!(node_names.insert(name.clone()), "node name {name} repeated");
        for i in strs(node, 1) {
            assert!(
                i.is_empty() || defined.contains(&i),
                "{name} reads undefined {i}"
            );
        }
        for o in strs(node, 2) {
            assert!(defined.insert(o.clone()), "{name} redefines {o}");
        }
    }
    // The graph's own node names survive; the colliding made-up ones move aside.
    assert!(node_names.contains("m.0/sigmoid") && node_names.contains("m.0/sigmoid_1"));
    assert!(outputs.iter().all(|o| defined.contains(o)));
}

#[test]
fn conv_weight_must_be_a_constant() {
    let mut b = build();
    // Conv reading a computed tensor as its weight: named in the error.
    b.g.nodes.push(Node {
        name: "bad.conv".into(),
        op: Op::Conv {
            stride: [1, 1],
            pad: [0, 0],
            dilation: [1, 1],
            groups: 1,
            act: Act::None,
        },
        inputs: vec!["a6".into(), "d7".into()],
        outputs: vec!["bad".into()],
    });
    let e = to_onnx(&b.g, &OnnxOptions::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("bad.conv") && e.contains("d7"), "{e}");
}
