//! The graph executor on CUDA. A plan is made once per (graph, batch): shapes inferred,
//! every value given its own device buffer (f16 activations; the box decode and whatever
//! it reaches — the `pred` concat — in f32, since boxes are in input pixels and f16 steps
//! by 0.5 above 512), weights uploaded (conv weights as f16, INT8 conv weights packed as
//! s8 words), and the node list turned into a fixed list of kernel launches on raw device
//! addresses. A run copies the image in, replays the launches — captured into a CUDA
//! graph on the first run, so one run is one driver call — and copies the outputs out.
//!
//! Precision follows the graph: `Conv` nodes run in f16 with f32 accumulation (the fp16
//! engine), `QConv` nodes in s8·s8 → s32 with dp4a (the INT8 engine). The CPU executor
//! (`exec`) is the reference; tests/cuda_engine.rs compares the two.
use super::exec::Weights;
use super::graph::{Act, Graph, Op};
use super::shapes::infer_shapes;
use crate::backend::cuda::CudaDevice;
use crate::backend::cpu::conv::ConvGeom;
use crate::backend::cuda::engine_ops::{ConvLaunch, EngineKernels, Split};
use crate::{Error, Result, Tensor};
use cudarc::driver::sys::{CUgraphInstantiate_flags, CUstreamCaptureMode};
use cudarc::driver::{CudaGraph, CudaSlice, CudaStream, DevicePtr, PinnedHostSlice};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

fn dev_err(e: impl std::fmt::Display) -> Error {
    Error::Device {
        op: "engine",
        msg: e.to_string(),
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Dt {
    F16,
    F32,
}

impl Dt {
    fn size(self) -> usize {
        match self {
            Dt::F16 => 2,
            Dt::F32 => 4,
        }
    }
}

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
enum Step {
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
    fn describe(&self) -> String {
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
            Step::Spread { nc, hw, f, block, .. } => format!(
                "{} {nc}x{}x{} x{f}",
                if *block { "depth2space" } else { "upsample" },
                hw.0,
                hw.1
            ),
            Step::Elem { b, n, .. } => format!("{} {n}", if b.is_some() { "add" } else { "sigmoid" }),
            Step::Copy { outer, chunk, .. } => format!("copy {outer}x{chunk}"),
            Step::Decode { n, r, a, .. } => format!("decode {n}x{r}x{a}"),
        }
    }
}

/// The captured launches. The graph exec handle is only touched under `CudaEngine`'s
/// mutex, and driver handles may be used from any thread.
struct Captured(CudaGraph);
// SAFETY: see above; CudaGraph holds driver handles and an Arc<CudaStream> (Send + Sync).
unsafe impl Send for Captured {}

enum GraphState {
    NotTried,
    Ready(Captured),
    /// Capture failed once (the reason kept for `graph_status`); launches run one by one.
    Off(String),
}

struct State {
    /// Every device buffer, alive as long as the plan (steps hold their addresses).
    bufs: Vec<CudaSlice<u8>>,
    input: usize,
    outputs: Vec<usize>,
    graph: GraphState,
    /// Page-locked host staging for the input and outputs (copies at full bus speed, the
    /// input write-combined since the host only writes it); None where the driver would
    /// not pin memory, then the copies go through pageable memory.
    pinned: Option<(PinnedHostSlice<u8>, Vec<PinnedHostSlice<u8>>)>,
}

/// A graph planned for one batch size on one GPU.
pub struct CudaEngine {
    dev: &'static CudaDevice,
    stream: Arc<CudaStream>,
    k: EngineKernels,
    steps: Vec<Step>,
    input_shape: Vec<usize>,
    output_shapes: Vec<Vec<usize>>,
    /// Split-K shares of every split conv (one conv at a time uses it).
    workspace: u64,
    use_graph: bool,
    state: Mutex<State>,
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
    /// Split-K shares for a conv (K steps of `k_step`), growing the workspace to fit.
    fn split(&mut self, d: &ConvGeom, k_step: usize) -> usize {
        let parts = Split::plan(d, k_step, self.sms);
        if parts > 1 {
            self.workspace = self
                .workspace
                .max(parts * d.o * d.n * d.ho * d.wo * 4);
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
                let n: usize = self
                    .shapes
                    .get(name)
                    .ok_or_else(|| Error::msg(format!("no shape for {name:?}")))?
                    .iter()
                    .product();
                self.alloc(n * dt.size())?.1
            }
        };
        self.placed.insert(name.to_string(), ptr);
        Ok(ptr)
    }

    /// The value a node writes as `name`.
    fn value(&mut self, name: &str, shape: Vec<usize>, dt: Dt) -> Result<Val> {
        if self.dts.get(name) != Some(&dt) {
            return Err(Error::msg(format!("{name:?}: planned type differs")));
        }
        let ptr = self.locate(name)?;
        Ok(Val { ptr, shape, dt })
    }
}

