//! Scaled dot-product attention, the CPU reference for kernels' attention:
//!   softmax(q·kᵀ·scale + bias + mask) · v
//! with an optional additive bias broadcastable to [B, H, Lq, Lk] (SAM's decomposed
//! relative position, Swin's relative bias + shifted-window mask) and an optional key
//! padding mask [B, Lk] (non-zero = ignore that key). Composed from differentiable ops, so
//! backward is exact; it materialises the [Lq, Lk] scores, which the fused kernel avoids.
//! Like torch, a query whose keys are all masked gets NaN.
use crate::backend::cuda::CudaDevice;
use crate::backend::cuda::attention::{AttnDims, attention_fwd_device, dev_err};
use crate::{DType, Error, Result, Tensor};

/// (B, H, Lq, Lk, D, Dv) of a valid call; the checks shared by the CPU op and the CUDA path.
pub(crate) fn attention_dims(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    key_padding_mask: Option<&Tensor>,
) -> Result<[usize; 6]> {
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
                "q {}, k {}, v {} do not fit (k must be [B, H, Lk, D], v [B, H, Lk, Dv])",
                q.shape(),
                k.shape(),
                v.shape()
            ),
        });
    }
    if let Some(m) = key_padding_mask
        && (m.dims() != [b, lk] || m.dtype() != DType::U8)
    {
        return Err(Error::Shape {
            op,
            msg: format!(
                "key_padding_mask {} {} must be u8 [{b}, {lk}]",
                m.dtype(),
                m.shape()
            ),
        });
    }
    Ok([b, h, lq, lk, d, dv])
}

impl Tensor {
    /// `self` = q [B, H, Lq, D]; `k` [B, H, Lk, D]; `v` [B, H, Lk, Dv] → [B, H, Lq, Dv].
    /// `scale` defaults to 1/√D.
    pub fn scaled_dot_product_attention(
        &self,
        k: &Tensor,
        v: &Tensor,
        bias: Option<&Tensor>,
        key_padding_mask: Option<&Tensor>,
        scale: Option<f64>,
    ) -> Result<Tensor> {
        let q = self;
        let [b, _, _, lk, d, _] = attention_dims(q, k, v, key_padding_mask)?;
        let scale = scale.unwrap_or(1.0 / (d as f64).sqrt());
        let mut s = q.matmul(&k.transpose(2, 3)?)?.mul_scalar(scale)?;
        if let Some(bias) = bias {
            s = s.add(bias).map_err(|e| {
                e.context(format!(
                    "attention bias {} on scores {}",
                    bias.shape(),
                    s.shape()
                ))
            })?;
        }
        if let Some(m) = key_padding_mask {
            let m = m.reshape([b, 1, 1, lk])?;
            let ninf = Tensor::full(f64::NEG_INFINITY, (), s.dtype());
            s = Tensor::where_cond(&m, &ninf, &s)?;
        }
        s.softmax(-1)?.matmul(v)
    }
}

/// The forward on a CUDA device (kernels/attention.cu), f32: same arguments, checks and
/// result as `Tensor::scaled_dot_product_attention`. Host tensors in and out until CUDA
/// tensors land; a broadcast bias is uploaded at its own size and read through stride-0
/// strides.
/// out = softmax(q·kᵀ·scale + bias + mask)·v on `dev`; shapes and meaning as the CPU op.
pub fn attention_cuda(
    dev: &CudaDevice,
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    bias: Option<&Tensor>,
    key_padding_mask: Option<&Tensor>,
    scale: Option<f64>,
) -> Result<Tensor> {
    let op = "attention";
    let [b, h, lq, lk, d, dv] = attention_dims(q, k, v, key_padding_mask)?;
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
        Some(m) => Some(
            s.clone_htod(&m.contiguous()?.to_vec::<u8>()?)
                .map_err(dev_err)?,
        ),
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
