//! Launcher for kernels/attention.cu (forward, f32): the CUDA twin of
//! `Tensor::scaled_dot_product_attention`. Takes host tensors until CUDA tensors land; a
//! broadcast bias is uploaded at its own size and read through stride-0 strides.
use super::CudaDevice;
use crate::{DType, Error, Result, Tensor};
use cudarc::driver::{CudaSlice, LaunchConfig, PushKernelArg};

const ROWS: usize = 8; // query rows per block (one warp each), as in the kernel
const TILE: usize = 32; // keys staged per step, as in the kernel

fn dev_err(e: impl std::fmt::Display) -> Error {
    Error::Device {
        op: "attention",
        msg: e.to_string(),
    }
}

/// out = softmax(q·kᵀ·scale + bias + mask)·v on `dev`; shapes and meaning as the CPU op.
pub fn attention_fwd(
    dev: &CudaDevice,
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    bias: Option<&Tensor>,
    key_padding_mask: Option<&Tensor>,
    scale: Option<f64>,
) -> Result<Tensor> {
    let op = "attention";
    if q.rank() != 4 || k.rank() != 4 || v.rank() != 4 {
        return Err(Error::Shape {
            op,
            msg: format!(
                "q {}, k {}, v {} must be [B, H, L, D]",
                q.shape(),
                k.shape(),
                v.shape()
            ),
        });
    }
    let (b, h, lq, d) = (q.dims()[0], q.dims()[1], q.dims()[2], q.dims()[3]);
    let (lk, dv) = (k.dims()[2], v.dims()[3]);
    if k.dims() != [b, h, lk, d] || v.dims()[..3] != [b, h, lk] {
        return Err(Error::Shape {
            op,
            msg: format!(
                "q {}, k {}, v {} do not fit",
                q.shape(),
                k.shape(),
                v.shape()
            ),
        });
    }
    if d > 128 || dv > 128 {
        return Err(Error::Shape {
            op,
            msg: format!("head dims {d}/{dv}: the kernel takes at most 128"),
        });
    }
    let f32c =
        |t: &Tensor| -> Result<Vec<f32>> { t.to_dtype(DType::F32)?.contiguous()?.to_vec::<f32>() };
    let s = &dev.stream;
    let (dq, dk, dvv) = (
        s.clone_htod(&f32c(q)?).map_err(dev_err)?,
        s.clone_htod(&f32c(k)?).map_err(dev_err)?,
        s.clone_htod(&f32c(v)?).map_err(dev_err)?,
    );
    // Bias: its own data, strides of its broadcast view over [B, H, Lq, Lk].
    let (bias_buf, strides) = match bias {
        Some(t) => {
            let full = [b, h, lq, lk];
            let mut dims = vec![1usize; 4 - t.rank().min(4)];
            dims.extend_from_slice(t.dims());
            let c = t
                .reshape(dims)
                .map_err(|e| e.context("attention bias"))?
                .contiguous()?;
            let st = c
                .expand(full)
                .map_err(|e| {
                    e.context(format!("attention bias {} on scores {:?}", t.shape(), full))
                })?
                .layout()
                .strides
                .clone();
            (
                Some(s.clone_htod(&f32c(&c)?).map_err(dev_err)?),
                st.iter().map(|&x| x as i64).collect::<Vec<_>>(),
            )
        }
        None => (None, vec![0i64; 4]),
    };
    let pad_buf = match key_padding_mask {
        Some(m) => {
            if m.dims() != [b, lk] || m.dtype() != DType::U8 {
                return Err(Error::Shape {
                    op,
                    msg: format!(
                        "key_padding_mask {} {} must be u8 [{b}, {lk}]",
                        m.dtype(),
                        m.shape()
                    ),
                });
            }
            Some(
                s.clone_htod(&m.contiguous()?.to_vec::<u8>()?)
                    .map_err(dev_err)?,
            )
        }
        None => None,
    };
    let dims = AttnDims {
        b,
        h,
        lq,
        lk,
        d,
        dv,
    };
    let bias_arg = bias_buf
        .as_ref()
        .map(|bb| (bb, [strides[0], strides[1], strides[2], strides[3]]));
    let scale = scale.unwrap_or(1.0 / (d as f64).sqrt()) as f32;
    let out = attention_fwd_device(
        dev,
        &dims,
        &dq,
        &dk,
        &dvv,
        bias_arg,
        pad_buf.as_ref(),
        scale,
    )?;
    let v = s.clone_dtoh(&out).map_err(dev_err)?;
    Tensor::from_vec(v, [b, h, lq, dv])
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
