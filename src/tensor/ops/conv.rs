//! conv2d and conv_transpose2d (NCHW, PyTorch semantics). Both share the kernels in
//! `backend::cpu::conv`: conv_transpose2d's forward is conv2d's input gradient and its
//! backward is conv2d's forward and weight gradient.
use super::{restore, to_compute};
use crate::autograd::record;
use crate::backend::cpu::conv::{
    ConvGeom, channel_sums, conv2d_backward_input, conv2d_backward_weight, conv2d_forward,
};
use crate::tensor::{Float, StorageElement};
use crate::{Error, Result, Tensor, dispatch_float};

/// Options of `Tensor::conv2d` (torch.nn.functional.conv2d's stride/padding/dilation/groups).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dParams {
    pub stride: (usize, usize),
    pub padding: (usize, usize),
    pub dilation: (usize, usize),
    pub groups: usize,
}

impl Default for Conv2dParams {
    fn default() -> Self {
        Conv2dParams {
            stride: (1, 1),
            padding: (0, 0),
            dilation: (1, 1),
            groups: 1,
        }
    }
}

/// Options of `Tensor::conv_transpose2d` (torch.nn.functional.conv_transpose2d).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvTranspose2dParams {
    pub stride: (usize, usize),
    pub padding: (usize, usize),
    pub output_padding: (usize, usize),
    pub dilation: (usize, usize),
    pub groups: usize,
}

impl Default for ConvTranspose2dParams {
    fn default() -> Self {
        ConvTranspose2dParams {
            stride: (1, 1),
            padding: (0, 0),
            output_padding: (0, 0),
            dilation: (1, 1),
            groups: 1,
        }
    }
}

fn shape_err(op: &'static str, msg: String) -> Error {
    Error::Shape { op, msg }
}

/// Ranks, dtypes and the positive parameters shared by both convolutions.
fn check_common(
    op: &'static str,
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    stride: (usize, usize),
    dil: (usize, usize),
    groups: usize,
) -> Result<()> {
    if x.rank() != 4 || w.rank() != 4 {
        return Err(shape_err(
            op,
            format!(
                "expected input [N, C, H, W] and 4-D weight, got input {} and weight {}",
                x.shape(),
                w.shape()
            ),
        ));
    }
    for t in std::iter::once(w).chain(bias) {
        if t.dtype() != x.dtype() {
            return Err(Error::DType {
                op,
                msg: format!(
                    "input is {} {} but weight/bias is {} {}",
                    x.dtype(),
                    x.shape(),
                    t.dtype(),
                    t.shape()
                ),
            });
        }
    }
    if !x.dtype().is_float() {
        return Err(Error::DType {
            op,
            msg: format!("expected a float input, got {}", x.dtype()),
        });
    }
    if groups == 0 || stride.0 == 0 || stride.1 == 0 || dil.0 == 0 || dil.1 == 0 {
        return Err(shape_err(
            op,
            format!(
                "groups, stride and dilation must be positive, got groups={groups} \
                 stride={stride:?} dilation={dil:?} (input {}, weight {})",
                x.shape(),
                w.shape()
            ),
        ));
    }
    let wd = w.dims();
    if wd[2] == 0 || wd[3] == 0 {
        return Err(shape_err(
            op,
            format!("empty kernel in weight {}", w.shape()),
        ));
    }
    Ok(())
}

fn check_bias(op: &'static str, bias: Option<&Tensor>, channels: usize) -> Result<()> {
    match bias {
        Some(b) if b.dims() != [channels] => Err(shape_err(
            op,
            format!("bias {} should be [{channels}]", b.shape()),
        )),
        _ => Ok(()),
    }
}

/// Input/weight/bias shapes of conv2d → its geometry, or an error naming the shapes.
fn conv2d_geom(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    p: &Conv2dParams,
) -> Result<ConvGeom> {
    const OP: &str = "conv2d";
    check_common(OP, x, w, bias, p.stride, p.dilation, p.groups)?;
    let (xd, wd, g) = (x.dims(), w.dims(), p.groups);
    let (n, c, h, wi) = (xd[0], xd[1], xd[2], xd[3]);
    let (o, kh, kw) = (wd[0], wd[2], wd[3]);
    if c % g != 0 || o % g != 0 || wd[1] * g != c {
        return Err(shape_err(
            OP,
            format!(
                "input {} has {c} channels but weight {} with groups={g} expects {} \
                 (and {o} output channels divisible by {g})",
                x.shape(),
                w.shape(),
                wd[1] * g
            ),
        ));
    }
    check_bias(OP, bias, o)?;
    let (ekh, ekw) = (p.dilation.0 * (kh - 1) + 1, p.dilation.1 * (kw - 1) + 1);
    let (hp, wp) = (h + 2 * p.padding.0, wi + 2 * p.padding.1);
    if ekh > hp || ekw > wp {
        return Err(shape_err(
            OP,
            format!(
                "kernel {kh}x{kw} (dilated {ekh}x{ekw}) of weight {} is larger than the padded \
                 input {hp}x{wp} of input {}",
                w.shape(),
                x.shape()
            ),
        ));
    }
    Ok(ConvGeom {
        n,
        c,
        h,
        w: wi,
        o,
        kh,
        kw,
        stride: p.stride,
        pad: p.padding,
        dil: p.dilation,
        groups: g,
        ho: (hp - ekh) / p.stride.0 + 1,
        wo: (wp - ekw) / p.stride.1 + 1,
    })
}

