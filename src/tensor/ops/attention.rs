//! Scaled dot-product attention, the CPU reference for kernels' attention:
//!   softmax(q·kᵀ·scale + bias + mask) · v
//! with an optional additive bias broadcastable to [B, H, Lq, Lk] (SAM's decomposed
//! relative position, Swin's relative bias + shifted-window mask) and an optional key
//! padding mask [B, Lk] (non-zero = ignore that key). Composed from differentiable ops, so
//! backward is exact; it materialises the [Lq, Lk] scores, which the fused kernel avoids.
//! Like torch, a query whose keys are all masked gets NaN.
use crate::{DType, Error, Result, Tensor};

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
        let op = "attention";
        let q = self;
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
        let (b, h, d) = (q.dims()[0], q.dims()[1], q.dims()[3]);
        let lk = k.dims()[2];
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
            let m = m.reshape([b, 1, 1, lk])?;
            let ninf = Tensor::full(f64::NEG_INFINITY, (), s.dtype());
            s = Tensor::where_cond(&m, &ninf, &s)?;
        }
        s.softmax(-1)?.matmul(v)
    }
}
