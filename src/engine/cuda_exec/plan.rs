//! Planning the CUDA engine: shapes, buffers, uploads and the list of launches.
use super::dev_err;
use super::homes::{Dt, plan_homes, value_dtypes};
use crate::backend::cpu::conv::ConvGeom;
use crate::backend::cuda::CudaDevice;
use crate::backend::cuda::engine_ops::{ConvLaunch, EngineKernels, split_k_parts};
use crate::engine::exec::Weights;
use crate::engine::graph::{Act, Graph, Op};
use crate::engine::shapes::infer_shapes;
use crate::models::yolov8::anchors::anchor_columns;
use crate::{Error, Result};
use cudarc::driver::{CudaSlice, CudaStream, DevicePtr};
use std::collections::HashMap;
use std::sync::Arc;

/// A value on the device: its buffer's address, shape (with the batch) and type.
#[derive(Clone, Debug)]
struct Val {
    ptr: u64,
    shape: Vec<usize>,
    dt: Dt,
}

impl Val {
    fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// One kernel launch with everything it needs.
pub(super) enum Step {
    Cast {
        x: u64,
        y: u64,
        n: usize,
    },
    /// f16 → s8 with a QConv's input scale.
    Quantize {
        x: u64,
        y: u64,
        n: usize,
        scale: f32,
    },
    /// A conv, f16 or INT8 (on the s8 copy of its input).
    Conv(ConvLaunch),
    MaxPool {
        x: u64,
        y: u64,
        nc: usize,
        hw: (usize, usize),
        ohw: (usize, usize),
        k: usize,
        s: usize,
        p: usize,
    },
    Spread {
        x: u64,
        y: u64,
        nc: usize,
        hw: (usize, usize),
        f: usize,
        block: bool,
    },
    Elem {
        a: u64,
        b: Option<u64>,
        y: u64,
        n: usize,
    },
    Copy {
        src: (u64, bool),
        dst: (u64, bool),
        outer: usize,
        chunk: usize,
        src_so: (usize, usize),
        dst_so: (usize, usize),
    },
    Decode {
        x: u64,
        anchors: u64,
        y: u64,
        n: usize,
        r: usize,
        a: usize,
    },
}

impl Step {
    pub(super) fn describe(&self) -> String {
        let conv = |c: &ConvLaunch| {
            let d = &c.geom;
            format!(
                "{}conv {}x{}x{}x{} -> {} k{}x{} s{} /{}",
                if c.int8_scale.is_some() { "q" } else { "" },
                d.n,
                d.c,
                d.h,
                d.w,
                d.o,
                d.kh,
                d.kw,
                d.stride.0,
                c.parts
            )
        };
        match self {
            Step::Cast { n, .. } => format!("cast {n}"),
            Step::Quantize { n, .. } => format!("quantize {n}"),
            Step::Conv(c) => conv(c),
            Step::MaxPool { nc, hw, k, .. } => format!("maxpool {nc}x{}x{} k{k}", hw.0, hw.1),
            Step::Spread {
                nc, hw, f, block, ..
            } => format!(
                "{} {nc}x{}x{} x{f}",
                if *block { "depth2space" } else { "upsample" },
                hw.0,
                hw.1
            ),
            Step::Elem { b, n, .. } => {
                format!("{} {n}", if b.is_some() { "add" } else { "sigmoid" })
            }
            Step::Copy { outer, chunk, .. } => format!("copy {outer}x{chunk}"),
            Step::Decode { n, r, a, .. } => format!("decode {n}x{r}x{a}"),
        }
    }
}

struct Planner<'a> {
    stream: &'a Arc<CudaStream>,
    bufs: Vec<CudaSlice<u8>>,
    /// Multiprocessors of the GPU (how many blocks fill it).
    sms: usize,
    /// K per conv block step, f16 and INT8 (split-K shares are whole steps).
    k_step: (usize, usize),
    /// Bytes the largest split conv needs for its shares.
    workspace: usize,
    /// Values that live inside a concat's output (see `plan_homes`).
    homes: HashMap<String, (String, usize)>,
    /// Every value's shape (with the batch) and type, and where each placed one is.
    shapes: HashMap<String, Vec<usize>>,
    dts: HashMap<String, Dt>,
    placed: HashMap<String, u64>,
    /// s8 copies of QConv inputs, by (value, scale bits): made once, read by every QConv
    /// of that value.
    quantized: HashMap<(String, u32), u64>,
}

