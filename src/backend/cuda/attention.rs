//! Launcher for kernels/attention.cu (forward, f32) on device buffers. The tensor-level
//! entry (`tensor::ops::attention::attention_cuda`) checks shapes and moves data; this layer
//! only launches, so the backend never depends on the tensor layer.
use super::CudaDevice;
use crate::{Error, Result};
use cudarc::driver::{CudaSlice, LaunchConfig, PushKernelArg};

const ROWS: usize = 8; // query rows per block (one warp each), as in the kernel
const TILE: usize = 32; // keys staged per step, as in the kernel

pub(crate) fn dev_err(e: impl std::fmt::Display) -> Error {
    Error::Device {
        op: "attention",
        msg: e.to_string(),
    }
}

/// Sizes of one attention call: q [b, h, lq, d], k [b, h, lk, d], v [b, h, lk, dv].
#[derive(Clone, Copy, Debug)]
pub struct AttnDims {
    pub b: usize,
    pub h: usize,
    pub lq: usize,
    pub lk: usize,
    pub d: usize,
    pub dv: usize,
}

/// The launch on device-resident buffers (f32, contiguous). `bias` is its buffer and its
/// strides over [b, h, lq, lk]; the caller guarantees the buffers match `dims`.
#[allow(clippy::too_many_arguments)]
pub fn attention_fwd_device(
    dev: &CudaDevice,
    dims: &AttnDims,
    dq: &CudaSlice<f32>,
    dk: &CudaSlice<f32>,
    dvv: &CudaSlice<f32>,
    bias: Option<(&CudaSlice<f32>, [i64; 4])>,
    pad: Option<&CudaSlice<u8>>,
    scale: f32,
) -> Result<CudaSlice<f32>> {
    let AttnDims {
        b,
        h,
        lq,
        lk,
        d,
        dv,
    } = *dims;
    if d > 128
        || dv > 128
        || dq.len() != b * h * lq * d
        || dk.len() != b * h * lk * d
        || dvv.len() != b * h * lk * dv
    {
        return Err(Error::Shape {
            op: "attention",
            msg: format!("device buffers do not fit {dims:?} (head dims ≤ 128)"),
        });
    }
    let s = &dev.stream;
    let mut out = s.alloc_zeros::<f32>(b * h * lq * dv).map_err(dev_err)?;
    if b * h * lq == 0 {
        return Ok(out);
    }
    let f = dev.function("attention", "attention_fwd_f32")?;
    let smem = ((TILE * (d + 1) + TILE * dv + ROWS * d) * 4) as u32;
    let cfg = LaunchConfig {
        grid_dim: (lq.div_ceil(ROWS) as u32, (b * h) as u32, 1),
        block_dim: ((ROWS * 32) as u32, 1, 1),
        shared_mem_bytes: smem,
    };
    let (hh, lqi, lki, di, dvi) = (h as i32, lq as i32, lk as i32, d as i32, dv as i32);
    let strides = bias.map_or([0i64; 4], |(_, st)| st);
    // Null pointers for an absent bias / mask.
    let null = 0u64;
    let mut l = s.launch_builder(&f);
    l.arg(dq).arg(dk).arg(dvv);
    match bias {
        Some((bb, _)) => l.arg(bb),
        None => l.arg(&null),
    };
    l.arg(&strides[0])
        .arg(&strides[1])
        .arg(&strides[2])
        .arg(&strides[3]);
    match pad {
        Some(pb) => l.arg(pb),
        None => l.arg(&null),
    };
    l.arg(&hh)
        .arg(&lqi)
        .arg(&lki)
        .arg(&di)
        .arg(&dvi)
        .arg(&scale)
        .arg(&mut out);
    // SAFETY: arguments match attention_fwd_f32's signature in order and type (device
    // pointers or a null u64 for the optional ones); buffer sizes checked above; shared
    // memory size follows the kernel's layout.
    unsafe { l.launch(cfg) }.map_err(dev_err)?;
    Ok(out)
}
