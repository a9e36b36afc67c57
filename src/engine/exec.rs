//! The graph executor on CPU: nodes run in order over f32 NCHW tensors, weights are read
//! in place from whatever holds them (the in-memory graph, or the engine file's memory
//! map — no copy), and each value is dropped after its last reader. Convolutions call the
//! backend kernel directly, the rest reuse the tensor ops, so results equal
//! `YoloModel::forward_eval` of the fused model bit for bit.
use super::graph::{Act, Graph, Node, Op};
use crate::backend::cpu::conv::{ConvGeom, conv2d_forward};
use crate::models::yolov8::head::decode_boxes;
use crate::{Error, Result, Tensor};
use std::collections::HashMap;

/// Where a graph's constants live.
pub trait Weights {
    /// Shape and f32 values of constant `name`, or None when there is no such constant.
    fn get(&self, name: &str) -> Option<(&[usize], &[f32])>;
}

impl Weights for Graph {
    fn get(&self, name: &str) -> Option<(&[usize], &[f32])> {
        self.weight(name)
            .map(|w| (w.shape.as_slice(), w.data.as_slice()))
    }
}

/// Run `graph` on `images` (`[N, 3, S, S]` f32, S the captured size) with constants from
/// `weights`; the graph outputs in order.
pub fn run(graph: &Graph, weights: &dyn Weights, images: &Tensor) -> Result<Vec<Tensor>> {
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
    for (i, node) in graph.nodes.iter().enumerate() {
        let ins = node
            .inputs
            .iter()
            .filter(|n| weights.get(n).is_none())
            .map(|n| {
                values.get(n.as_str()).cloned().ok_or_else(|| {
                    Error::msg(format!("engine: node {:?} reads missing {n:?}", node.name))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let outs = run_node(node, &ins, weights)
            .map_err(|e| e.context(format!("engine node {:?} ({})", node.name, node.op.kind())))?;
        drop(ins);
        for n in &node.inputs {
            if last_use.get(n.as_str()) == Some(&i) {
                values.remove(n.as_str());
            }
        }
        for (name, t) in node.outputs.iter().zip(outs) {
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
        .ok_or_else(|| Error::msg(format!("{name:?} is not a constant")))
}

fn one(ins: &[Tensor]) -> Result<&Tensor> {
    ins.first().ok_or_else(|| Error::msg("no input value"))
}

fn run_node(node: &Node, ins: &[Tensor], weights: &dyn Weights) -> Result<Vec<Tensor>> {
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
                one(ins)?,
                ws,
                bias.map(|b| b.len()),
                *stride,
                *pad,
                *dilation,
                *groups,
            )?;
            let y = one(ins)?.with_slice(|x: &[f32]| conv2d_forward(x, w, bias, &g))?;
            let y = Tensor::from_vec(y, [g.n, g.o, g.ho, g.wo])?;
            match act {
                Act::Silu => crate::models::yolov8::blocks::silu(y)?,
                Act::None => y,
            }
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
        Op::Concat { axis } => Tensor::cat(&ins.iter().collect::<Vec<_>>(), *axis as isize)?,
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
        Op::Sigmoid => one(ins)?.sigmoid()?,
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

fn conv_geom(
    x: &Tensor,
    ws: &[usize],
    bias: Option<usize>,
    stride: [usize; 2],
    pad: [usize; 2],
    dil: [usize; 2],
    groups: usize,
) -> Result<ConvGeom> {
    let d = x.dims();
    let bad = || {
        Error::msg(format!(
            "Conv of {} with weight {ws:?} groups {groups}",
            x.shape()
        ))
    };
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
        if known == 0 || total % known != 0 {
            return Err(Error::msg(format!("Reshape {dims:?} to {shape:?}")));
        }
        out[i] = total / known;
    }
    if out.iter().product::<usize>() != total {
        return Err(Error::msg(format!("Reshape {dims:?} to {shape:?}")));
    }
    Ok(out)
}
