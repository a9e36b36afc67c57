//! The graph executor on CPU: nodes run in order over f32 NCHW tensors, weights are read
//! in place from whatever holds them (the in-memory graph, or the engine file's memory
//! map — no copy), and each value is dropped after its last reader. Convolutions call the
//! backend kernel directly, the rest reuse the tensor ops. With `ExecOptions::EXACT`
//! results equal `YoloModel::forward_eval` of the fused model bit for bit; the default
//! (`FAST`) computes the f32 3×3 stride-1 convolutions by Winograd F(4×4, 3×3), which
//! rounds differently (about 1e-5 relative) and needs a quarter of the multiplies.
use super::graph::{Act, Graph, Node, Op};
use crate::backend::cpu::conv::{ConvGeom, conv2d_forward};
use crate::backend::cpu::conv_winograd::{self, WinogradWeights};
use crate::backend::cpu::int8_gemm::Activation;
use crate::backend::cpu::qconv::{QConvWeights, qconv2d_forward, qconv2d_forward_packed};
use crate::models::yolov8::head::decode_boxes;
use crate::{Error, Result, Tensor};
use std::collections::HashMap;

/// Where a graph's constants live.
pub trait Weights {
    /// Whether `name` is a constant (of any dtype).
    fn has(&self, name: &str) -> bool;
    /// Shape and values of f32 constant `name`.
    fn get(&self, name: &str) -> Option<(&[usize], &[f32])>;
    /// Shape and values of i8 constant `name`.
    fn get_i8(&self, name: &str) -> Option<(&[usize], &[i8])>;
    /// Where packed INT8 conv weights are kept between runs, keyed by the i8 weight's
    /// name (None: pack inside every call, as the in-memory graph does).
    fn qconv_cache(&self) -> Option<&QConvCache> {
        None
    }
    /// Where Winograd-transformed f32 conv weights are kept between runs, keyed by the
    /// weight's name (None: transform inside every call).
    fn winograd_cache(&self) -> Option<&WinogradCache> {
        None
    }
}

/// INT8 conv weights in the kernels' layout, packed on a node's first run and reused.
pub type QConvCache = std::sync::Mutex<HashMap<String, std::sync::Arc<QConvWeights>>>;
/// f32 3×3 conv weights transformed for Winograd on a node's first run and reused.
pub type WinogradCache = std::sync::Mutex<HashMap<String, std::sync::Arc<WinogradWeights>>>;

/// Choices of the executor that change results only within rounding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExecOptions {
    /// f32 3×3 stride-1 convolutions by Winograd F(4×4, 3×3) instead of direct sums.
    pub winograd: bool,
}

impl ExecOptions {
    /// Bit for bit with the model's own forward (direct convolution everywhere).
    pub const EXACT: ExecOptions = ExecOptions { winograd: false };
    /// The fastest kernels (the default).
    pub const FAST: ExecOptions = ExecOptions { winograd: true };
}

impl Default for ExecOptions {
    /// `FAST`, or `EXACT` when the environment sets `EDGEDISTILL_WINOGRAD=0`.
    fn default() -> Self {
        match std::env::var("EDGEDISTILL_WINOGRAD").as_deref() {
            Ok("0") => ExecOptions::EXACT,
            _ => ExecOptions::FAST,
        }
    }
}

impl Weights for Graph {
    fn has(&self, name: &str) -> bool {
        self.weight(name).is_some()
    }
    fn get(&self, name: &str) -> Option<(&[usize], &[f32])> {
        let w = self.weight(name)?;
        Some((w.shape.as_slice(), w.as_f32()?))
    }
    fn get_i8(&self, name: &str) -> Option<(&[usize], &[i8])> {
        let w = self.weight(name)?;
        Some((w.shape.as_slice(), w.as_i8()?))
    }
}

