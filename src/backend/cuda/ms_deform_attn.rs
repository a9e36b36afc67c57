//! Launchers for kernels/ms_deform_attn.cu (forward and backward, f32) on device buffers.
//! The tensor-level entries (`tensor::ops::ms_deform_attn::ms_deform_attn_cuda` and
//! `ms_deform_attn_backward_cuda`) check shapes and move data; this layer only launches.
use super::CudaDevice;
use crate::backend::cpu::ms_deform_attn::MsdaGeom;
use crate::{Error, Result};
use cudarc::driver::{CudaSlice, LaunchConfig, PushKernelArg};

const BLOCK: u32 = 256;

pub(crate) fn dev_err(e: impl std::fmt::Display) -> Error {
    Error::Device {
        op: "ms_deform_attn",
        msg: e.to_string(),
    }
}

fn check(g: &MsdaGeom, bufs: &[(&CudaSlice<f32>, usize)]) -> Result<()> {
    let fits_i32 = [g.b, g.s, g.heads, g.d, g.q, g.levels.len(), g.p]
        .iter()
        .all(|&n| i32::try_from(n).is_ok());
    if !fits_i32 || bufs.iter().any(|(b, n)| b.len() != *n) {
        return Err(Error::Shape {
            op: "ms_deform_attn",
            msg: format!("device buffers do not fit {g:?}"),
        });
    }
    Ok(())
}

/// The levels' (height, width) pairs and first rows, as the kernels' int arrays.
fn level_tables(dev: &CudaDevice, g: &MsdaGeom) -> Result<(CudaSlice<i32>, CudaSlice<i32>)> {
    let hw: Vec<i32> = g
        .levels
        .iter()
        .flat_map(|&(h, w)| [h as i32, w as i32])
        .collect();
    let starts: Vec<i32> = g.starts.iter().map(|&s| s as i32).collect();
    let s = &dev.stream;
    Ok((
        s.clone_htod(&hw).map_err(dev_err)?,
        s.clone_htod(&starts).map_err(dev_err)?,
    ))
}

/// The kernels' trailing size arguments: B, S, H, D, Q, L, P.
fn sizes(g: &MsdaGeom) -> [i32; 7] {
    [g.b, g.s, g.heads, g.d, g.q, g.levels.len(), g.p].map(|n| n as i32)
}

fn grid(threads: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (threads.div_ceil(BLOCK as usize) as u32, 1, 1),
        block_dim: (BLOCK, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// Output [b, q, h, d] on the device; buffers contiguous f32 in the CPU op's layouts.
pub fn msda_fwd_device(
    dev: &CudaDevice,
    g: &MsdaGeom,
    value: &CudaSlice<f32>,
    loc: &CudaSlice<f32>,
    attn: &CudaSlice<f32>,
) -> Result<CudaSlice<f32>> {
    let n_attn = g.b * g.q * g.heads * g.levels.len() * g.p;
    check(
        g,
        &[
            (value, g.b * g.s * g.heads * g.d),
            (loc, 2 * n_attn),
            (attn, n_attn),
        ],
    )?;
    let s = &dev.stream;
    let n_out = g.b * g.q * g.heads * g.d;
    let mut out = s.alloc_zeros::<f32>(n_out).map_err(dev_err)?;
    if n_out == 0 {
        return Ok(out);
    }
    let (hw, starts) = level_tables(dev, g)?;
    let f = dev.function("ms_deform_attn", "msda_fwd_f32")?;
    let sz = sizes(g);
    let mut l = s.launch_builder(&f);
    l.arg(value).arg(&hw).arg(&starts).arg(loc).arg(attn);
    for v in &sz {
        l.arg(v);
    }
    l.arg(&mut out);
    // SAFETY: arguments match msda_fwd_f32's signature in order and type; buffer sizes
    // checked above and the level tables hold L entries each.
    unsafe { l.launch(grid(n_out)) }.map_err(dev_err)?;
    Ok(out)
}

/// Gradients of sum(out · gout): [d value, d loc, d attn] on the device, same layouts.
pub fn msda_bwd_device(
    dev: &CudaDevice,
    g: &MsdaGeom,
    value: &CudaSlice<f32>,
    loc: &CudaSlice<f32>,
    attn: &CudaSlice<f32>,
    gout: &CudaSlice<f32>,
) -> Result<[CudaSlice<f32>; 3]> {
    let n_attn = g.b * g.q * g.heads * g.levels.len() * g.p;
    let (n_val, n_out) = (g.b * g.s * g.heads * g.d, g.b * g.q * g.heads * g.d);
    check(
        g,
        &[
            (value, n_val),
            (loc, 2 * n_attn),
            (attn, n_attn),
            (gout, n_out),
        ],
    )?;
    let s = &dev.stream;
    let mut dv = s.alloc_zeros::<f32>(n_val).map_err(dev_err)?;
    let mut dl = s.alloc_zeros::<f32>(2 * n_attn).map_err(dev_err)?;
    let mut da = s.alloc_zeros::<f32>(n_attn).map_err(dev_err)?;
    if n_out == 0 || n_attn == 0 {
        return Ok([dv, dl, da]);
    }
    let (hw, starts) = level_tables(dev, g)?;
    let sz = sizes(g);

    let f = dev.function("ms_deform_attn", "msda_bwd_value_f32")?;
    let mut l = s.launch_builder(&f);
    l.arg(&hw).arg(&starts).arg(loc).arg(attn).arg(gout);
    for v in &sz {
        l.arg(v);
    }
    l.arg(&mut dv);
    // SAFETY: arguments match msda_bwd_value_f32's signature; sizes checked above; dv is
    // zeroed, as the kernel's atomicAdds need.
    unsafe { l.launch(grid(n_out)) }.map_err(dev_err)?;

    let f = dev.function("ms_deform_attn", "msda_bwd_sample_f32")?;
    let mut l = s.launch_builder(&f);
    l.arg(value)
        .arg(&hw)
        .arg(&starts)
        .arg(loc)
        .arg(attn)
        .arg(gout);
    for v in &sz {
        l.arg(v);
    }
    l.arg(&mut dl).arg(&mut da);
    // SAFETY: arguments match msda_bwd_sample_f32's signature; sizes checked above; one
    // warp (32 threads) per (b, q, h).
    unsafe { l.launch(grid(32 * g.b * g.q * g.heads)) }.map_err(dev_err)?;
    Ok([dv, dl, da])
}
