//! Launcher for kernels/lora_matmul.cu (forward, f32) on device buffers. The tensor-level
//! entry (`tensor::ops::lora::lora_linear_cuda`) checks shapes and moves data.
use super::CudaDevice;
use crate::{Error, Result};
use cudarc::driver::{CudaSlice, LaunchConfig, PushKernelArg};

/// y [n, m] = x [n, k]·Wᵀ + b + scale·(x·Aᵀ)·Bᵀ with W [m, k], A [r, k], B [m, r], r ≤ 64.
#[allow(clippy::too_many_arguments)]
pub fn lora_fwd_device(
    dev: &CudaDevice,
    (n, m, k, r): (usize, usize, usize, usize),
    x: &CudaSlice<f32>,
    w: &CudaSlice<f32>,
    b: Option<&CudaSlice<f32>>,
    a: &CudaSlice<f32>,
    bm: &CudaSlice<f32>,
    scale: f32,
) -> Result<CudaSlice<f32>> {
    let err = |e: String| Error::Device {
        op: "lora_matmul",
        msg: e,
    };
    if r == 0
        || r > 64
        || x.len() != n * k
        || w.len() != m * k
        || a.len() != r * k
        || bm.len() != m * r
        || b.is_some_and(|b| b.len() != m)
    {
        return Err(Error::Shape {
            op: "lora_matmul",
            msg: format!("device buffers do not fit n={n} m={m} k={k} r={r} (r ≤ 64)"),
        });
    }
    let s = &dev.stream;
    let mut y = s
        .alloc_zeros::<f32>(n * m)
        .map_err(|e| err(e.to_string()))?;
    if n == 0 || m == 0 {
        return Ok(y);
    }
    let f = dev.function("lora_matmul", "lora_fwd_f32")?;
    let cfg = LaunchConfig {
        grid_dim: (m.div_ceil(64) as u32, n.div_ceil(64) as u32, 1),
        block_dim: (16, 16, 1),
        shared_mem_bytes: 0,
    };
    let (ni, mi, ki, ri) = (n as i32, m as i32, k as i32, r as i32);
    let null = 0u64;
    let mut l = s.launch_builder(&f);
    l.arg(x).arg(w);
    match b {
        Some(b) => l.arg(b),
        None => l.arg(&null),
    };
    l.arg(a)
        .arg(bm)
        .arg(&ni)
        .arg(&mi)
        .arg(&ki)
        .arg(&ri)
        .arg(&scale)
        .arg(&mut y);
    // SAFETY: arguments match lora_fwd_f32's signature in order and type (a null u64 for
    // an absent bias); buffer sizes checked above.
    unsafe { l.launch(cfg) }.map_err(|e| err(e.to_string()))?;
    Ok(y)
}
