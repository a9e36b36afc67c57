//! [`Graph`] → ONNX `ModelProto` (IR 8, opset 17), so onnxruntime / TensorRT users get the
//! same network the engine runs. Each op is one ONNX node or a fixed expansion into
//! standard ops (Conv+SiLU, the box decode); no custom domains. Field numbers are those of
//! `onnx/onnx.proto`. [`OnnxOutputs::Postprocessed`] appends the student's postprocess
//! (NMS, masks) in standard ops ([`super::postprocess`]).
use super::proto::Msg;
use crate::engine::format::PostprocessSpec;
use crate::engine::graph::{Act, Graph, Level, Node, Op, ValueInfo, WeightData};
use crate::{Error, Result};
use std::collections::HashSet;
use std::path::Path;

pub const IR_VERSION: u64 = 8;
pub const OPSET: u64 = 17;

/// What goes into the model besides the graph. Build with `..Default::default()` so new
/// fields (INT8 QDQ) do not break callers.
#[derive(Clone, Debug)]
pub struct OnnxOptions {
    pub producer_version: String,
    /// `ModelProto.doc_string`; empty writes none.
    pub doc: String,
    /// The model's outputs: the graph's raw head outputs (default) or the postprocessed
    /// detections.
    pub outputs: OnnxOutputs,
}

impl Default for OnnxOptions {
    fn default() -> Self {
        OnnxOptions {
            producer_version: env!("CARGO_PKG_VERSION").into(),
            doc: String::new(),
            outputs: OnnxOutputs::Raw,
        }
    }
}

/// Which outputs the ONNX model has.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum OnnxOutputs {
    /// The graph's outputs as they are: `pred` `[batch, 4 + nc + nm, A]` and `proto`
    /// `[batch, nm, S/4, S/4]` (seg); the batch is free.
    #[default]
    Raw,
    /// The student's postprocess appended in standard opset-17 ops (batch 1): `boxes`
    /// `[K, 4]` f32 (x1, y1, x2, y2 in the letterboxed input's pixels, not clipped),
    /// `scores` `[K]` f32, `class_ids` `[K]` int64, `masks` `[K, S, S]` bool (seg only),
    /// best first. Class-aware NMS keeping scores `> conf`, suppressing at IoU
    /// `> iou`, at most `max_det`; masks are `sigmoid(logit) > mask_threshold`. See
    /// `docs/ENGINE.md` (ONNX).
    Postprocessed {
        conf: f32,
        iou: f32,
        max_det: usize,
        mask_threshold: f32,
    },
}

impl OnnxOutputs {
    /// Postprocessed with the settings of an engine's postprocess.
    pub fn postprocessed(spec: &PostprocessSpec) -> Self {
        OnnxOutputs::Postprocessed {
            conf: spec.conf,
            iou: spec.iou,
            max_det: spec.max_det,
            mask_threshold: spec.mask_threshold,
        }
    }

    /// Postprocessed with ultralytics' predictor defaults (conf 0.25, iou 0.7, max_det
    /// 300, mask threshold 0.5), as `ed-export` writes by default.
    pub fn default_postprocessed() -> Self {
        OnnxOutputs::Postprocessed {
            conf: 0.25,
            iou: 0.7,
            max_det: 300,
            mask_threshold: 0.5,
        }
    }
}