/// Run `graph` on `images` (`[N, 3, S, S]` f32, S the captured size) with constants from
/// `weights`; the graph outputs in order.
/// With the default options.
pub fn run(graph: &Graph, weights: &dyn Weights, images: &Tensor) -> Result<Vec<Tensor>> {
    run_with(graph, weights, images, ExecOptions::default())
}

/// [`run`] with chosen options.
pub fn run_with(
    graph: &Graph,
    weights: &dyn Weights,
    images: &Tensor,
    opts: ExecOptions,
) -> Result<Vec<Tensor>> {
    run_observed_with(graph, weights, images, opts, &mut |_, _| Ok(()))
}

/// [`run`], calling `observe(name, value)` with the input and every value a node makes
/// (calibration collects its statistics this way).
pub fn run_observed(
    graph: &Graph,
    weights: &dyn Weights,
    images: &Tensor,
    observe: &mut dyn FnMut(&str, &Tensor) -> Result<()>,
) -> Result<Vec<Tensor>> {
    run_observed_with(graph, weights, images, ExecOptions::default(), observe)
}

/// [`run_observed`] with chosen options.
pub fn run_observed_with(
    graph: &Graph,
    weights: &dyn Weights,
    images: &Tensor,
    opts: ExecOptions,
    observe: &mut dyn FnMut(&str, &Tensor) -> Result<()>,
) -> Result<Vec<Tensor>> {
    let _g = crate::no_grad();
    let input = graph
        .input
        .as_ref()
        .ok_or_else(|| Error::msg("engine: graph has no input"))?;
    let want = &input.shape[1..];
    if images.rank() != input.shape.len() || &images.dims()[1..] != want {
        return Err(Error::Shape {
            op: "engine",
            msg: format!(
                "input {:?} must be [N, {}], got {}",
                input.name,
                want.iter()
                    .map(|d| d.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                images.shape()
            ),
        });
    }
    let last_use = last_uses(graph);
    let mut values: HashMap<&str, Tensor> = HashMap::new();
    values.insert(&input.name, images.contiguous()?);
    observe(&input.name, &values[input.name.as_str()])?;
    for (i, node) in graph.nodes.iter().enumerate() {
        let ins = node
            .inputs
            .iter()
            .filter(|n| !weights.has(n))
            .map(|n| {
                values.get(n.as_str()).cloned().ok_or_else(|| {
                    Error::msg(format!("engine: node {:?} reads missing {n:?}", node.name))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let outs = run_node(node, &ins, weights, opts)
            .map_err(|e| e.context(format!("engine node {:?} ({})", node.name, node.op.kind())))?;
        drop(ins);
        for n in &node.inputs {
            if last_use.get(n.as_str()) == Some(&i) {
                values.remove(n.as_str());
            }
        }
        for (name, t) in node.outputs.iter().zip(outs) {
            observe(name, &t)?;
            values.insert(name, t);
        }
    }
    graph
        .outputs
        .iter()
        .map(|o| {
            values
                .remove(o.name.as_str())
                .ok_or_else(|| Error::msg(format!("engine: output {:?} was not produced", o.name)))
        })
        .collect()
}

/// Index of the last node reading each value (graph outputs are never dropped).
fn last_uses(graph: &Graph) -> HashMap<&str, usize> {
    let mut last = HashMap::new();
    for (i, n) in graph.nodes.iter().enumerate() {
        for v in &n.inputs {
            last.insert(v.as_str(), i);
        }
    }
    for o in &graph.outputs {
        last.insert(o.name.as_str(), usize::MAX);
    }
    last
}

fn weight<'a>(weights: &'a dyn Weights, node: &Node, k: usize) -> Result<(&'a [usize], &'a [f32])> {
    let name = node
        .inputs
        .get(k)
        .ok_or_else(|| Error::msg(format!("input {k} missing")))?;
    weights
        .get(name)
        .ok_or_else(|| Error::msg(format!("{name:?} is not an f32 constant")))
}

fn weight_i8<'a>(
    weights: &'a dyn Weights,
    node: &Node,
    k: usize,
) -> Result<(&'a [usize], &'a [i8])> {
    let name = node
        .inputs
        .get(k)
        .ok_or_else(|| Error::msg(format!("input {k} missing")))?;
    weights
        .get_i8(name)
        .ok_or_else(|| Error::msg(format!("{name:?} is not an i8 constant")))
}

/// `Tensor::cat` for contiguous f32 values, written once (no zero fill first); other
/// dtypes and layouts go to `Tensor::cat`. Same values either way.
fn concat_f32(ins: &[Tensor], axis: usize) -> Result<Tensor> {
    let fast = ins.first().is_some_and(|f| {
        axis < f.rank()
            && ins.iter().all(|t| {
                t.dtype() == crate::DType::F32
                    && t.is_contiguous()
                    && t.rank() == f.rank()
                    && (0..t.rank()).all(|k| k == axis || t.dims()[k] == f.dims()[k])
            })
    });
    if !fast {
        return Tensor::cat(&ins.iter().collect::<Vec<_>>(), axis as isize);
    }
    let dims = ins[0].dims();
    let (outer, inner) = (
        dims[..axis].iter().product::<usize>(),
        dims[axis + 1..].iter().product::<usize>(),
    );
    let mut shape = dims.to_vec();
    shape[axis] = ins.iter().map(|t| t.dims()[axis]).sum();
    let mut v: Vec<f32> = Vec::with_capacity(outer * shape[axis] * inner);
    for o in 0..outer {
        for t in ins {
            let w = t.dims()[axis] * inner;
            t.with_slice(|x: &[f32]| v.extend_from_slice(&x[o * w..][..w]))?;
        }
    }
    Tensor::from_vec(v, shape)
}

/// The transformed weights of a Winograd conv: from the cache when `weights` keeps one.
fn winograd_weights(
    weights: &dyn Weights,
    name: &str,
    w: &[f32],
    g: &ConvGeom,
) -> std::sync::Arc<WinogradWeights> {
    let make = || std::sync::Arc::new(WinogradWeights::new(w, g.o, g.c));
    match weights.winograd_cache() {
        Some(cache) => {
            let mut c = cache.lock().unwrap_or_else(|e| e.into_inner());
            c.entry(name.to_string()).or_insert_with(make).clone()
        }
        None => make(),
    }
}

fn act_code(a: Act) -> Activation {
    match a {
        Act::None => Activation::None,
        Act::Silu => Activation::Silu,
    }
}

fn one(ins: &[Tensor]) -> Result<&Tensor> {
    ins.first().ok_or_else(|| Error::msg("no input value"))
}

fn run_node(
    node: &Node,
    ins: &[Tensor],
    weights: &dyn Weights,
    opts: ExecOptions,
) -> Result<Vec<Tensor>> {
    let y = match &node.op {
        Op::Conv {
            stride,
            pad,
            dilation,
            groups,
            act,
        } => {
            let (ws, w) = weight(weights, node, 1)?;
            let bias = if node.inputs.len() > 2 {
                Some(weight(weights, node, 2)?.1)
            } else {
                None
            };
            let g = conv_geom(
                one(ins)?.dims(),
                ws,
                bias.map(|b| b.len()),
                *stride,
                *pad,
                *dilation,
                *groups,
            )?;
            if opts.winograd && conv_winograd::applies(&g) {
                let ww = winograd_weights(weights, &node.inputs[1], w, &g);
                let silu = *act == Act::Silu;
                let y = one(ins)?
                    .with_slice(|x: &[f32]| conv_winograd::forward(x, &ww, bias, silu, &g))?;
                return Ok(vec![Tensor::from_vec(y, [g.n, g.o, g.ho, g.wo])?]);
            }
            let y = one(ins)?.with_slice(|x: &[f32]| conv2d_forward(x, w, bias, &g))?;
            let y = Tensor::from_vec(y, [g.n, g.o, g.ho, g.wo])?;
            match act {
                Act::Silu => crate::models::yolov8::blocks::silu(y)?,
                Act::None => y,
            }
        }
        Op::QConv {
            stride,
            pad,
            dilation,
            groups,
            act,
            in_scale,
        } => {
            let (ws, w) = weight_i8(weights, node, 1)?;
            let (_, w_scale) = weight(weights, node, 2)?;
            let bias = if node.inputs.len() > 3 {
                Some(weight(weights, node, 3)?.1)
            } else {
                None
            };
            let x = one(ins)?;
            let g = conv_geom(
                x.dims(),
                ws,
                bias.map(|b| b.len()),
                *stride,
                *pad,
                *dilation,
                *groups,
            )?;
            if w_scale.len() != g.o || !(in_scale.is_finite() && *in_scale > 0.0) {
                return Err(Error::msg(format!(
                    "{} weight scales for {} channels, input scale {in_scale}",
                    w_scale.len(),
                    g.o
                )));
            }
            let y = match weights.qconv_cache() {
                Some(cache) => {
                    let name = &node.inputs[1];
                    let packed = {
                        let mut c = cache.lock().unwrap_or_else(|e| e.into_inner());
                        c.entry(name.clone())
                            .or_insert_with(|| {
                                let s = [ws[0], ws[1], ws[2], ws[3]];
                                QConvWeights::pack(w, w_scale, bias, s, *groups).into()
                            })
                            .clone()
                    };
                    x.with_slice(|x: &[f32]| {
                        qconv2d_forward_packed(x, *in_scale, &packed, act_code(*act), &g)
                    })?
                }
                None => x.with_slice(|x: &[f32]| {
                    qconv2d_forward(x, *in_scale, w, w_scale, bias, act_code(*act), &g)
                })?,
            };
            Tensor::from_vec(y, [g.n, g.o, g.ho, g.wo])?
        }
        Op::DepthToSpace { block } => {
            let x = one(ins)?;
            let d = x.dims();
            let k = *block;
            if d.len() != 4 || k == 0 || d[1] % (k * k) != 0 {
                return Err(Error::msg(format!("DepthToSpace {k} of {}", x.shape())));
            }
            let c = d[1] / (k * k);
            let v = x.with_slice(|s: &[f32]| {
                crate::models::yolov8::proto::depth_to_space(s, d[0] * c, k, d[2], d[3])
            })?;
            Tensor::from_vec(v, [d[0], c, d[2] * k, d[3] * k])?
        }
        Op::MaxPool {
            kernel,
            stride,
            pad,
        } => one(ins)?.max_pool2d((*kernel, *kernel), (*stride, *stride), (*pad, *pad))?,
        Op::Upsample { scale } => {
            let x = one(ins)?;
            if x.rank() != 4 {
                return Err(Error::msg(format!("Upsample of {}", x.shape())));
            }
            x.upsample_nearest2d((x.dims()[2] * scale, x.dims()[3] * scale))?
        }
        Op::Concat { axis } => concat_f32(ins, *axis)?,
        Op::Split { axis, sizes } => {
            let x = one(ins)?;
            if *axis >= x.rank() || sizes.iter().sum::<usize>() != x.dims()[*axis] {
                return Err(Error::msg(format!(
                    "Split {sizes:?} on axis {axis} of {}",
                    x.shape()
                )));
            }
            let mut start = 0;
            let mut outs = Vec::with_capacity(sizes.len());
            for &s in sizes {
                outs.push(x.narrow(*axis as isize, start, s)?.contiguous()?);
                start += s;
            }
            return Ok(outs);
        }
        Op::Add => {
            let (a, b) = (
                one(ins)?,
                ins.get(1).ok_or_else(|| Error::msg("Add needs 2 inputs"))?,
            );
            if a.dims() != b.dims() {
                return Err(Error::msg(format!(
                    "Add of {} and {}",
                    a.shape(),
                    b.shape()
                )));
            }
            a.add(b)?
        }
        Op::Sigmoid => crate::models::yolov8::blocks::sigmoid(one(ins)?)?,
        Op::Reshape { shape } => {
            let x = one(ins)?;
            x.reshape(resolve_shape(x.dims(), shape)?)?
        }
        Op::DecodeBoxes { reg_max, levels } => {
            let x = one(ins)?;
            let a: usize = levels.iter().map(|l| l.h * l.w).sum();
            if x.rank() != 3 || x.dims()[1] != 4 * reg_max || x.dims()[2] != a || *reg_max == 0 {
                return Err(Error::msg(format!(
                    "DecodeBoxes reg_max {reg_max} over {a} anchors of {}",
                    x.shape()
                )));
            }
            let sizes: Vec<(usize, usize)> = levels.iter().map(|l| (l.h, l.w)).collect();
            let strides: Vec<f32> = levels.iter().map(|l| l.stride).collect();
            decode_boxes(x, *reg_max, &sizes, &strides)?
        }
    };
    Ok(vec![y])
}

/// The geometry of a conv of an input of dims `d` with weight shape `ws`, checked (the
/// CPU and CUDA executors share it).
pub(crate) fn conv_geom(
    d: &[usize],
    ws: &[usize],
    bias: Option<usize>,
    stride: [usize; 2],
    pad: [usize; 2],
    dil: [usize; 2],
    groups: usize,
) -> Result<ConvGeom> {
    let bad = || Error::msg(format!("Conv of {d:?} with weight {ws:?} groups {groups}"));
    if d.len() != 4 || ws.len() != 4 || groups == 0 || stride.contains(&0) || dil.contains(&0) {
        return Err(bad());
    }
    let (o, cg, kh, kw) = (ws[0], ws[1], ws[2], ws[3]);
    if cg * groups != d[1] || o % groups != 0 || bias.is_some_and(|b| b != o) {
        return Err(bad());
    }
    let span = |i: usize, k: usize, s: usize, p: usize, dl: usize| -> Option<usize> {
        let eff = dl * (k.checked_sub(1)?) + 1;
        (i + 2 * p).checked_sub(eff).map(|v| v / s + 1)
    };
    let ho = span(d[2], kh, stride[0], pad[0], dil[0]).ok_or_else(bad)?;
    let wo = span(d[3], kw, stride[1], pad[1], dil[1]).ok_or_else(bad)?;
    Ok(ConvGeom {
        n: d[0],
        c: d[1],
        h: d[2],
        w: d[3],
        o,
        kh,
        kw,
        stride: (stride[0], stride[1]),
        pad: (pad[0], pad[1]),
        dil: (dil[0], dil[1]),
        groups,
        ho,
        wo,
    })
}

/// ONNX Reshape: 0 copies the input's dim at that position, −1 takes what is left.
fn resolve_shape(dims: &[usize], shape: &[i64]) -> Result<Vec<usize>> {
    let total: usize = dims.iter().product();
    let mut out = Vec::with_capacity(shape.len());
    let mut infer = None;
    for (i, &s) in shape.iter().enumerate() {
        match s {
            0 => out.push(
                *dims
                    .get(i)
                    .ok_or_else(|| Error::msg("Reshape: 0 past the input rank"))?,
            ),
            -1 if infer.is_none() => {
                infer = Some(i);
                out.push(1);
            }
            s if s > 0 => out.push(s as usize),
            _ => return Err(Error::msg(format!("Reshape: bad target {shape:?}"))),
        }
    }
    let known: usize = out.iter().product();
    if let Some(i) = infer {
        if known == 0 || !total.is_multiple_of(known) {
            return Err(Error::msg(format!("Reshape {dims:?} to {shape:?}")));
        }
        out[i] = total / known;
    }
    if out.iter().product::<usize>() != total {
        return Err(Error::msg(format!("Reshape {dims:?} to {shape:?}")));
    }
    Ok(out)
}
