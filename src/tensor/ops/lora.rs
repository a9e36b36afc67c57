//! LoRA linear: y = x·Wᵀ + b + s·(x·Aᵀ)·Bᵀ (PEFT's Linear with one adapter, dropout 0).
//! The CPU reference for kernels' lora_matmul. The adapted weight W + s·B·A is never formed:
//! forward goes through the rank-r bottleneck t = x·Aᵀ, and backward gives
//!   dx = g·W + s·(g·B)·A,  dA = s·(g·B)ᵀ·x,  dB = s·gᵀ·t,  db = Σ g,  dW = gᵀ·x (if trained)
//! with each term computed only for the inputs that want it (W is normally frozen).
use crate::autograd::record;
use crate::backend::cuda::{CudaDevice, lora::lora_fwd_device};
use crate::{DType, Error, Result, Tensor};

/// (out, in, r) of a valid call; the checks shared by the CPU op and the CUDA path.
fn lora_dims(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    a: &Tensor,
    bm: &Tensor,
) -> Result<(usize, usize, usize)> {
    let bad = |m: String| Error::Shape {
        op: "lora_linear",
        msg: m,
    };
    if w.rank() != 2 || a.rank() != 2 || bm.rank() != 2 || x.rank() == 0 {
        return Err(bad(format!(
            "x {}, W {}, A {}, B {}: need x [..., in], W [out, in], A [r, in], B [out, r]",
            x.shape(),
            w.shape(),
            a.shape(),
            bm.shape()
        )));
    }
    let (out_f, in_f, r) = (w.dims()[0], w.dims()[1], a.dims()[0]);
    if *x.dims().last().unwrap_or(&0) != in_f
        || a.dims()[1] != in_f
        || bm.dims() != [out_f, r]
        || b.is_some_and(|b| b.dims() != [out_f])
    {
        return Err(bad(format!(
            "x {}, W {}, A {}, B {}, bias {}: need x [..., {in_f}], A [r, {in_f}], B [{out_f}, r], bias [{out_f}]",
            x.shape(),
            w.shape(),
            a.shape(),
            bm.shape(),
            b.map_or("none".to_string(), |b| b.shape().to_string())
        )));
    }
    Ok((out_f, in_f, r))
}

/// The dropout on the adapter input of `lora_linear_dropout`: the byte mask (1 = kept) and
/// the survivors' scale 1 / (1 − p).
struct Drop<'a> {
    keep: &'a Tensor,
    inv: f64,
}

impl Tensor {
    /// `self` [..., in]; `w` [out, in]; `b` [out]; `a` [r, in]; `bm` [out, r]; `scale` = s
    /// (PEFT: lora_alpha / r).
    pub fn lora_linear(
        &self,
        w: &Tensor,
        b: Option<&Tensor>,
        a: &Tensor,
        bm: &Tensor,
        scale: f64,
    ) -> Result<Tensor> {
        lora_impl(self, w, b, a, bm, scale, None)
    }

    /// PEFT's LoRA with dropout on the adapter input, fused:
    ///   y = x·Wᵀ + b + s·((x ⊙ m / (1 − p))·Aᵀ)·Bᵀ
    /// with `keep` (u8, one per element of x, 1 = kept) the dropout mask. Backward keeps x
    /// and the byte mask and recomputes the dropped input, where the composed version keeps
    /// an f32 mask and the dropped copy of x per layer (that was most of LoRA training's
    /// activation memory on SAM's decoder).
    #[allow(clippy::too_many_arguments)]
    pub fn lora_linear_dropout(
        &self,
        w: &Tensor,
        b: Option<&Tensor>,
        a: &Tensor,
        bm: &Tensor,
        scale: f64,
        keep: &Tensor,
        p: f64,
    ) -> Result<Tensor> {
        if keep.dtype() != DType::U8 || keep.dims() != self.dims() {
            return Err(Error::Shape {
                op: "lora_linear_dropout",
                msg: format!(
                    "mask {} {} must be u8 of x's shape {}",
                    keep.dtype(),
                    keep.shape(),
                    self.shape()
                ),
            });
        }
        // p = 1 keeps nothing (the adapter path is zero), as torch's dropout.
        let inv = if p < 1.0 { 1.0 / (1.0 - p) } else { 0.0 };
        lora_impl(self, w, b, a, bm, scale, Some(Drop { keep, inv }))
    }
}

