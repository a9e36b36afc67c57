//! Launchers for the engine's kernels (kernels/conv2d_f16.cu, qconv2d_dp4a.cu,
//! engine_ops.cu) on raw device pointers. The engine's CUDA executor owns every buffer
//! for its whole life and launches the same steps on every run, so it hands plain
//! addresses here: no per-launch event bookkeeping, and the launches can be captured into
//! a CUDA graph. Callers guarantee that each pointer addresses a live buffer of the size
//! its arguments imply; shapes are checked when the plan is made, not here.
use super::CudaDevice;
use crate::backend::cpu::conv::ConvGeom;
use crate::{Error, Result};
use cudarc::driver::{CudaFunction, CudaStream, LaunchConfig, PushKernelArg};

fn dev_err(e: impl std::fmt::Display) -> Error {
    Error::Device {
        op: "engine",
        msg: e.to_string(),
    }
}

/// Every engine kernel, loaded once per executor.
pub struct EngineKernels {
    /// Convs on tensor cores (mma.sync, sm_80+) rather than CUDA cores (FMA / dp4a).
    tensor_cores: bool,
    conv: CudaFunction,
    conv_epi: CudaFunction,
    qconv: CudaFunction,
    qconv_epi: CudaFunction,
    maxpool: CudaFunction,
    upsample: CudaFunction,
    add: CudaFunction,
    sigmoid: CudaFunction,
    d2s: CudaFunction,
    copy: CudaFunction,
    decode: CudaFunction,
    cast: CudaFunction,
    quantize: CudaFunction,
}

/// One conv launch: input, weights (f16 `[o, k]`, or for INT8 packed s8 words
/// `[o, ceil(k/4)]` with `int8_scale` = the per-channel `in_scale·w_scale[o]`), bias (0 for
/// none), output, geometry (groups 1), activation (0 none, 1 SiLU) and split-K shares.
#[derive(Clone, Copy, Debug)]
pub struct ConvLaunch {
    pub x: u64,
    pub w: u64,
    pub bias: u64,
    pub y: u64,
    pub int8_scale: Option<u64>,
    pub geom: ConvGeom,
    pub act: i32,
    pub parts: usize,
}

const BLOCK: u32 = 256;