// onnx.proto field numbers and enum values, by message.
const MODEL_IR_VERSION: u32 = 1;
const MODEL_PRODUCER_NAME: u32 = 2;
const MODEL_PRODUCER_VERSION: u32 = 3;
const MODEL_DOC: u32 = 6;
const MODEL_GRAPH: u32 = 7;
const MODEL_OPSET_IMPORT: u32 = 8;
const OPSET_DOMAIN: u32 = 1;
const OPSET_VERSION: u32 = 2;
const GRAPH_NODE: u32 = 1;
const GRAPH_NAME: u32 = 2;
const GRAPH_INITIALIZER: u32 = 5;
const GRAPH_INPUT: u32 = 11;
const GRAPH_OUTPUT: u32 = 12;
const NODE_INPUT: u32 = 1;
const NODE_OUTPUT: u32 = 2;
const NODE_NAME: u32 = 3;
const NODE_OP_TYPE: u32 = 4;
const NODE_ATTRIBUTE: u32 = 5;
const ATTR_NAME: u32 = 1;
const ATTR_I: u32 = 3;
const ATTR_S: u32 = 4;
const ATTR_INTS: u32 = 8;
const ATTR_TYPE: u32 = 20;
const ATTR_TYPE_INT: u64 = 2;
const ATTR_TYPE_STRING: u64 = 3;
const ATTR_TYPE_INTS: u64 = 7;
const TENSOR_DIMS: u32 = 1;
const TENSOR_DATA_TYPE: u32 = 2;
const TENSOR_NAME: u32 = 8;
const TENSOR_RAW_DATA: u32 = 9;
pub(super) const DTYPE_FLOAT: u64 = 1;
const DTYPE_INT8: u64 = 3;
pub(super) const DTYPE_INT64: u64 = 7;
pub(super) const DTYPE_BOOL: u64 = 9;
const VALUE_NAME: u32 = 1;
const VALUE_TYPE: u32 = 2;
const TYPE_TENSOR: u32 = 1;
const TYPE_TENSOR_ELEM: u32 = 1;
const TYPE_TENSOR_SHAPE: u32 = 2;
const SHAPE_DIM: u32 = 1;
const DIM_VALUE: u32 = 1;
const DIM_PARAM: u32 = 2;

/// The serialized model. The graph is validated first; errors name the node.
pub fn to_onnx(graph: &Graph, opts: &OnnxOptions) -> Result<Vec<u8>> {
    graph.validate()?;
    let input = graph.input.as_ref().expect("validate checks the input");
    let mut b = Builder::new(graph);
    for n in &graph.nodes {
        lower(&mut b, graph, n)?;
    }
    // The model's input and outputs: the graph's, or those of the appended postprocess.
    let (input_info, output_infos) = match &opts.outputs {
        OnnxOutputs::Raw => (
            value_info(input),
            graph.outputs.iter().map(value_info).collect::<Vec<_>>(),
        ),
        OnnxOutputs::Postprocessed {
            conf,
            iou,
            max_det,
            mask_threshold,
        } => {
            let spec = PostprocessSpec {
                conf: *conf,
                iou: *iou,
                max_det: *max_det,
                mask_threshold: *mask_threshold,
            };
            super::postprocess::append(&mut b, graph, &spec)?
        }
    };
    let mut g = Msg::new();
    for n in &b.nodes {
        g.msg(GRAPH_NODE, n);
    }
    g.string(GRAPH_NAME, "edgedistill");
    for (name, w) in &graph.weights {
        let t = match &w.data {
            WeightData::F32(v) => tensor_f32(name, &w.shape, v),
            WeightData::I8(v) => tensor(name, &w.shape, DTYPE_INT8, bytemuck::cast_slice(v)),
        };
        g.msg(GRAPH_INITIALIZER, &t);
    }
    for t in &b.consts {
        g.msg(GRAPH_INITIALIZER, t);
    }
    g.msg(GRAPH_INPUT, &input_info);
    for o in &output_infos {
        g.msg(GRAPH_OUTPUT, o);
    }
    // Fields in field-number order, as protobuf serializers write them (ir_version first).
    let mut m = Msg::new();
    m.uint(MODEL_IR_VERSION, IR_VERSION)
        .string(MODEL_PRODUCER_NAME, "edgedistill")
        .string(MODEL_PRODUCER_VERSION, &opts.producer_version);
    if !opts.doc.is_empty() {
        m.string(MODEL_DOC, &opts.doc);
    }
    m.msg(MODEL_GRAPH, &g);
    let mut opset = Msg::new();
    opset.string(OPSET_DOMAIN, "").uint(OPSET_VERSION, OPSET);
    m.msg(MODEL_OPSET_IMPORT, &opset);
    // protobuf messages are limited to 2 GiB; bigger models need ONNX external data.
    if m.len() > i32::MAX as usize {
        return Err(Error::msg(format!(
            "onnx: model is {} bytes, over protobuf's 2 GiB limit (external data is not supported)",
            m.len()
        )));
    }
    Ok(m.into_bytes())
}

/// [`to_onnx`] into `path`, atomically (a crash leaves no half file).
pub fn write_onnx(path: &Path, graph: &Graph, opts: &OnnxOptions) -> Result<()> {
    let bytes = to_onnx(graph, opts)?;
    crate::io::atomic::write_atomic(path, |w| {
        w.write_all(&bytes).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })
    })
}