fn f16_bits(v: &[f32]) -> Vec<u8> {
    let h: Vec<u16> = v.iter().map(|&x| half::f16::from_f32(x).to_bits()).collect();
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

impl CudaEngine {
    /// Plan `graph` (constants from `weights`) for `batch` images on `dev`, convs on
    /// tensor cores where the GPU has them (sm_80+; `EDGEDISTILL_CUDA_TENSOR_CORES=0`
    /// keeps them on CUDA cores).
    pub fn new(
        dev: &'static CudaDevice,
        graph: &Graph,
        weights: &dyn Weights,
        batch: usize,
    ) -> Result<CudaEngine> {
        let tc = dev.cc.0 >= 8
            && std::env::var("EDGEDISTILL_CUDA_TENSOR_CORES").map_or(true, |v| v != "0");
        Self::with_kernels(dev, graph, weights, batch, tc)
    }

    /// [`CudaEngine::new`] with the conv kernels chosen: tensor cores (mma.sync) or CUDA
    /// cores (FMA for f16, dp4a for INT8).
    pub fn with_kernels(
        dev: &'static CudaDevice,
        graph: &Graph,
        weights: &dyn Weights,
        batch: usize,
        tensor_cores: bool,
    ) -> Result<CudaEngine> {
        if batch == 0 {
            return Err(Error::msg("cuda engine: batch must be ≥ 1"));
        }
        let stream = dev.ctx.new_stream().map_err(dev_err)?;
        let k = EngineKernels::load(dev, tensor_cores)?;
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
            stream: &stream,
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
        let x0 = p.value(&input.name, input_shape.clone(), Dt::F16)?;
        steps.push(Step::Cast {
            x: in_ptr,
            y: x0.ptr,
            n: n_in,
        });
        vals.insert(&input.name, x0);

        for node in &graph.nodes {
            let ctx = |e: Error| e.context(format!("cuda engine: node {:?} ({})", node.name, node.op.kind()));
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
            let out_shape = |i: usize| -> Result<Vec<usize>> {
                let name = node
                    .outputs
                    .get(i)
                    .ok_or_else(|| Error::msg("missing output"))?;
                shapes
                    .get(name)
                    .map(|s| with_batch(s, batch))
                    .ok_or_else(|| Error::msg(format!("no shape for {name:?}")))
            };
            let outs = plan_node(&mut p, &mut steps, node, &ins, weights, &out_shape, &wshape)
                .map_err(ctx)?;
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
        let pinned = pin(&dev.ctx, n_in * 4, &output_shapes);
        let bufs = p.bufs;
        stream.synchronize().map_err(dev_err)?;
        Ok(CudaEngine {
            dev,
            stream,
            k,
            steps,
            input_shape,
            output_shapes,
            workspace,
            use_graph: std::env::var("EDGEDISTILL_CUDA_GRAPH").map_or(true, |v| v != "0"),
            state: Mutex::new(State {
                bufs,
                input: in_idx,
                outputs,
                graph: GraphState::NotTried,
                pinned,
            }),
        })
    }

    /// Replay runs as one captured CUDA graph (the default; `EDGEDISTILL_CUDA_GRAPH=0`
    /// turns it off) or launch kernel by kernel.
    pub fn set_use_graph(&mut self, on: bool) {
        self.use_graph = on;
    }

    pub fn device(&self) -> &'static CudaDevice {
        self.dev
    }

    /// `[batch, 3, S, S]`, the input this plan takes.
    pub fn input_shape(&self) -> &[usize] {
        &self.input_shape
    }

    /// Whether the convs run on tensor cores.
    pub fn tensor_cores(&self) -> bool {
        self.k.tensor_cores()
    }

    /// Number of kernel launches per run.
    pub fn launches(&self) -> usize {
        self.steps.len()
    }

    /// "graph" when runs replay a captured CUDA graph, else why not.
    pub fn graph_status(&self) -> String {
        match &self.lock().graph {
            GraphState::Ready(_) => "graph".into(),
            GraphState::NotTried => "not captured yet".into(),
            GraphState::Off(why) => format!("launches one by one ({why})"),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn launch_all(&self) -> Result<()> {
        for st in &self.steps {
            self.launch_step(st)?;
        }
        Ok(())
    }

    /// Each launch alone, repeated `reps` times and waited for: (what, median ms), in plan
    /// order. For finding the slow layers; a run's total is less than the sum (the
    /// launches overlap the host's work there).
    pub fn profile_steps(&self, reps: usize) -> Result<Vec<(String, f64)>> {
        let _st = self.lock();
        let mut out = Vec::with_capacity(self.steps.len());
        for st in &self.steps {
            let mut ts = Vec::with_capacity(reps.max(1));
            for _ in 0..reps.max(1) {
                let t0 = std::time::Instant::now();
                self.launch_step(st)?;
                self.stream.synchronize().map_err(dev_err)?;
                ts.push(t0.elapsed().as_secs_f64() * 1e3);
            }
            ts.sort_by(|a, b| a.total_cmp(b));
            out.push((st.describe(), ts[ts.len() / 2]));
        }
        Ok(out)
    }

    fn launch_step(&self, st: &Step) -> Result<()> {
        let s = &self.stream;
        let k = &self.k;
        {
            match st {
                Step::Cast { x, y, n } => k.to_f16(s, *x, *y, *n)?,
                Step::Quantize { x, y, n, scale } => k.quantize(s, *x, *y, *n, *scale)?,
                Step::Conv(c) => k.conv(s, c, self.workspace)?,
                Step::MaxPool {
                    x,
                    y,
                    nc,
                    hw,
                    ohw,
                    k: kk,
                    s: ss,
                    p,
                } => k.maxpool(s, *x, *y, *nc, *hw, *ohw, *kk, *ss, *p)?,
                Step::Spread {
                    x,
                    y,
                    nc,
                    hw,
                    f,
                    block,
                } => k.spread(s, *x, *y, *nc, *hw, *f, *block)?,
                Step::Elem { a, b, y, n } => k.elementwise(s, *a, *b, *y, *n)?,
                Step::Copy {
                    src,
                    dst,
                    outer,
                    chunk,
                    src_so,
                    dst_so,
                } => k.copy(s, *src, *dst, *outer, *chunk, *src_so, *dst_so)?,
                Step::Decode {
                    x,
                    anchors,
                    y,
                    n,
                    r,
                    a,
                } => k.decode(s, *x, *anchors, *y, *n, *r, *a)?,
            }
        }
        Ok(())
    }

    /// Launch the whole network on the input already on the device (captured as a CUDA
    /// graph the first time when allowed). Asynchronous: nothing waits for the GPU.
    fn launch(&self, st: &mut State) -> Result<()> {
        if self.use_graph && matches!(st.graph, GraphState::NotTried) {
            st.graph = match self.capture() {
                Ok(g) => GraphState::Ready(Captured(g)),
                Err(e) => GraphState::Off(e.to_string()),
            };
        }
        match &st.graph {
            GraphState::Ready(g) if self.use_graph => g.0.launch().map_err(dev_err),
            _ => self.launch_all(),
        }
    }

    fn capture(&self) -> Result<CudaGraph> {
        self.stream
            .begin_capture(CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL)
            .map_err(dev_err)?;
        let launched = self.launch_all();
        let ended = self
            .stream
            .end_capture(CUgraphInstantiate_flags(0))
            .map_err(dev_err);
        launched?;
        let g = ended?.ok_or_else(|| dev_err("stream capture gave no graph"))?;
        g.upload().map_err(dev_err)?;
        Ok(g)
    }

    /// Run on `images` (`[batch, 3, S, S]` f32): the graph outputs, f32 on the host.
    pub fn run(&self, images: &Tensor) -> Result<Vec<Tensor>> {
        if images.dims() != self.input_shape.as_slice() {
            return Err(Error::Shape {
                op: "cuda engine",
                msg: format!(
                    "planned for input {:?}, got {}",
                    self.input_shape,
                    images.shape()
                ),
            });
        }
        let host = images.to_vec_f32()?;
        let mut guard = self.lock();
        let st = &mut *guard;
        let i = st.input;
        let bytes: &[u8] = bytemuck::cast_slice(&host);
        match st.pinned.as_mut() {
            Some((pin_in, _)) => {
                pin_in.as_mut_slice().map_err(dev_err)?.copy_from_slice(bytes);
                self.stream
                    .memcpy_htod(pin_in, &mut st.bufs[i])
                    .map_err(dev_err)?;
            }
            None => self
                .stream
                .memcpy_htod(bytes, &mut st.bufs[i])
                .map_err(dev_err)?,
        }
        self.launch(st)?;
        let mut outs: Vec<Vec<f32>> = Vec::with_capacity(st.outputs.len());
        match st.pinned.as_mut() {
            Some((_, pin_out)) => {
                for (&o, dst) in st.outputs.iter().zip(pin_out.iter_mut()) {
                    self.stream
                        .memcpy_dtoh(&st.bufs[o], dst)
                        .map_err(dev_err)?;
                }
                self.stream.synchronize().map_err(dev_err)?;
                for dst in pin_out.iter() {
                    outs.push(bytemuck::pod_collect_to_vec(dst.as_slice().map_err(dev_err)?));
                }
            }
            None => {
                for &o in &st.outputs {
                    let b = self.stream.clone_dtoh(&st.bufs[o]).map_err(dev_err)?;
                    outs.push(bytemuck::pod_collect_to_vec(&b));
                }
                self.stream.synchronize().map_err(dev_err)?;
            }
        }
        outs.into_iter()
            .zip(&self.output_shapes)
            .map(|(v, shape)| Tensor::from_vec(v, shape.clone()))
            .collect()
    }

    /// The network alone, on the input already on the device, waited for: what a
    /// benchmark of the GPU work times (no host copies).
    pub fn run_resident(&self) -> Result<()> {
        let mut st = self.lock();
        self.launch(&mut st)?;
        self.stream.synchronize().map_err(dev_err)
    }
}

/// Each value's type on the GPU: f16, except the box decode's output and what it reaches
/// (concats with an f32 input, reshapes and splits of f32 values).
fn value_dtypes(graph: &Graph) -> HashMap<String, Dt> {
    let mut dts = HashMap::new();
    if let Some(i) = &graph.input {
        dts.insert(i.name.clone(), Dt::F16);
    }
    for node in &graph.nodes {
        let input_dt = |k: usize| {
            node.inputs
                .get(k)
                .and_then(|n| dts.get(n))
                .copied()
                .unwrap_or(Dt::F16)
        };
        let dt = match &node.op {
            Op::DecodeBoxes { .. } => Dt::F32,
            Op::Concat { .. } => {
                if node.inputs.iter().any(|n| dts.get(n) == Some(&Dt::F32)) {
                    Dt::F32
                } else {
                    Dt::F16
                }
            }
            Op::Reshape { .. } | Op::Split { .. } => input_dt(0),
            _ => Dt::F16,
        };
        for o in &node.outputs {
            dts.insert(o.clone(), dt);
        }
    }
    dts
}

/// Concat elision: where a concat's output is one contiguous run per input (nothing before
/// the axis but 1s — channel concats at batch 1), each input made by a node that writes
/// a buffer of its own is placed ("homed") inside the concat's output, so its producer
/// writes there and the concat copies nothing. A run of a Split's outputs, in order,
/// homes the split's input instead (C2f: cv1's output lands in the concat, its halves are
/// views). Later concats are planned first, so homes nest (a concat inside a concat).
/// A value is homed once, only with the concat's own type, never the graph input.
fn plan_homes(
    graph: &Graph,
    shapes: &HashMap<String, Vec<usize>>,
    dts: &HashMap<String, Dt>,
) -> HashMap<String, (String, usize)> {
    let mut producer: HashMap<&str, &super::graph::Node> = HashMap::new();
    for n in &graph.nodes {
        for o in &n.outputs {
            producer.insert(o.as_str(), n);
        }
    }
    let numel = |v: &str| shapes.get(v).map_or(0, |s| s.iter().product::<usize>());
    let mut homes: HashMap<String, (String, usize)> = HashMap::new();
    for node in graph.nodes.iter().rev() {
        let Op::Concat { axis } = node.op else {
            continue;
        };
        let out = &node.outputs[0];
        let (Some(oshape), Some(&odt)) = (shapes.get(out), dts.get(out)) else {
            continue;
        };
        if axis > oshape.len() || oshape[..axis].iter().product::<usize>() != 1 {
            continue;
        }
        let fresh = |v: &str, homes: &HashMap<String, (String, usize)>| {
            !homes.contains_key(v)
                && dts.get(v) == Some(&odt)
                && producer.get(v).is_some_and(|p| {
                    !matches!(p.op, Op::Reshape { .. } | Op::Split { .. })
                })
        };
        let (mut off, mut i) = (0, 0);
        while i < node.inputs.len() {
            let v = node.inputs[i].as_str();
            if let Some(sp) = producer.get(v).filter(|p| matches!(p.op, Op::Split { .. })) {
                let src = sp.inputs[0].as_str();
                let one_run = match &sp.op {
                    Op::Split { axis: sa, .. } => shapes
                        .get(src)
                        .is_some_and(|s| *sa <= s.len() && s[..*sa].iter().product::<usize>() == 1),
                    _ => false,
                };
                if one_run && node.inputs[i..].starts_with(&sp.outputs) && fresh(src, &homes) {
                    homes.insert(src.to_string(), (out.clone(), off));
                    off += numel(src);
                    i += sp.outputs.len();
                    continue;
                }
            }
            if fresh(v, &homes) {
                homes.insert(v.to_string(), (out.clone(), off));
            }
            off += numel(v);
            i += 1;
        }
    }
    homes
}

/// Page-locked staging: `in_bytes` for the input (write-combined), one f32 buffer per
/// output; None when the driver refuses.
#[allow(clippy::type_complexity)]
fn pin(
    ctx: &Arc<cudarc::driver::CudaContext>,
    in_bytes: usize,
    outputs: &[Vec<usize>],
) -> Option<(PinnedHostSlice<u8>, Vec<PinnedHostSlice<u8>>)> {
    // SAFETY: the buffers are written (by a host copy or a DMA) before they are read.
    let pin_in = unsafe { ctx.alloc_pinned::<u8>(in_bytes.max(4)) }.ok()?;
    let outs = outputs
        .iter()
        .map(|s| {
            let n = s.iter().product::<usize>() * 4;
            // SAFETY: as above; plain (cached) pages, since the host reads these.
            unsafe { ctx.alloc_pinned_with_flags::<u8>(n.max(4), 0) }.ok()
        })
        .collect::<Option<Vec<_>>>()?;
    Some((pin_in, outs))
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
    super::exec::conv_geom_of(&x.shape, ws, bias, stride, pad, dil, groups)
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

fn first(ins: &[Val]) -> Result<&Val> {
    ins.first().ok_or_else(|| Error::msg("no input value"))
}

#[allow(clippy::too_many_arguments)]
fn plan_node(
    p: &mut Planner,
    steps: &mut Vec<Step>,
    node: &super::graph::Node,
    ins: &[Val],
    weights: &dyn Weights,
    out_shape: &dyn Fn(usize) -> Result<Vec<usize>>,
    wshape: &dyn Fn(&str) -> Option<Vec<usize>>,
) -> Result<Vec<Val>> {
    let f32_const = |k: usize| -> Result<&[f32]> {
        let name = node
            .inputs
            .get(k)
            .ok_or_else(|| Error::msg(format!("input {k} missing")))?;
        weights
            .get(name)
            .map(|(_, v)| v)
            .ok_or_else(|| Error::msg(format!("{name:?} is not an f32 constant")))
    };
    let outs = match &node.op {
        Op::Conv {
            stride,
            pad,
            dilation,
            groups,
            act,
        } => {
            need_f16(ins)?;
            let ws = wshape(&node.inputs[1]).ok_or_else(|| Error::msg("no weight"))?;
            let bias = (node.inputs.len() > 2).then(|| f32_const(2)).transpose()?;
            let geom = conv_geom(
                first(ins)?,
                &ws,
                bias.map(|b| b.len()),
                (*stride, *pad, *dilation, *groups),
            )?;
            let wv = f32_const(1)?;
            if wv.len() != geom.o * geom.cg() * geom.kh * geom.kw {
                return Err(Error::msg(format!("{} weights for shape {ws:?}", wv.len())));
            }
            let w = p.upload(&f16_bits(wv))?;
            let bias = match bias {
                Some(b) => p.upload(bytemuck::cast_slice(b))?,
                None => 0,
            };
            let y = p.value(&node.outputs[0], out_shape(0)?, Dt::F16)?;
            check_out(&geom, &y)?;
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
            let ws = ws.to_vec();
            let bias = (node.inputs.len() > 3).then(|| f32_const(3)).transpose()?;
            let geom = conv_geom(
                first(ins)?,
                &ws,
                bias.map(|b| b.len()),
                (*stride, *pad, *dilation, *groups),
            )?;
            let (o, kk) = (geom.o, geom.cg() * geom.kh * geom.kw);
            let w_scale = f32_const(2)?;
            if w_scale.len() != o || wq.len() != o * kk || !(in_scale.is_finite() && *in_scale > 0.0) {
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
            let bias = match bias {
                Some(b) => p.upload(bytemuck::cast_slice(b))?,
                None => 0,
            };
            let y = p.value(&node.outputs[0], out_shape(0)?, Dt::F16)?;
            check_out(&geom, &y)?;
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
            let x = first(ins)?;
            let y = p.value(&node.outputs[0], out_shape(0)?, Dt::F16)?;
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
            let x = first(ins)?;
            let y = p.value(&node.outputs[0], out_shape(0)?, Dt::F16)?;
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
            let x = first(ins)?;
            let y = p.value(&node.outputs[0], out_shape(0)?, Dt::F16)?;
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
            let y = p.value(&node.outputs[0], out_shape(0)?, dt)?;
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
                        shape: out_shape(i)?,
                        dt: x.dt,
                    });
                    off += s * inner;
                }
                return Ok(outs);
            }
            for (i, &s) in sizes.iter().enumerate() {
                let y = p.value(&node.outputs[i], out_shape(i)?, x.dt)?;
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
            let (a, b) = (first(ins)?, ins.get(1).ok_or_else(|| Error::msg("Add needs 2 inputs"))?);
            let y = p.value(&node.outputs[0], out_shape(0)?, Dt::F16)?;
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
            let y = p.value(&node.outputs[0], out_shape(0)?, Dt::F16)?;
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
                shape: out_shape(0)?,
                dt: x.dt,
            }]
        }
        Op::DecodeBoxes { reg_max, levels } => {
            need_f16(ins)?;
            let x = first(ins)?;
            let a: usize = levels.iter().map(|l| l.h * l.w).sum();
            let mut anchors = vec![0f32; 3 * a];
            let mut j = 0;
            for l in levels {
                for yy in 0..l.h {
                    for xx in 0..l.w {
                        anchors[j] = xx as f32 + 0.5;
                        anchors[a + j] = yy as f32 + 0.5;
                        anchors[2 * a + j] = l.stride;
                        j += 1;
                    }
                }
            }
            let anchors = p.upload(bytemuck::cast_slice(&anchors))?;
            let y = p.value(&node.outputs[0], out_shape(0)?, Dt::F32)?;
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