fn grid1(n: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: ((n as u64).div_ceil(BLOCK as u64).max(1) as u32, 1, 1),
        block_dim: (BLOCK, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// Split-K: how many shares a conv's K steps (of `k_step`) are cut into. More than one
/// when its 64 × 64 tiles alone would leave a GPU of `sms` multiprocessors idle: aim at
/// two blocks per SM, at least 4 K steps per share, and no empty share. The shares go to
/// a workspace of `parts · o · n·ho·wo` 4-byte values and the epilogue kernel sums them;
/// one part writes the output directly.
pub fn split_k_parts(d: &ConvGeom, k_step: usize, sms: usize) -> usize {
    let p = d.n * d.ho * d.wo;
    let blocks = p.div_ceil(64) * d.o.div_ceil(64);
    let target = 2 * sms.max(1);
    let steps = (d.c * d.kh * d.kw).div_ceil(k_step);
    if blocks * 2 >= target || steps < 8 {
        return 1;
    }
    let want = target.div_ceil(blocks).min(steps / 4).max(1);
    let per = steps.div_ceil(want);
    steps.div_ceil(per)
}

fn conv_grid(d: &ConvGeom, parts: usize, threads: u32) -> LaunchConfig {
    let p = d.n * d.ho * d.wo;
    LaunchConfig {
        grid_dim: (p.div_ceil(64) as u32, d.o.div_ceil(64) as u32, parts as u32),
        block_dim: (threads, 1, 1),
        shared_mem_bytes: 0,
    }
}

fn i(v: usize) -> i32 {
    v as i32
}

impl EngineKernels {
    /// The kernels for `dev`; `tensor_cores` picks the mma convs (needs sm_80+).
    pub fn load(dev: &CudaDevice, tensor_cores: bool) -> Result<EngineKernels> {
        if tensor_cores && dev.cc.0 < 8 {
            return Err(dev_err(format!(
                "tensor-core convs need sm_80 or newer; {} is sm_{}{}",
                dev.name, dev.cc.0, dev.cc.1
            )));
        }
        let f = |file: &str, name: &str| dev.function(file, name);
        let (conv, qconv) = if tensor_cores {
            (
                f("conv2d_f16_mma", "conv2d_f16_mma")?,
                f("qconv2d_mma", "qconv2d_mma")?,
            )
        } else {
            (
                f("conv2d_f16", "conv2d_f16")?,
                f("qconv2d_dp4a", "qconv2d_dp4a")?,
            )
        };
        Ok(EngineKernels {
            tensor_cores,
            conv,
            conv_epi: f("conv2d_f16", "conv_epilogue_f16")?,
            qconv,
            qconv_epi: f("qconv2d_dp4a", "qconv_epilogue")?,
            maxpool: f("engine_ops", "maxpool_f16")?,
            upsample: f("engine_ops", "upsample_f16")?,
            add: f("engine_ops", "add_f16")?,
            sigmoid: f("engine_ops", "sigmoid_f16")?,
            d2s: f("engine_ops", "depth_to_space_f16")?,
            copy: f("engine_ops", "copy_slab")?,
            decode: f("engine_ops", "decode_boxes_f16")?,
            cast: f("engine_ops", "f32_to_f16")?,
            quantize: f("engine_ops", "quantize_s8")?,
        })
    }

    /// Whether the convs run on tensor cores.
    pub fn tensor_cores(&self) -> bool {
        self.tensor_cores
    }

    fn conv_threads(&self) -> u32 {
        if self.tensor_cores { 128 } else { 256 }
    }

    /// The k a conv block consumes per step (split-K shares are whole steps).
    pub fn k_step(&self, int8: bool) -> usize {
        if self.tensor_cores || int8 { 32 } else { 16 }
    }

    /// A conv (f16, or INT8 when `c.int8_scale` is Some) with bias and activation; with
    /// `c.parts > 1` the shares go to `workspace` and the epilogue kernel finishes them.
    /// The output is the whole `[n, o, ho, wo]` tensor at `c.y` (the kernels can also
    /// write a channel slice of a wider tensor; the executor places concat inputs by
    /// address instead).
    pub fn conv(&self, s: &CudaStream, c: &ConvLaunch, workspace: u64) -> Result<()> {
        let d = &c.geom;
        let f = match c.int8_scale {
            Some(_) => &self.qconv,
            None => &self.conv,
        };
        let scale = c.int8_scale.unwrap_or(0);
        let mut l = s.launch_builder(f);
        l.arg(&c.x).arg(&c.w);
        if c.int8_scale.is_some() {
            l.arg(&scale);
        }
        l.arg(&c.bias).arg(&c.y);
        let ints = [
            i(d.n),
            i(d.c),
            i(d.h),
            i(d.w),
            i(d.o),
            i(d.kh),
            i(d.kw),
            i(d.stride.0),
            i(d.stride.1),
            i(d.pad.0),
            i(d.pad.1),
            i(d.dil.0),
            i(d.dil.1),
            i(d.ho),
            i(d.wo),
            c.act,
            i(d.o), // y_ctot: the whole output
            0,      // y_coff
            i(c.parts),
        ];
        for v in &ints {
            l.arg(v);
        }
        l.arg(&workspace);
        // SAFETY: argument order and types follow conv2d_f16 / conv2d_f16_mma (x, w, bias,
        // y, ints..., part) and qconv2d_dp4a / qconv2d_mma (x, w, scale, bias, y, ints...,
        // part); the caller guarantees the buffers' sizes (module comment).
        unsafe { l.launch(conv_grid(d, c.parts, self.conv_threads())) }.map_err(dev_err)?;
        if c.parts > 1 {
            self.epilogue(s, c, workspace)?;
        }
        Ok(())
    }

    /// Sum a split conv's shares, rescale (INT8), add bias, activate, store.
    fn epilogue(&self, s: &CudaStream, c: &ConvLaunch, workspace: u64) -> Result<()> {
        let d = &c.geom;
        let p = d.n * d.ho * d.wo;
        let f = match c.int8_scale {
            Some(_) => &self.qconv_epi,
            None => &self.conv_epi,
        };
        let scale = c.int8_scale.unwrap_or(0);
        let mut l = s.launch_builder(f);
        l.arg(&workspace);
        if c.int8_scale.is_some() {
            l.arg(&scale);
        }
        l.arg(&c.bias).arg(&c.y);
        let ints = [i(d.o), i(p), i(d.ho * d.wo), i(c.parts), c.act, i(d.o), 0];
        for v in &ints {
            l.arg(v);
        }
        // SAFETY: conv_epilogue_f16 (part, bias, y, ...) / qconv_epilogue (part, scale,
        // bias, y, ...): the same integer arguments in the same order.
        unsafe { l.launch(grid1(d.o * p)) }.map_err(dev_err)?;
        Ok(())
    }

    /// Max pooling over `nc` planes of h × w.
    #[allow(clippy::too_many_arguments)]
    pub fn maxpool(
        &self,
        s: &CudaStream,
        x: u64,
        y: u64,
        nc: usize,
        hw: (usize, usize),
        out_hw: (usize, usize),
        k: usize,
        stride: usize,
        pad: usize,
    ) -> Result<()> {
        let nc = nc as i64;
        let ints = [
            i(hw.0),
            i(hw.1),
            i(out_hw.0),
            i(out_hw.1),
            i(k),
            i(stride),
            i(pad),
        ];
        let mut l = s.launch_builder(&self.maxpool);
        l.arg(&x).arg(&y).arg(&nc);
        for v in &ints {
            l.arg(v);
        }
        // SAFETY: maxpool_f16's signature; sizes per the module comment.
        unsafe { l.launch(grid1(nc as usize * out_hw.0 * out_hw.1)) }.map_err(dev_err)?;
        Ok(())
    }

    /// Nearest upsampling of `nc` planes of h × w by `f` (`block` false), or DepthToSpace
    /// (CRD) of `nc` output planes by `f` (`block` true).
    #[allow(clippy::too_many_arguments)]
    pub fn spread(
        &self,
        s: &CudaStream,
        x: u64,
        y: u64,
        nc: usize,
        hw: (usize, usize),
        f: usize,
        block: bool,
    ) -> Result<()> {
        let func = if block { &self.d2s } else { &self.upsample };
        let (ncl, h, w, fi) = (nc as i64, i(hw.0), i(hw.1), i(f));
        let mut l = s.launch_builder(func);
        l.arg(&x).arg(&y).arg(&ncl).arg(&h).arg(&w).arg(&fi);
        // SAFETY: upsample_f16 / depth_to_space_f16 share this signature.
        unsafe { l.launch(grid1(nc * hw.0 * f * hw.1 * f)) }.map_err(dev_err)?;
        Ok(())
    }

    /// y = a + b (`b` Some) or y = sigmoid(a), n elements of f16.
    pub fn elementwise(
        &self,
        s: &CudaStream,
        a: u64,
        b: Option<u64>,
        y: u64,
        n: usize,
    ) -> Result<()> {
        let nl = n as i64;
        let bv = b.unwrap_or(0);
        let mut l = s.launch_builder(if b.is_some() {
            &self.add
        } else {
            &self.sigmoid
        });
        l.arg(&a);
        if b.is_some() {
            l.arg(&bv);
        }
        l.arg(&y).arg(&nl);
        // SAFETY: add_f16 (a, b, y, n) / sigmoid_f16 (x, y, n).
        unsafe { l.launch(grid1(n)) }.map_err(dev_err)?;
        Ok(())
    }

    /// `outer` runs of `chunk` elements from src (stride, offset) to dst (stride, offset),
    /// each side f16 or f32.
    #[allow(clippy::too_many_arguments)]
    pub fn copy(
        &self,
        s: &CudaStream,
        src: (u64, bool),
        dst: (u64, bool),
        outer: usize,
        chunk: usize,
        src_so: (usize, usize),
        dst_so: (usize, usize),
    ) -> Result<()> {
        let (sf, df) = (src.1 as i32, dst.1 as i32);
        let longs = [
            outer as i64,
            chunk as i64,
            src_so.0 as i64,
            src_so.1 as i64,
            dst_so.0 as i64,
            dst_so.1 as i64,
        ];
        let mut l = s.launch_builder(&self.copy);
        l.arg(&src.0).arg(&sf).arg(&dst.0).arg(&df);
        for v in &longs {
            l.arg(v);
        }
        // SAFETY: copy_slab's signature.
        unsafe { l.launch(grid1(outer * chunk)) }.map_err(dev_err)?;
        Ok(())
    }

    /// Box decode: x f16 [n, 4·r, a], anchors f32 [3, a] → y f32 [n, 4, a].
    #[allow(clippy::too_many_arguments)]
    pub fn decode(
        &self,
        s: &CudaStream,
        x: u64,
        anchors: u64,
        y: u64,
        n: usize,
        r: usize,
        a: usize,
    ) -> Result<()> {
        let (ni, ri, ai) = (i(n), i(r), i(a));
        let mut l = s.launch_builder(&self.decode);
        l.arg(&x).arg(&anchors).arg(&y).arg(&ni).arg(&ri).arg(&ai);
        // SAFETY: decode_boxes_f16's signature.
        unsafe { l.launch(grid1(n * a)) }.map_err(dev_err)?;
        Ok(())
    }

    /// s8 = QuantizeLinear(f16 x, scale), n elements.
    pub fn quantize(&self, s: &CudaStream, x: u64, y: u64, n: usize, scale: f32) -> Result<()> {
        let nl = n as i64;
        let mut l = s.launch_builder(&self.quantize);
        l.arg(&x).arg(&y).arg(&nl).arg(&scale);
        // SAFETY: quantize_s8's signature.
        unsafe { l.launch(grid1(n)) }.map_err(dev_err)?;
        Ok(())
    }

    /// f32 → f16, n elements.
    pub fn to_f16(&self, s: &CudaStream, x: u64, y: u64, n: usize) -> Result<()> {
        let nl = n as i64;
        let mut l = s.launch_builder(&self.cast);
        l.arg(&x).arg(&y).arg(&nl);
        // SAFETY: f32_to_f16's signature.
        unsafe { l.launch(grid1(n)) }.map_err(dev_err)?;
        Ok(())
    }
}