impl Planner<'_> {
    fn alloc(&mut self, bytes: usize) -> Result<(usize, u64)> {
        let b = self
            .stream
            .alloc_zeros::<u8>(bytes.max(4))
            .map_err(dev_err)?;
        Ok(self.push(b))
    }
    fn upload(&mut self, bytes: &[u8]) -> Result<u64> {
        let b = self.stream.clone_htod(bytes).map_err(dev_err)?;
        Ok(self.push(b).1)
    }
    fn push(&mut self, b: CudaSlice<u8>) -> (usize, u64) {
        let ptr = {
            let (p, _sync) = b.device_ptr(self.stream);
            p
        };
        self.bufs.push(b);
        (self.bufs.len() - 1, ptr)
    }
    /// What every conv shares: its geometry (checked), its bias uploaded (0 for none) and
    /// its output placed and checked against the geometry.
    fn conv_out(
        &mut self,
        x: &Val,
        ws: &[usize],
        bias: Option<&[f32]>,
        params: ([usize; 2], [usize; 2], [usize; 2], usize),
        name: &str,
    ) -> Result<(ConvGeom, u64, Val)> {
        let geom = conv_geom(x, ws, bias.map(|b| b.len()), params)?;
        let bias = match bias {
            Some(b) => self.upload(bytemuck::cast_slice(b))?,
            None => 0,
        };
        let y = self.value(name, Dt::F16)?;
        check_out(&geom, &y)?;
        Ok((geom, bias, y))
    }

    /// Split-K shares for a conv (K steps of `k_step`), growing the workspace to fit.
    fn split(&mut self, d: &ConvGeom, k_step: usize) -> usize {
        let parts = split_k_parts(d, k_step, self.sms);
        if parts > 1 {
            self.workspace = self.workspace.max(parts * d.o * d.n * d.ho * d.wo * 4);
        }
        parts
    }

    /// Where value `name` lives: its slice of the concat output it is homed in, else a
    /// buffer of its own (allocated on first use).
    fn locate(&mut self, name: &str) -> Result<u64> {
        if let Some(&p) = self.placed.get(name) {
            return Ok(p);
        }
        let dt = *self
            .dts
            .get(name)
            .ok_or_else(|| Error::msg(format!("no type for {name:?}")))?;
        let ptr = match self.homes.get(name).cloned() {
            Some((host, off)) => self.locate(&host)? + (off * dt.size()) as u64,
            None => {
                let n: usize = self.shape(name)?.iter().product();
                self.alloc(n * dt.size())?.1
            }
        };
        self.placed.insert(name.to_string(), ptr);
        Ok(ptr)
    }

    /// Value `name`'s shape, with the batch.
    fn shape(&self, name: &str) -> Result<Vec<usize>> {
        self.shapes
            .get(name)
            .cloned()
            .ok_or_else(|| Error::msg(format!("no shape for {name:?}")))
    }

    /// The value a node writes as `name`.
    fn value(&mut self, name: &str, dt: Dt) -> Result<Val> {
        if self.dts.get(name) != Some(&dt) {
            return Err(Error::msg(format!("{name:?}: planned type differs")));
        }
        let shape = self.shape(name)?;
        let ptr = self.locate(name)?;
        Ok(Val { ptr, shape, dt })
    }
}

fn f16_bits(v: &[f32]) -> Vec<u8> {
    let h: Vec<u16> = v
        .iter()
        .map(|&x| half::f16::from_f32(x).to_bits())
        .collect();
    bytemuck::cast_slice(&h).to_vec()
}