/// Nodes and extra constants as they are emitted, plus the names in use so the ones we
/// make up (`{node}/sigmoid`, `{node}/anchors`) never clash with the graph's.
pub(super) struct Builder {
    nodes: Vec<Msg>,
    consts: Vec<Msg>,
    node_names: HashSet<String>,
    values: HashSet<String>,
}

/// `base`, or `base_1`, `base_2`, … whichever is free; marks it used.
fn unique(used: &mut HashSet<String>, base: &str) -> String {
    let mut name = base.to_string();
    let mut i = 0;
    while !used.insert(name.clone()) {
        i += 1;
        name = format!("{base}_{i}");
    }
    name
}

impl Builder {
    fn new(g: &Graph) -> Self {
        let mut values: HashSet<String> = g.weights.iter().map(|(n, _)| n.clone()).collect();
        values.extend(g.input.iter().map(|v| v.name.clone()));
        values.extend(g.nodes.iter().flat_map(|n| n.outputs.iter().cloned()));
        Builder {
            nodes: Vec::new(),
            consts: Vec::new(),
            // Reserved up front so the graph's names survive and ours move aside.
            node_names: g.nodes.iter().map(|n| n.name.clone()).collect(),
            values,
        }
    }

    /// A fresh intermediate value name.
    pub(super) fn tmp(&mut self, base: &str) -> String {
        unique(&mut self.values, base)
    }

    /// A node we made up: `name` made unique.
    pub(super) fn node(
        &mut self,
        op: &str,
        name: &str,
        inputs: &[&str],
        outputs: &[&str],
        attrs: &[Msg],
    ) {
        let name = unique(&mut self.node_names, name);
        self.emit(op, &name, inputs, outputs, attrs);
    }

    /// The node standing for graph node `n`: keeps its (unique, reserved) name.
    fn own(&mut self, op: &str, n: &Node, inputs: &[&str], outputs: &[&str], attrs: &[Msg]) {
        self.emit(op, &n.name, inputs, outputs, attrs);
    }

    fn emit(&mut self, op: &str, name: &str, inputs: &[&str], outputs: &[&str], attrs: &[Msg]) {
        let mut m = Msg::new();
        inputs.iter().for_each(|i| {
            m.string(NODE_INPUT, i);
        });
        outputs.iter().for_each(|o| {
            m.string(NODE_OUTPUT, o);
        });
        m.string(NODE_NAME, name);
        m.string(NODE_OP_TYPE, op);
        attrs.iter().for_each(|a| {
            m.msg(NODE_ATTRIBUTE, a);
        });
        self.nodes.push(m);
    }

    /// A node with one output, a fresh value named like the node; returns that value.
    pub(super) fn node1(&mut self, op: &str, name: &str, inputs: &[&str], attrs: &[Msg]) -> String {
        let out = self.tmp(name);
        self.node(op, name, inputs, &[&out], attrs);
        out
    }

    pub(super) fn const_f32(&mut self, base: &str, dims: &[usize], data: &[f32]) -> String {
        let name = self.tmp(base);
        self.consts.push(tensor_f32(&name, dims, data));
        name
    }

    fn const_i8(&mut self, base: &str, dims: &[usize], data: &[i8]) -> String {
        let name = self.tmp(base);
        self.consts
            .push(tensor(&name, dims, DTYPE_INT8, bytemuck::cast_slice(data)));
        name
    }

    pub(super) fn const_i64(&mut self, base: &str, data: &[i64]) -> String {
        self.const_i64_dims(base, &[data.len()], data)
    }

    /// An INT64 constant of shape `dims` (`&[]`: a scalar).
    pub(super) fn const_i64_dims(&mut self, base: &str, dims: &[usize], data: &[i64]) -> String {
        let name = self.tmp(base);
        let raw: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.consts.push(tensor(&name, dims, DTYPE_INT64, &raw));
        name
    }

    /// Claim `name` exactly (a model output's name): false when it is already in use.
    pub(super) fn claim(&mut self, name: &str) -> bool {
        self.values.insert(name.to_string())
    }
}

fn tensor(name: &str, dims: &[usize], dtype: u64, raw: &[u8]) -> Msg {
    let dims: Vec<i64> = dims.iter().map(|&d| d as i64).collect();
    let mut m = Msg::new();
    m.packed_i64(TENSOR_DIMS, &dims)
        .uint(TENSOR_DATA_TYPE, dtype)
        .string(TENSOR_NAME, name)
        .bytes(TENSOR_RAW_DATA, raw);
    m
}