/// conv_transpose2d shapes → the geometry of the conv2d whose input gradient it is
/// (that conv maps the transposed output `[n, c_out, H, W]` back to `[n, c_in, h, w]`).
fn conv_transpose2d_geom(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    p: &ConvTranspose2dParams,
) -> Result<ConvGeom> {
    const OP: &str = "conv_transpose2d";
    check_common(OP, x, w, bias, p.stride, p.dilation, p.groups)?;
    let (xd, wd, g) = (x.dims(), w.dims(), p.groups);
    let (n, cin, h, wi) = (xd[0], xd[1], xd[2], xd[3]);
    let (kh, kw) = (wd[2], wd[3]);
    if wd[0] != cin || cin % g != 0 {
        return Err(shape_err(
            OP,
            format!(
                "input {} has {cin} channels but weight {} expects {} (groups={g} must divide them)",
                x.shape(),
                w.shape(),
                wd[0]
            ),
        ));
    }
    let cout = wd[1] * g;
    check_bias(OP, bias, cout)?;
    let (op_, s, d) = (p.output_padding, p.stride, p.dilation);
    if (op_.0 >= s.0 && op_.0 >= d.0) || (op_.1 >= s.1 && op_.1 >= d.1) {
        return Err(shape_err(
            OP,
            format!(
                "output_padding {op_:?} must be smaller than stride {s:?} or dilation {d:?} \
                 (input {}, weight {})",
                x.shape(),
                w.shape()
            ),
        ));
    }
    let size = |i: usize, s: usize, pad: usize, d: usize, k: usize, op: usize| {
        (i as isize - 1) * s as isize - 2 * pad as isize + (d * (k - 1) + op + 1) as isize
    };
    let (ho, wo) = (
        size(h, s.0, p.padding.0, d.0, kh, op_.0),
        size(wi, s.1, p.padding.1, d.1, kw, op_.1),
    );
    if ho <= 0 || wo <= 0 || h == 0 || wi == 0 {
        return Err(shape_err(
            OP,
            format!(
                "output size {ho}x{wo} is not positive for input {}, weight {} and padding {:?}",
                x.shape(),
                w.shape(),
                p.padding
            ),
        ));
    }
    Ok(ConvGeom {
        n,
        c: cout,
        h: ho as usize,
        w: wo as usize,
        o: cin,
        kh,
        kw,
        stride: s,
        pad: p.padding,
        dil: d,
        groups: g,
        ho: h,
        wo: wi,
    })
}

/// Runs `f` on the row-major elements of two compute-dtype tensors.
fn with2<T: StorageElement, R>(
    a: &Tensor,
    b: &Tensor,
    f: impl FnOnce(&[T], &[T]) -> R,
) -> Result<R> {
    a.with_slice(|x: &[T]| b.with_slice(|y: &[T]| f(x, y)))?
}

/// Adds `bias[ch]` to every pixel of channel `ch` of `[n, ch, p]` data.
fn add_channel_bias<T: Float>(y: &mut [T], bias: &[T], p: usize) {
    if p == 0 {
        return;
    }
    for (i, plane) in y.chunks_mut(p).enumerate() {
        let b = bias[i % bias.len()];
        plane.iter_mut().for_each(|v| *v += b);
    }
}

