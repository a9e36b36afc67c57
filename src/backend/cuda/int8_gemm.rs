//! Launchers for kernels/int8_gemm.cu (dp4a path). Same contract as the CPU reference
//! `backend::cpu::int8_gemm` (module docs there); `int8_gemm_cuda` takes and returns host
//! slices, `int8_gemm_device` works on packed device buffers (the engine keeps weights
//! resident).
use super::CudaDevice;
use crate::backend::cpu::int8_gemm::{Epilogue, Int8Out, check};
use crate::{Error, Result};
use cudarc::driver::{CudaSlice, LaunchConfig, PushKernelArg};

fn dev_err(e: impl std::fmt::Display) -> Error {
    Error::Device {
        op: "int8_gemm",
        msg: e.to_string(),
    }
}

/// `rows × k` s8 values → `rows × ceil(k/4)` little-endian int32 words, each row zero
/// padded (zeros add nothing to the dot products). `__dp4a` reads byte 0 of a word as the
/// lowest byte, which is the first value in memory order.
pub fn pack_k4(v: &[i8], rows: usize, k: usize) -> Vec<i32> {
    let k4 = k.div_ceil(4);
    let mut out = vec![0i32; rows * k4];
    if k == 0 {
        return out;
    }
    for (src, dst) in v.chunks_exact(k).zip(out.chunks_exact_mut(k4)) {
        for (w, bytes) in dst.iter_mut().zip(src.chunks(4)) {
            let mut b = [0u8; 4];
            for (d, &s) in b.iter_mut().zip(bytes) {
                *d = s as u8;
            }
            *w = i32::from_le_bytes(b);
        }
    }
    out
}

/// Output element type on the device.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum OutKind {
    F32,
    F16,
    S8 { inv_scale: f32 },
}

/// Launch on packed buffers (`a` `[m, ceil(k/4)]`, `b` `[n, ceil(k/4)]` words from
/// [`pack_k4`]); `out` must hold `m·n` elements of `kind` (4, 2 or 1 bytes each).
#[allow(clippy::too_many_arguments)]
pub fn int8_gemm_device(
    dev: &CudaDevice,
    (m, n, k): (usize, usize, usize),
    a: &CudaSlice<i32>,
    b: &CudaSlice<i32>,
    scale: &CudaSlice<f32>,
    bias: Option<&CudaSlice<f32>>,
    act: i32,
    kind: OutKind,
    out: &mut CudaSlice<u8>,
) -> Result<()> {
    let k4 = k.div_ceil(4);
    let bytes = match kind {
        OutKind::F32 => 4,
        OutKind::F16 => 2,
        OutKind::S8 { .. } => 1,
    };
    if a.len() != m * k4
        || b.len() != n * k4
        || scale.len() != n
        || bias.is_some_and(|b| b.len() != n)
        || out.len() != m * n * bytes
        || i32::try_from(m.max(n).max(k4)).is_err()
    {
        return Err(Error::Shape {
            op: "int8_gemm",
            msg: format!("device buffers do not fit m={m} n={n} k={k} (K padded to {k4} words)"),
        });
    }
    if m == 0 || n == 0 {
        return Ok(());
    }
    let f = dev.function("int8_gemm", "int8_gemm_dp4a")?;
    let cfg = LaunchConfig {
        grid_dim: (n.div_ceil(64) as u32, m.div_ceil(64) as u32, 1),
        block_dim: (16, 16, 1),
        shared_mem_bytes: 0,
    };
    let (mi, ni, k4i) = (m as i32, n as i32, k4 as i32);
    let (code, inv) = match kind {
        OutKind::F32 => (0i32, 0f32),
        OutKind::F16 => (1, 0.0),
        OutKind::S8 { inv_scale } => (2, inv_scale),
    };
    let null = 0u64;
    let mut l = dev.stream.launch_builder(&f);
    l.arg(a).arg(b).arg(&mi).arg(&ni).arg(&k4i).arg(scale);
    match bias {
        Some(b) => l.arg(b),
        None => l.arg(&null),
    };
    l.arg(&act).arg(&code).arg(&inv).arg(out);
    // SAFETY: arguments match int8_gemm_dp4a's signature in order and type (a null u64 for
    // an absent bias); buffer sizes checked above.
    unsafe { l.launch(cfg) }.map_err(dev_err)?;
    Ok(())
}

/// Host slices in, host slice out: packs, uploads, launches, downloads.
pub fn int8_gemm_cuda(
    dev: &CudaDevice,
    a: &[i8],
    b: &[i8],
    (m, n, k): (usize, usize, usize),
    epi: &Epilogue,
    out: Int8Out,
) -> Result<()> {
    let out_len = match &out {
        Int8Out::F32(o) => o.len(),
        Int8Out::F16(o) => o.len(),
        Int8Out::S8 { out, .. } => out.len(),
    };
    check(a.len(), b.len(), (m, n, k), epi, out_len)?;
    let s = &dev.stream;
    let ad = s.clone_htod(&pack_k4(a, m, k)).map_err(dev_err)?;
    let bd = s.clone_htod(&pack_k4(b, n, k)).map_err(dev_err)?;
    let sd = s.clone_htod(epi.scale).map_err(dev_err)?;
    let bias = epi
        .bias
        .map(|b| s.clone_htod(b))
        .transpose()
        .map_err(dev_err)?;
    let kind = match &out {
        Int8Out::F32(_) => OutKind::F32,
        Int8Out::F16(_) => OutKind::F16,
        Int8Out::S8 { inv_scale, .. } => OutKind::S8 {
            inv_scale: *inv_scale,
        },
    };
    let bytes = match kind {
        OutKind::F32 => 4,
        OutKind::F16 => 2,
        OutKind::S8 { .. } => 1,
    };
    let mut od = s.alloc_zeros::<u8>(m * n * bytes).map_err(dev_err)?;
    int8_gemm_device(
        dev,
        (m, n, k),
        &ad,
        &bd,
        &sd,
        bias.as_ref(),
        epi.act.code(),
        kind,
        &mut od,
    )?;
    let host: Vec<u8> = s.clone_dtoh(&od).map_err(dev_err)?;
    match out {
        Int8Out::F32(o) => o.copy_from_slice(bytemuck::cast_slice(&host)),
        Int8Out::F16(o) => {
            for (d, c) in o.iter_mut().zip(host.chunks_exact(2)) {
                *d = half::f16::from_bits(u16::from_le_bytes([c[0], c[1]]));
            }
        }
        Int8Out::S8 { out, .. } => {
            for (d, &c) in out.iter_mut().zip(&host) {
                *d = c as i8;
            }
        }
    }
    Ok(())
}