fn act_code(a: Act) -> i32 {
    match a {
        Act::None => 0,
        Act::Silu => 1,
    }
}

fn with_batch(shape: &[usize], batch: usize) -> Vec<usize> {
    let mut s = shape.to_vec();
    if let Some(d) = s.first_mut() {
        *d *= batch;
    }
    s
}

/// What `CudaEngine` runs: the launches, the buffers they address (kept alive with
/// them), which buffers take the input and give the outputs, and the split-K workspace.
pub(super) struct Plan {
    pub steps: Vec<Step>,
    pub bufs: Vec<CudaSlice<u8>>,
    pub input: usize,
    pub outputs: Vec<usize>,
    pub input_shape: Vec<usize>,
    pub output_shapes: Vec<Vec<usize>>,
    pub workspace: u64,
}

/// Plan `graph` for `batch` images with kernels `k`: every value placed, weights uploaded
/// on `stream`, the node list turned into launches.
pub(super) fn plan(
    dev: &CudaDevice,
    stream: &Arc<CudaStream>,
    k: &EngineKernels,
    graph: &Graph,
    weights: &dyn Weights,
    batch: usize,
) -> Result<Plan> {
    let wshape = |n: &str| -> Option<Vec<usize>> {
        weights
            .get(n)
            .map(|(s, _)| s.to_vec())
            .or_else(|| weights.get_i8(n).map(|(s, _)| s.to_vec()))
    };
    let shapes = infer_shapes(graph, &wshape)?;
    let input = graph
        .input
        .as_ref()
        .ok_or_else(|| Error::msg("cuda engine: graph has no input"))?;
    let sms = dev
        .ctx
        .attribute(
            cudarc::driver::sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT,
        )
        .map_err(dev_err)? as usize;
    let all_shapes: HashMap<String, Vec<usize>> = shapes
        .iter()
        .map(|(k, v)| (k.clone(), with_batch(v, batch)))
        .collect();
    let dts = value_dtypes(graph);
    let homes = plan_homes(graph, &all_shapes, &dts);
    let mut p = Planner {
        stream,
        bufs: Vec::new(),
        sms,
        k_step: (k.k_step(false), k.k_step(true)),
        workspace: 0,
        homes,
        shapes: all_shapes,
        dts,
        placed: HashMap::new(),
        quantized: HashMap::new(),
    };
    let mut steps = Vec::new();
    let mut vals: HashMap<&str, Val> = HashMap::new();

    let input_shape = with_batch(&input.shape, batch);
    let n_in: usize = input_shape.iter().product();
    let (in_idx, in_ptr) = p.alloc(n_in * 4)?;
    let x0 = p.value(&input.name, Dt::F16)?;
    steps.push(Step::Cast {
        x: in_ptr,
        y: x0.ptr,
        n: n_in,
    });
    vals.insert(&input.name, x0);

    for node in &graph.nodes {
        let ctx = |e: Error| {
            e.context(format!(
                "cuda engine: node {:?} ({})",
                node.name,
                node.op.kind()
            ))
        };
        let ins: Vec<Val> = node
            .inputs
            .iter()
            .filter(|n| !weights.has(n))
            .map(|n| {
                vals.get(n.as_str())
                    .cloned()
                    .ok_or_else(|| Error::msg(format!("reads missing {n:?}")))
            })
            .collect::<Result<_>>()
            .map_err(ctx)?;
        let outs = plan_node(&mut p, &mut steps, node, &ins, weights).map_err(ctx)?;
        for (name, v) in node.outputs.iter().zip(outs) {
            vals.insert(name, v);
        }
    }

    let mut outputs = Vec::new();
    let mut output_shapes = Vec::new();
    for o in &graph.outputs {
        let v = vals
            .get(o.name.as_str())
            .ok_or_else(|| Error::msg(format!("cuda engine: output {:?} not produced", o.name)))?
            .clone();
        let n = v.numel();
        let (idx, ptr) = p.alloc(n * 4)?;
        steps.push(Step::Copy {
            src: (v.ptr, v.dt == Dt::F32),
            dst: (ptr, true),
            outer: 1,
            chunk: n,
            src_so: (n, 0),
            dst_so: (n, 0),
        });
        outputs.push(idx);
        output_shapes.push(v.shape.clone());
    }
    let (_, workspace) = p.alloc(p.workspace)?;
    Ok(Plan {
        steps,
        bufs: p.bufs,
        input: in_idx,
        outputs,
        input_shape,
        output_shapes,
        workspace,
    })
}