/// FLOAT tensor with `raw_data` (ONNX stores it little-endian whatever the host is).
fn tensor_f32(name: &str, dims: &[usize], data: &[f32]) -> Msg {
    let raw: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
    tensor(name, dims, DTYPE_FLOAT, &raw)
}

/// FLOAT tensor type with dim 0 symbolic (`batch`) and the rest fixed.
fn value_info(v: &ValueInfo) -> Msg {
    let dims: Vec<Dim> = v
        .shape
        .iter()
        .enumerate()
        .map(|(i, &d)| {
            if i == 0 {
                Dim::Param("batch")
            } else {
                Dim::Fixed(d)
            }
        })
        .collect();
    typed_value_info(&v.name, DTYPE_FLOAT, &dims)
}

/// One dimension of a declared graph input or output.
#[derive(Clone, Copy, Debug)]
pub(super) enum Dim<'a> {
    Fixed(usize),
    /// A symbolic dimension (`dim_param`).
    Param(&'a str),
}

/// A tensor `ValueInfoProto`: element type `elem` (a `DTYPE_*`) and shape `dims`.
pub(super) fn typed_value_info(name: &str, elem: u64, dims: &[Dim]) -> Msg {
    let mut shape = Msg::new();
    for d in dims {
        let mut dim = Msg::new();
        match *d {
            Dim::Fixed(v) => dim.uint(DIM_VALUE, v as u64),
            Dim::Param(p) => dim.string(DIM_PARAM, p),
        };
        shape.msg(SHAPE_DIM, &dim);
    }
    let mut tt = Msg::new();
    tt.uint(TYPE_TENSOR_ELEM, elem)
        .msg(TYPE_TENSOR_SHAPE, &shape);
    let mut ty = Msg::new();
    ty.msg(TYPE_TENSOR, &tt);
    let mut m = Msg::new();
    m.string(VALUE_NAME, name).msg(VALUE_TYPE, &ty);
    m
}

fn attr(name: &str, ty: u64) -> Msg {
    let mut m = Msg::new();
    m.string(ATTR_NAME, name).uint(ATTR_TYPE, ty);
    m
}

pub(super) fn a_int(name: &str, v: i64) -> Msg {
    let mut m = attr(name, ATTR_TYPE_INT);
    m.int(ATTR_I, v);
    m
}

pub(super) fn a_ints(name: &str, vs: &[usize]) -> Msg {
    let vs: Vec<i64> = vs.iter().map(|&v| v as i64).collect();
    let mut m = attr(name, ATTR_TYPE_INTS);
    m.packed_i64(ATTR_INTS, &vs);
    m
}

pub(super) fn a_str(name: &str, s: &str) -> Msg {
    let mut m = attr(name, ATTR_TYPE_STRING);
    m.bytes(ATTR_S, s.as_bytes());
    m
}

fn bad(n: &Node, msg: impl std::fmt::Display) -> Error {
    Error::msg(format!("onnx: node {:?} ({}): {msg}", n.name, n.op.kind()))
}

/// ONNX Conv (+ Sigmoid, Mul for SiLU) for node `n` with inputs `ins` (x, weight,
/// bias?); the kernel shape comes from the graph weight `n.inputs[1]`.
#[allow(clippy::too_many_arguments)]
fn conv(
    b: &mut Builder,
    g: &Graph,
    n: &Node,
    ins: &[&str],
    stride: [usize; 2],
    pad: [usize; 2],
    dilation: [usize; 2],
    groups: usize,
    act: Act,
) -> Result<()> {
    let name = n.name.as_str();
    let outs: Vec<&str> = n.outputs.iter().map(String::as_str).collect();
    let w = g
        .weight(&n.inputs[1])
        .ok_or_else(|| bad(n, format!("weight {:?} is not a constant", n.inputs[1])))?;
    if w.shape.len() != 4 {
        return Err(bad(n, format!("weight shape {:?} is not 4-D", w.shape)));
    }
    let attrs = [
        a_ints("kernel_shape", &w.shape[2..]),
        a_ints("strides", &stride),
        a_ints("pads", &[pad[0], pad[1], pad[0], pad[1]]),
        a_ints("dilations", &dilation),
        a_int("group", groups as i64),
    ];
    match act {
        Act::None => b.own("Conv", n, ins, &outs, &attrs),
        Act::Silu => {
            // SiLU = x·sigmoid(x) in opset-17 ops (ONNX has no SiLU op there).
            let y = b.tmp(&format!("{name}/conv"));
            b.own("Conv", n, ins, &[&y], &attrs);
            let s = b.node1("Sigmoid", &format!("{name}/sigmoid"), &[&y], &[]);
            b.node("Mul", &format!("{name}/silu"), &[&y, &s], &outs, &[]);
        }
    }
    Ok(())
}

