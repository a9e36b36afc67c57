//! The graph executor on CUDA. A plan is made once per (graph, batch): shapes inferred,
//! every value given its own device buffer (f16 activations; the box decode and whatever
//! it reaches — the `pred` concat — in f32, since boxes are in input pixels and f16 steps
//! by 0.5 above 512), weights uploaded (conv weights as f16, INT8 conv weights packed as
//! s8 words), and the node list turned into a fixed list of kernel launches on raw device
//! addresses. A run copies the image in, replays the launches — captured into a CUDA
//! graph on the first run, so one run is one driver call — and copies the outputs out.
//!
//! Precision follows the graph: `Conv` nodes run in f16 with f32 accumulation (the fp16
//! engine), `QConv` nodes in s8·s8 → s32 on tensor cores or with dp4a, each input quantized to s8
//! once (the INT8 engine). The CPU executor
//! (`exec`) is the reference; tests/cuda_engine.rs compares the two. The planning lives in
//! [`plan`], the placement of values (types, concat inputs written in place) in [`homes`].
mod homes;
mod plan;

pub use homes::{Dt, plan_homes, value_dtypes};

use super::exec::Weights;
use super::graph::Graph;
use crate::backend::cuda::CudaDevice;
use crate::backend::cuda::engine_ops::EngineKernels;
use crate::{Error, Result, Tensor};
use cudarc::driver::sys::{CUgraphInstantiate_flags, CUstreamCaptureMode};
use cudarc::driver::{CudaGraph, CudaSlice, CudaStream, PinnedHostSlice};
use plan::Step;
use std::sync::{Arc, Mutex};

fn dev_err(e: impl std::fmt::Display) -> Error {
    Error::Device {
        op: "engine",
        msg: e.to_string(),
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
        let p = plan::plan(dev, &stream, &k, graph, weights, batch)?;
        let n_in: usize = p.input_shape.iter().product();
        let pinned = pin(&dev.ctx, n_in * 4, &p.output_shapes);
        stream.synchronize().map_err(dev_err)?;
        Ok(CudaEngine {
            dev,
            stream,
            k,
            steps: p.steps,
            input_shape: p.input_shape,
            output_shapes: p.output_shapes,
            workspace: p.workspace,
            use_graph: std::env::var("EDGEDISTILL_CUDA_GRAPH").map_or(true, |v| v != "0"),
            state: Mutex::new(State {
                bufs: p.bufs,
                input: p.input,
                outputs: p.outputs,
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
        // f32 images are read in place; other types are converted once.
        let images = if images.dtype() == crate::DType::F32 {
            images.clone()
        } else {
            images.to_dtype(crate::DType::F32)?
        };
        let mut guard = self.lock();
        let st = &mut *guard;
        let i = st.input;
        images.with_slice(|host: &[f32]| -> Result<()> {
            let bytes: &[u8] = bytemuck::cast_slice(host);
            match st.pinned.as_mut() {
                Some((pin_in, _)) => {
                    pin_in
                        .as_mut_slice()
                        .map_err(dev_err)?
                        .copy_from_slice(bytes);
                    self.stream.memcpy_htod(pin_in, &mut st.bufs[i])
                }
                None => self.stream.memcpy_htod(bytes, &mut st.bufs[i]),
            }
            .map_err(dev_err)
        })??;
        self.launch(st)?;
        let mut outs: Vec<Vec<f32>> = Vec::with_capacity(st.outputs.len());
        match st.pinned.as_mut() {
            Some((_, pin_out)) => {
                for (&o, dst) in st.outputs.iter().zip(pin_out.iter_mut()) {
                    self.stream.memcpy_dtoh(&st.bufs[o], dst).map_err(dev_err)?;
                }
                self.stream.synchronize().map_err(dev_err)?;
                for dst in pin_out.iter() {
                    outs.push(bytemuck::pod_collect_to_vec(
                        dst.as_slice().map_err(dev_err)?,
                    ));
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