/// A conv's checked geometry (as the CPU executor's), groups 1 only.
fn conv_geom(
    x: &Val,
    ws: &[usize],
    bias: Option<usize>,
    (stride, pad, dil, groups): ([usize; 2], [usize; 2], [usize; 2], usize),
) -> Result<ConvGeom> {
    if groups != 1 {
        return Err(Error::msg(format!("groups {groups}: only 1 runs on CUDA")));
    }
    crate::engine::exec::conv_geom(&x.shape, ws, bias, stride, pad, dil, groups)
}

/// The planned output buffer is the conv's `[n, o, ho, wo]`.
fn check_out(g: &ConvGeom, y: &Val) -> Result<()> {
    if y.shape != [g.n, g.o, g.ho, g.wo] {
        return Err(Error::msg(format!(
            "conv output {:?} but the planned value is {:?}",
            [g.n, g.o, g.ho, g.wo],
            y.shape
        )));
    }
    Ok(())
}

fn need_f16(ins: &[Val]) -> Result<()> {
    match ins.iter().find(|v| v.dt != Dt::F16) {
        Some(v) => Err(Error::msg(format!(
            "takes f16 values on CUDA; input {:?} is {:?}",
            v.shape, v.dt
        ))),
        None => Ok(()),
    }
}

/// The first input, which must be NCHW (and its output too: same rank by shape inference).
fn first4(ins: &[Val]) -> Result<&Val> {
    let x = first(ins)?;
    if x.shape.len() != 4 {
        return Err(Error::msg(format!(
            "needs an NCHW input, got {:?}",
            x.shape
        )));
    }
    Ok(x)
}

fn first(ins: &[Val]) -> Result<&Val> {
    ins.first().ok_or_else(|| Error::msg("no input value"))
}