impl Tensor {
    /// 2-D convolution (cross-correlation) of `self` `[N, C, H, W]` with `weight`
    /// `[O, C/groups, kh, kw]` plus an optional `bias` `[O]`, like torch's conv2d.
    /// Differentiable in all three.
    pub fn conv2d(
        &self,
        weight: &Tensor,
        bias: Option<&Tensor>,
        p: Conv2dParams,
    ) -> Result<Tensor> {
        let geom = conv2d_geom(self, weight, bias, &p)?;
        let dtype = self.dtype();
        let xc = to_compute(&self.detach())?;
        let wc = to_compute(&weight.detach())?;
        let bc = bias.map(|b| to_compute(&b.detach())).transpose()?;
        let out = dispatch_float!(xc.dtype(), "conv2d", T => {
            let bv = bc.as_ref().map(|b| b.to_vec::<T>()).transpose()?;
            let v = with2(&xc, &wc, |x: &[T], w: &[T]| conv2d_forward(x, w, bv.as_deref(), &geom))?;
            Tensor::from_vec(v, [geom.n, geom.o, geom.ho, geom.wo])?
        });
        let out = restore(out, dtype)?;
        let need = (
            self.tracks_grad(),
            weight.tracks_grad(),
            bias.is_some_and(|b| b.tracks_grad()),
        );
        let (xs, ws) = (self.shape().clone(), weight.shape().clone());
        let wdt = weight.dtype();
        let mut inputs = vec![self, weight];
        inputs.extend(bias);
        let has_bias = bias.is_some();
        Ok(record(out, "conv2d", &inputs, move |_, g| {
            let gc = to_compute(g)?;
            let (mut gx, mut gw, mut gb) = (None, None, None);
            dispatch_float!(gc.dtype(), "conv2d_backward", T => {
                if need.0 {
                    let v = with2(&gc, &wc, |g: &[T], w: &[T]| conv2d_backward_input(g, w, &geom))?;
                    gx = Some(restore(Tensor::from_vec(v, xs.clone())?, dtype)?);
                }
                if need.1 {
                    let v = with2(&xc, &gc, |x: &[T], g: &[T]| conv2d_backward_weight(x, g, &geom))?;
                    gw = Some(restore(Tensor::from_vec(v, ws.clone())?, wdt)?);
                }
                if need.2 {
                    let v = gc.with_slice(|g: &[T]| channel_sums(g, geom.n, geom.o, geom.p()))?;
                    gb = Some(restore(Tensor::from_vec(v, geom.o)?, dtype)?);
                }
            });
            let mut grads = vec![gx, gw];
            if has_bias {
                grads.push(gb);
            }
            Ok(grads)
        }))
    }

    /// Transposed 2-D convolution of `self` `[N, C_in, H, W]` with `weight`
    /// `[C_in, C_out/groups, kh, kw]` plus an optional `bias` `[C_out]`, like torch's
    /// conv_transpose2d. Output size `(H-1)·stride - 2·padding + dilation·(k-1) +
    /// output_padding + 1`. Differentiable in all three.
    pub fn conv_transpose2d(
        &self,
        weight: &Tensor,
        bias: Option<&Tensor>,
        p: ConvTranspose2dParams,
    ) -> Result<Tensor> {
        let geom = conv_transpose2d_geom(self, weight, bias, &p)?;
        let dtype = self.dtype();
        let xc = to_compute(&self.detach())?;
        let wc = to_compute(&weight.detach())?;
        let bc = bias.map(|b| to_compute(&b.detach())).transpose()?;
        let out = dispatch_float!(xc.dtype(), "conv_transpose2d", T => {
            let mut v = with2(&xc, &wc, |x: &[T], w: &[T]| conv2d_backward_input(x, w, &geom))?;
            if let Some(b) = &bc {
                add_channel_bias(&mut v, &b.to_vec::<T>()?, geom.hw());
            }
            Tensor::from_vec(v, [geom.n, geom.c, geom.h, geom.w])?
        });
        let out = restore(out, dtype)?;
        let need = (
            self.tracks_grad(),
            weight.tracks_grad(),
            bias.is_some_and(|b| b.tracks_grad()),
        );
        let (xs, ws) = (self.shape().clone(), weight.shape().clone());
        let wdt = weight.dtype();
        let mut inputs = vec![self, weight];
        inputs.extend(bias);
        let has_bias = bias.is_some();
        Ok(record(out, "conv_transpose2d", &inputs, move |_, g| {
            let gc = to_compute(g)?;
            let (mut gx, mut gw, mut gb) = (None, None, None);
            dispatch_float!(gc.dtype(), "conv_transpose2d_backward", T => {
                if need.0 {
                    let v = with2(&gc, &wc, |g: &[T], w: &[T]| conv2d_forward(g, w, None, &geom))?;
                    gx = Some(restore(Tensor::from_vec(v, xs.clone())?, dtype)?);
                }
                if need.1 {
                    let v = with2(&gc, &xc, |g: &[T], x: &[T]| conv2d_backward_weight(g, x, &geom))?;
                    gw = Some(restore(Tensor::from_vec(v, ws.clone())?, wdt)?);
                }
                if need.2 {
                    let v = gc.with_slice(|g: &[T]| channel_sums(g, geom.n, geom.c, geom.hw()))?;
                    gb = Some(restore(Tensor::from_vec(v, geom.c)?, dtype)?);
                }
            });
            let mut grads = vec![gx, gw];
            if has_bias {
                grads.push(gb);
            }
            Ok(grads)
        }))
    }
}