/// Emit the ONNX node(s) for one graph node; its outputs keep their names.
fn lower(b: &mut Builder, g: &Graph, n: &Node) -> Result<()> {
    let ins: Vec<&str> = n.inputs.iter().map(String::as_str).collect();
    let outs: Vec<&str> = n.outputs.iter().map(String::as_str).collect();
    let name = n.name.as_str();
    match &n.op {
        Op::Conv {
            stride,
            pad,
            dilation,
            groups,
            act,
        } => conv(b, g, n, &ins, *stride, *pad, *dilation, *groups, *act)?,
        Op::QConv {
            stride,
            pad,
            dilation,
            groups,
            act,
            in_scale,
        } => {
            // QDQ: x → QuantizeLinear → DequantizeLinear; weight (int8 initializer) →
            // DequantizeLinear per output channel (axis 0); then the float Conv. Zero
            // points are int8 zeros, so the quantized type is int8 as in the engine.
            let o = g
                .weight(&n.inputs[1])
                .map_or(0, |w| w.shape.first().copied().unwrap_or(0));
            let sx = b.const_f32(&format!("{name}/x_scale"), &[], &[*in_scale]);
            let zx = b.const_i8(&format!("{name}/x_zero_point"), &[], &[0]);
            let xq = b.node1(
                "QuantizeLinear",
                &format!("{name}/x_quant"),
                &[ins[0], &sx, &zx],
                &[],
            );
            let xd = b.node1(
                "DequantizeLinear",
                &format!("{name}/x_dequant"),
                &[&xq, &sx, &zx],
                &[],
            );
            let zw = b.const_i8(&format!("{name}/w_zero_point"), &[o], &vec![0; o]);
            let wd = b.node1(
                "DequantizeLinear",
                &format!("{name}/w_dequant"),
                &[ins[1], ins[2], &zw],
                &[a_int("axis", 0)],
            );
            let mut cins = vec![xd.as_str(), wd.as_str()];
            cins.extend(ins.get(3).copied());
            conv(b, g, n, &cins, *stride, *pad, *dilation, *groups, *act)?;
        }
        Op::DepthToSpace { block } => {
            let attrs = [a_int("blocksize", *block as i64), a_str("mode", "CRD")];
            b.own("DepthToSpace", n, &ins, &outs, &attrs);
        }
        Op::MaxPool {
            kernel,
            stride,
            pad,
        } => {
            let attrs = [
                a_ints("kernel_shape", &[*kernel; 2]),
                a_ints("strides", &[*stride; 2]),
                a_ints("pads", &[*pad; 4]),
            ];
            b.own("MaxPool", n, &ins, &outs, &attrs);
        }
        Op::Upsample { scale } => {
            // nearest + asymmetric + floor is torch's nearest for integer factors.
            let s = *scale as f32;
            let scales = b.const_f32(&format!("{name}/scales"), &[4], &[1.0, 1.0, s, s]);
            let attrs = [
                a_str("mode", "nearest"),
                a_str("coordinate_transformation_mode", "asymmetric"),
                a_str("nearest_mode", "floor"),
            ];
            // Inputs X, roi (absent: empty name), scales.
            b.own("Resize", n, &[ins[0], "", &scales], &outs, &attrs);
        }
        Op::Concat { axis } => b.own("Concat", n, &ins, &outs, &[a_int("axis", *axis as i64)]),
        Op::Split { axis, sizes } => {
            let sizes: Vec<i64> = sizes.iter().map(|&s| s as i64).collect();
            let split = b.const_i64(&format!("{name}/split"), &sizes);
            let attrs = [a_int("axis", *axis as i64)];
            b.own("Split", n, &[ins[0], &split], &outs, &attrs);
        }
        Op::Add => b.own("Add", n, &ins, &outs, &[]),
        Op::Sigmoid => b.own("Sigmoid", n, &ins, &outs, &[]),
        Op::Reshape { shape } => {
            let s = b.const_i64(&format!("{name}/shape"), shape);
            b.own("Reshape", n, &[ins[0], &s], &outs, &[]);
        }
        Op::DecodeBoxes { reg_max, levels } => {
            decode_boxes(b, n, *reg_max, levels).map_err(|e| bad(n, e))?;
        }
    }
    Ok(())
}