fn plan_node(
    p: &mut Planner,
    steps: &mut Vec<Step>,
    node: &crate::engine::graph::Node,
    ins: &[Val],
    weights: &dyn Weights,
) -> Result<Vec<Val>> {
    // Constant input k of the node: shape and values.
    let f32_weight = |k: usize| -> Result<(&[usize], &[f32])> {
        let name = node
            .inputs
            .get(k)
            .ok_or_else(|| Error::msg(format!("input {k} missing")))?;
        weights
            .get(name)
            .ok_or_else(|| Error::msg(format!("{name:?} is not an f32 constant")))
    };
    let f32_const = |k: usize| f32_weight(k).map(|(_, v)| v);
    let outs = match &node.op {
        Op::Conv {
            stride,
            pad,
            dilation,
            groups,
            act,
        } => {
            need_f16(ins)?;
            let (ws, wv) = f32_weight(1)?;
            let bias = (node.inputs.len() > 2).then(|| f32_const(2)).transpose()?;
            let params = (*stride, *pad, *dilation, *groups);
            let (geom, bias, y) = p.conv_out(first(ins)?, ws, bias, params, &node.outputs[0])?;
            if wv.len() != geom.o * geom.cg() * geom.kh * geom.kw {
                return Err(Error::msg(format!("{} weights for shape {ws:?}", wv.len())));
            }
            let w = p.upload(&f16_bits(wv))?;
            let parts = p.split(&geom, p.k_step.0);
            steps.push(Step::Conv(ConvLaunch {
                x: first(ins)?.ptr,
                w,
                bias,
                y: y.ptr,
                int8_scale: None,
                geom,
                act: act_code(*act),
                parts,
            }));
            vec![y]
        }
        Op::QConv {
            stride,
            pad,
            dilation,
            groups,
            act,
            in_scale,
        } => {
            need_f16(ins)?;
            let wname = &node.inputs[1];
            let (ws, wq) = weights
                .get_i8(wname)
                .ok_or_else(|| Error::msg(format!("{wname:?} is not an i8 constant")))?;
            let bias = (node.inputs.len() > 3).then(|| f32_const(3)).transpose()?;
            let params = (*stride, *pad, *dilation, *groups);
            let (geom, bias, y) = p.conv_out(first(ins)?, ws, bias, params, &node.outputs[0])?;
            let (o, kk) = (geom.o, geom.cg() * geom.kh * geom.kw);
            let w_scale = f32_const(2)?;
            if w_scale.len() != o
                || wq.len() != o * kk
                || !(in_scale.is_finite() && *in_scale > 0.0)
            {
                return Err(Error::msg(format!(
                    "{} weight scales and {} weights for {o} channels of {kk}, input scale {in_scale}",
                    w_scale.len(),
                    wq.len()
                )));
            }
            // Rows padded with zeros to whole 4-byte words.
            let k4 = kk.div_ceil(4) * 4;
            let mut packed = vec![0i8; o * k4];
            for (dst, src) in packed.chunks_exact_mut(k4).zip(wq.chunks_exact(kk)) {
                dst[..kk].copy_from_slice(src);
            }
            let w = p.upload(bytemuck::cast_slice(&packed))?;
            let scale: Vec<f32> = w_scale.iter().map(|s| in_scale * s).collect();
            let scale = p.upload(bytemuck::cast_slice(&scale))?;
            let parts = p.split(&geom, p.k_step.1);
            // The input in s8, quantized once for every QConv that reads it.
            let key = (node.inputs[0].clone(), in_scale.to_bits());
            let x8 = match p.quantized.get(&key) {
                Some(&q) => q,
                None => {
                    let n = first(ins)?.numel();
                    let (_, q) = p.alloc(n)?;
                    steps.push(Step::Quantize {
                        x: first(ins)?.ptr,
                        y: q,
                        n,
                        scale: *in_scale,
                    });
                    p.quantized.insert(key, q);
                    q
                }
            };
            steps.push(Step::Conv(ConvLaunch {
                x: x8,
                w,
                bias,
                y: y.ptr,
                int8_scale: Some(scale),
                geom,
                act: act_code(*act),
                parts,
            }));
            vec![y]
        }
        Op::DepthToSpace { block } => {
            need_f16(ins)?;
            let x = first4(ins)?;
            let y = p.value(&node.outputs[0], Dt::F16)?;
            steps.push(Step::Spread {
                x: x.ptr,
                y: y.ptr,
                nc: y.shape[0] * y.shape[1],
                hw: (x.shape[2], x.shape[3]),
                f: *block,
                block: true,
            });
            vec![y]
        }
        Op::MaxPool {
            kernel,
            stride,
            pad,
        } => {
            need_f16(ins)?;
            let x = first4(ins)?;
            let y = p.value(&node.outputs[0], Dt::F16)?;
            steps.push(Step::MaxPool {
                x: x.ptr,
                y: y.ptr,
                nc: x.shape[0] * x.shape[1],
                hw: (x.shape[2], x.shape[3]),
                ohw: (y.shape[2], y.shape[3]),
                k: *kernel,
                s: *stride,
                p: *pad,
            });
            vec![y]
        }
        Op::Upsample { scale } => {
            need_f16(ins)?;
            let x = first4(ins)?;
            let y = p.value(&node.outputs[0], Dt::F16)?;
            steps.push(Step::Spread {
                x: x.ptr,
                y: y.ptr,
                nc: x.shape[0] * x.shape[1],
                hw: (x.shape[2], x.shape[3]),
                f: *scale,
                block: false,
            });
            vec![y]
        }
        Op::Concat { axis } => {
            let dt = if ins.iter().any(|v| v.dt == Dt::F32) {
                Dt::F32
            } else {
                Dt::F16
            };
            let y = p.value(&node.outputs[0], dt)?;
            let outer: usize = y.shape[..*axis].iter().product();
            let dst_stride: usize = y.shape[*axis..].iter().product();
            let mut off = 0;
            for v in ins {
                let chunk: usize = v.shape[*axis..].iter().product();
                if outer == 1 && v.ptr == y.ptr + (off * dt.size()) as u64 {
                    // Written in place by its producer (plan_homes): nothing to copy.
                    off += chunk;
                    continue;
                }
                steps.push(Step::Copy {
                    src: (v.ptr, v.dt == Dt::F32),
                    dst: (y.ptr, dt == Dt::F32),
                    outer,
                    chunk,
                    src_so: (chunk, 0),
                    dst_so: (dst_stride, off),
                });
                off += chunk;
            }
            vec![y]
        }
        Op::Split { axis, sizes } => {
            let x = first(ins)?;
            let outer: usize = x.shape[..*axis].iter().product();
            let inner: usize = x.shape[*axis + 1..].iter().product();
            let src_stride: usize = x.shape[*axis..].iter().product();
            let mut outs = Vec::with_capacity(sizes.len());
            let mut off = 0;
            if outer == 1 {
                // One run of the input (batch 1, or a split along the first axis): each
                // part is a contiguous piece of it, a view with no copy.
                for (i, &s) in sizes.iter().enumerate() {
                    outs.push(Val {
                        ptr: x.ptr + (off * x.dt.size()) as u64,
                        shape: p.shape(&node.outputs[i])?,
                        dt: x.dt,
                    });
                    off += s * inner;
                }
                return Ok(outs);
            }
            for (i, &s) in sizes.iter().enumerate() {
                let y = p.value(&node.outputs[i], x.dt)?;
                let chunk = s * inner;
                steps.push(Step::Copy {
                    src: (x.ptr, x.dt == Dt::F32),
                    dst: (y.ptr, x.dt == Dt::F32),
                    outer,
                    chunk,
                    src_so: (src_stride, off),
                    dst_so: (chunk, 0),
                });
                off += chunk;
                outs.push(y);
            }
            outs
        }
        Op::Add => {
            need_f16(ins)?;
            let (a, b) = (
                first(ins)?,
                ins.get(1).ok_or_else(|| Error::msg("Add needs 2 inputs"))?,
            );
            let y = p.value(&node.outputs[0], Dt::F16)?;
            steps.push(Step::Elem {
                a: a.ptr,
                b: Some(b.ptr),
                y: y.ptr,
                n: y.numel(),
            });
            vec![y]
        }
        Op::Sigmoid => {
            need_f16(ins)?;
            let y = p.value(&node.outputs[0], Dt::F16)?;
            steps.push(Step::Elem {
                a: first(ins)?.ptr,
                b: None,
                y: y.ptr,
                n: y.numel(),
            });
            vec![y]
        }
        Op::Reshape { .. } => {
            // Same bytes, new shape: no launch.
            let x = first(ins)?;
            vec![Val {
                ptr: x.ptr,
                shape: p.shape(&node.outputs[0])?,
                dt: x.dt,
            }]
        }
        Op::DecodeBoxes { reg_max, levels } => {
            need_f16(ins)?;
            let x = first(ins)?;
            let sizes: Vec<(usize, usize)> = levels.iter().map(|l| (l.h, l.w)).collect();
            let strides: Vec<f32> = levels.iter().map(|l| l.stride).collect();
            // [3, A]: the x, y and stride columns the CPU decode uses.
            let anchors = anchor_columns(&sizes, &strides, 0.5).concat();
            let a = anchors.len() / 3;
            let anchors = p.upload(bytemuck::cast_slice(&anchors))?;
            let y = p.value(&node.outputs[0], Dt::F32)?;
            steps.push(Step::Decode {
                x: x.ptr,
                anchors,
                y: y.ptr,
                n: x.shape[0],
                r: *reg_max,
                a,
            });
            vec![y]
        }
    };
    Ok(outs)
}