/// Both LoRA ops: the adapter sees x, or x ⊙ m/(1 − p) under dropout (recomputed in
/// backward from x and the byte mask rather than stored).
fn lora_impl(
    x_in: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    a: &Tensor,
    bm: &Tensor,
    scale: f64,
    drop: Option<Drop>,
) -> Result<Tensor> {
    let (out_f, in_f, r) = lora_dims(x_in, w, b, a, bm)?;
    // The multiplier on the adapter's input, as x's dtype and shape; None without dropout.
    let mult = |dtype: DType| -> Result<Option<Tensor>> {
        drop.as_ref()
            .map(|d| d.keep.to_dtype(dtype)?.mul_scalar(d.inv))
            .transpose()
    };
    let (out, t) = {
        let _g = crate::no_grad();
        let xa = match mult(x_in.dtype())? {
            Some(m) => x_in.mul(&m)?,
            None => x_in.clone(),
        };
        let t = xa.linear(a, None)?; // [..., r]
        let y = x_in
            .linear(w, b)?
            .add(&t.linear(bm, None)?.mul_scalar(scale)?)?;
        (y, t)
    };
    let (x, w_, a_, bm_, b_) = (x_in.clone(), w.clone(), a.clone(), bm.clone(), b.cloned());
    let drop = drop.map(|d| (d.keep.clone(), d.inv));
    let name = if drop.is_some() {
        "lora_linear_dropout"
    } else {
        "lora_linear"
    };
    let mut inputs = vec![x_in, w, a, bm];
    inputs.extend(b);
    Ok(record(out, name, &inputs, move |_, g| {
        // Flatten leading dims: x2 [N, in], g2 [N, out], t2 [N, r], m2 the mask [N, in].
        let n = x.elem_count() / in_f;
        let x2 = x.reshape([n, in_f])?;
        let g2 = g.reshape([g.elem_count() / out_f, out_f])?;
        let t2 = t.reshape([t.elem_count() / r, r])?;
        let m2 = drop
            .as_ref()
            .map(|(k, inv)| k.reshape([n, in_f])?.to_dtype(g.dtype())?.mul_scalar(*inv))
            .transpose()?;
        let masked = |v: Tensor| -> Result<Tensor> {
            match &m2 {
                Some(m) => v.mul(m),
                None => Ok(v),
            }
        };
        let need_gb = x.tracks_grad() || a_.tracks_grad();
        let gb = if need_gb {
            Some(g2.matmul(&bm_)?)
        } else {
            None
        }; // [N, r] = g·B
        let dx = match (&gb, x.tracks_grad()) {
            (Some(gb), true) => Some(
                g2.matmul(&w_)?
                    .add(&masked(gb.matmul(&a_)?)?.mul_scalar(scale)?)?
                    .reshape(x.shape().clone())?,
            ),
            _ => None,
        };
        let dw = if w_.tracks_grad() {
            Some(g2.t()?.matmul(&x2)?)
        } else {
            None
        };
        let da = match (&gb, a_.tracks_grad()) {
            (Some(gb), true) => Some(gb.t()?.matmul(&masked(x2.clone())?)?.mul_scalar(scale)?),
            _ => None,
        };
        let dbm = if bm_.tracks_grad() {
            Some(g2.t()?.matmul(&t2)?.mul_scalar(scale)?)
        } else {
            None
        };
        let mut grads = vec![dx, dw, da, dbm];
        if let Some(bias) = &b_ {
            grads.push(if bias.tracks_grad() {
                Some(g2.sum(&[0], false)?)
            } else {
                None
            });
        }
        Ok(grads)
    }))
}

/// The forward on a CUDA device (kernels/lora_matmul.cu), f32: same arguments, checks and
/// result as `Tensor::lora_linear` (no autograd yet). Host tensors in and out until CUDA
/// tensors land.
pub fn lora_linear_cuda(
    dev: &CudaDevice,
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    a: &Tensor,
    bm: &Tensor,
    scale: f64,
) -> Result<Tensor> {
    let (out_f, in_f, r) = lora_dims(x, w, b, a, bm)?;
    let n = x.elem_count() / in_f.max(1);
    let derr = |e: String| Error::Device {
        op: "lora_matmul",
        msg: e,
    };
    let up = |t: &Tensor| -> Result<cudarc::driver::CudaSlice<f32>> {
        let v = t.to_dtype(DType::F32)?.contiguous()?.to_vec::<f32>()?;
        dev.stream.clone_htod(&v).map_err(|e| derr(e.to_string()))
    };
    let (dx, dw, da, dbm) = (up(x)?, up(w)?, up(a)?, up(bm)?);
    let db = b.map(up).transpose()?;
    let y = lora_fwd_device(
        dev,
        (n, out_f, in_f, r),
        &dx,
        &dw,
        db.as_ref(),
        &da,
        &dbm,
        scale as f32,
    )?;
    let v = dev.stream.clone_dtoh(&y).map_err(|e| derr(e.to_string()))?;
    let mut shape = x.dims().to_vec();
    *shape.last_mut().expect("x has rank ≥ 1 (checked)") = out_f;
    Tensor::from_vec(v, shape)
}