/// ultralytics `Detect._inference` box part in primitive ops: DFL expectation over the
/// `reg_max` bins, then `dist2bbox(xywh)` around the anchors, times the strides.
fn decode_boxes(b: &mut Builder, n: &Node, reg_max: usize, levels: &[Level]) -> Result<()> {
    let (name, x) = (n.name.as_str(), n.inputs[0].as_str());
    if reg_max == 0 || levels.is_empty() {
        return Err(Error::msg("reg_max 0 or no levels"));
    }
    let a: usize = levels.iter().map(|l| l.h * l.w).sum();
    let p = |s: &str| format!("{name}/{s}");
    // [N, 4r, A] → [N, 4, r, A] → softmax over r → Σ p·bin → [N, 4, A]
    let dist = if reg_max > 1 {
        let r = reg_max;
        let shape = b.const_i64(&p("dfl_shape"), &[0, 4, r as i64, a as i64]);
        let v = b.node1("Reshape", &p("dfl_view"), &[x, &shape], &[]);
        let sm = b.node1("Softmax", &p("dfl_softmax"), &[&v], &[a_int("axis", 2)]);
        let bins: Vec<f32> = (0..r).map(|i| i as f32).collect();
        let bins = b.const_f32(&p("dfl_bins"), &[1, 1, r, 1], &bins);
        let wsum = b.node1("Mul", &p("dfl_weighted"), &[&sm, &bins], &[]);
        let axes = b.const_i64(&p("dfl_axes"), &[2]);
        b.node1(
            "ReduceSum",
            &p("dfl"),
            &[&wsum, &axes],
            &[a_int("keepdims", 0)],
        )
    } else {
        x.to_string()
    };
    let axis1 = b.const_i64(&p("slice_axes"), &[1]);
    let (s0, s2, s4) = (
        b.const_i64(&p("slice_0"), &[0]),
        b.const_i64(&p("slice_2"), &[2]),
        b.const_i64(&p("slice_4"), &[4]),
    );
    let lt = b.node1("Slice", &p("lt"), &[&dist, &s0, &s2, &axis1], &[]);
    let rb = b.node1("Slice", &p("rb"), &[&dist, &s2, &s4, &axis1], &[]);
    // Anchors [1, 2, A]: row 0 the x centres, row 1 the y centres; strides [1, 1, A].
    let (mut ax, mut ay, mut st) = (Vec::new(), Vec::new(), Vec::new());
    for l in levels {
        for y in 0..l.h {
            for xx in 0..l.w {
                ax.push(xx as f32 + 0.5);
                ay.push(y as f32 + 0.5);
                st.push(l.stride);
            }
        }
    }
    ax.extend(ay);
    let anchors = b.const_f32(&p("anchors"), &[1, 2, a], &ax);
    let strides = b.const_f32(&p("strides"), &[1, 1, a], &st);
    let half = b.const_f32(&p("half"), &[1], &[0.5]);
    let x1y1 = b.node1("Sub", &p("x1y1"), &[&anchors, &lt], &[]);
    let x2y2 = b.node1("Add", &p("x2y2"), &[&anchors, &rb], &[]);
    let sum = b.node1("Add", &p("c2"), &[&x1y1, &x2y2], &[]);
    // × 0.5 rather than ÷ 2, as our decode (dist2bbox) does.
    let c = b.node1("Mul", &p("c"), &[&sum, &half], &[]);
    let wh = b.node1("Sub", &p("wh"), &[&x2y2, &x1y1], &[]);
    let xywh = b.node1("Concat", &p("xywh"), &[&c, &wh], &[a_int("axis", 1)]);
    // The last node carries the graph node's name and output.
    b.own("Mul", n, &[&xywh, &strides], &[&n.outputs[0]], &[]);
    Ok(())
}
