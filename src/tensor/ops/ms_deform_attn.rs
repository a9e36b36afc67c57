//! Multi-scale deformable attention (Deformable DETR, Grounding DINO) as one op: the
//! CPU reference for kernels/ms_deform_attn.cu. It equals transformers'
//! MultiScaleDeformableAttention pure-PyTorch path (per-level grid_sample, bilinear, zeros,
//! align_corners=False, then a weighted sum), which `ms_deform_attn_composed` rebuilds from
//! our ops for tests and benches, without materialising the per-level samples.
use super::{restore, to_compute};
use crate::autograd::record;
use crate::backend::cpu::ms_deform_attn::{
    MsdaGeom, MsdaWant, ms_deform_attn as msda_fwd, ms_deform_attn_backward as msda_bwd,
};
use crate::backend::cuda::CudaDevice;
use crate::backend::cuda::ms_deform_attn::{dev_err, msda_bwd_device, msda_fwd_device};
use crate::{DType, Error, Result, Tensor, dispatch_float};

const OP: &str = "ms_deform_attn";

/// The checks shared by the fused op, the composed reference and the CUDA path.
pub(crate) fn msda_geom(
    value: &Tensor,
    spatial_shapes: &[(usize, usize)],
    loc: &Tensor,
    attn: &Tensor,
) -> Result<MsdaGeom> {
    let shapes = || {
        format!(
            "value {}, sampling_locations {}, attention_weights {}, spatial_shapes {:?}",
            value.shape(),
            loc.shape(),
            attn.shape(),
            spatial_shapes
        )
    };
    let bad = |why: &str| Error::Shape {
        op: OP,
        msg: format!("{why}: {}", shapes()),
    };
    if value.rank() != 4 || loc.rank() != 6 || attn.rank() != 5 {
        return Err(bad(
            "expected value [B, S, H, D], sampling_locations [B, Q, H, L, P, 2] and \
             attention_weights [B, Q, H, L, P]",
        ));
    }
    let [b, s, h, d] = [0, 1, 2, 3].map(|i| value.dims()[i]);
    let [q, l, p] = [1, 3, 4].map(|i| loc.dims()[i]);
    if loc.dims() != [b, q, h, l, p, 2] || attn.dims() != [b, q, h, l, p] {
        return Err(bad("shapes do not fit"));
    }
    if spatial_shapes.len() != l || l == 0 {
        return Err(bad(
            "need one (height, width) per level, at least one level",
        ));
    }
    if spatial_shapes.iter().any(|&(hh, ww)| hh == 0 || ww == 0) {
        return Err(bad("a level has an empty map"));
    }
    let total: usize = spatial_shapes.iter().map(|&(hh, ww)| hh * ww).sum();
    if total != s {
        return Err(bad(&format!(
            "the levels hold {total} value rows, value has {s}"
        )));
    }
    let dt = value.dtype();
    if !dt.is_float() || loc.dtype() != dt || attn.dtype() != dt {
        return Err(Error::DType {
            op: OP,
            msg: format!(
                "value {dt}, sampling_locations {}, attention_weights {} must share one float \
                 dtype ({})",
                loc.dtype(),
                attn.dtype(),
                shapes()
            ),
        });
    }
    Ok(MsdaGeom::new(b, h, d, q, p, spatial_shapes))
}

impl Tensor {
    /// Multi-scale deformable attention. `self` = value [B, S, H, D], level l occupying rows
    /// start_l.. (start_l = Σ_{k<l} h_k·w_k) as an h_l×w_l map; `spatial_shapes` the levels'
    /// (height, width); `sampling_locations` [B, Q, H, L, P, 2] as (x, y) in [0, 1] of the
    /// image (outside samples zeros); `attention_weights` [B, Q, H, L, P] (already
    /// softmaxed). Output [B, Q, H·D]. Differentiable in all three tensors.
    pub fn ms_deform_attn(
        &self,
        spatial_shapes: &[(usize, usize)],
        sampling_locations: &Tensor,
        attention_weights: &Tensor,
    ) -> Result<Tensor> {
        let (loc, attn) = (sampling_locations, attention_weights);
        let g = msda_geom(self, spatial_shapes, loc, attn)?;
        let dtype = self.dtype();
        let vc = to_compute(&self.detach())?;
        let lc = to_compute(&loc.detach())?;
        let ac = to_compute(&attn.detach())?;
        let out = dispatch_float!(vc.dtype(), OP, T => {
            let o = vc.with_slice(|v: &[T]| {
                lc.with_slice(|l: &[T]| ac.with_slice(|a: &[T]| msda_fwd(v, l, a, &g)))
            })???;
            Tensor::from_vec(o, [g.b, g.q, g.heads * g.d])?
        });
        let out = restore(out, dtype)?;
        let want = MsdaWant {
            value: self.tracks_grad(),
            loc: loc.tracks_grad(),
            attn: attn.tracks_grad(),
        };
        let shapes = [self, loc, attn].map(|t| t.shape().clone());
        Ok(record(out, OP, &[self, loc, attn], move |_, gy| {
            let gyc = to_compute(gy)?;
            let grads = dispatch_float!(gyc.dtype(), OP, T => {
                let (dv, dl, da) = vc.with_slice(|v: &[T]| {
                    lc.with_slice(|l: &[T]| {
                        ac.with_slice(|a: &[T]| {
                            gyc.with_slice(|go: &[T]| msda_bwd(v, l, a, go, &g, want))
                        })
                    })
                })????;
                let wrap = |on: bool, v: Vec<T>, i: usize| -> Result<Option<Tensor>> {
                    if !on {
                        return Ok(None);
                    }
                    Ok(Some(restore(Tensor::from_vec(v, shapes[i].clone())?, dtype)?))
                };
                vec![wrap(want.value, dv, 0)?, wrap(want.loc, dl, 1)?, wrap(want.attn, da, 2)?]
            });
            Ok(grads)
        }))
    }
}

/// The same result built from `grid_sample` exactly as transformers'
/// MultiScaleDeformableAttention.forward does (its pure-PyTorch path): the reference the
/// fused op is tested and benchmarked against. Same arguments and checks.
pub fn ms_deform_attn_composed(
    value: &Tensor,
    spatial_shapes: &[(usize, usize)],
    sampling_locations: &Tensor,
    attention_weights: &Tensor,
) -> Result<Tensor> {
    let g = msda_geom(value, spatial_shapes, sampling_locations, attention_weights)?;
    let (b, h, d, q, p, nl) = (g.b, g.heads, g.d, g.q, g.p, g.levels.len());
    let sizes: Vec<usize> = spatial_shapes.iter().map(|&(hh, ww)| hh * ww).collect();
    let value_list = value.split(&sizes, 1)?;
    let grids = sampling_locations.mul_scalar(2.0)?.sub_scalar(1.0)?;
    let mut sampled = Vec::with_capacity(nl);
    for (l, &(hh, ww)) in spatial_shapes.iter().enumerate() {
        // [B, hw, H, D] → [B·H, D, hh, ww]
        let v = value_list[l]
            .flatten(2, -1)?
            .transpose(1, 2)?
            .reshape([b * h, d, hh, ww])?;
        // [B, Q, H, P, 2] → [B·H, Q, P, 2]
        let grid = grids
            .narrow(3, l, 1)?
            .squeeze(3)?
            .transpose(1, 2)?
            .reshape([b * h, q, p, 2])?;
        sampled.push(v.grid_sample(&grid, false)?); // [B·H, D, Q, P]
    }
    let refs: Vec<&Tensor> = sampled.iter().collect();
    let w = attention_weights
        .transpose(1, 2)?
        .reshape([b * h, 1, q, nl * p])?;
    Tensor::stack(&refs, -2)?
        .reshape([b * h, d, q, nl * p])?
        .mul(&w)?
        .sum(&[-1], false)?
        .reshape([b, h * d, q])?
        .transpose(1, 2)?
        .contiguous()
}

/// The forward on a CUDA device (kernels/ms_deform_attn.cu), f32 on the device: same
/// arguments, checks and result (in value's dtype) as `Tensor::ms_deform_attn`. Host tensors
/// in and out until CUDA tensors land.
pub fn ms_deform_attn_cuda(
    dev: &CudaDevice,
    value: &Tensor,
    spatial_shapes: &[(usize, usize)],
    sampling_locations: &Tensor,
    attention_weights: &Tensor,
) -> Result<Tensor> {
    let g = msda_geom(value, spatial_shapes, sampling_locations, attention_weights)?;
    let s = &dev.stream;
    let up = |t: &Tensor| -> Result<_> { s.clone_htod(&host_f32(t)?).map_err(dev_err) };
    let (v, l, a) = (up(value)?, up(sampling_locations)?, up(attention_weights)?);
    let out = msda_fwd_device(dev, &g, &v, &l, &a)?;
    let o = s.clone_dtoh(&out).map_err(dev_err)?;
    Tensor::from_vec(o, [g.b, g.q, g.heads * g.d])?.to_dtype(value.dtype())
}

/// The backward on a CUDA device: gradients of sum(out · `grad_out`) w.r.t. value,
/// sampling_locations and attention_weights (in that order, each in its input's shape and
/// dtype), as the CPU op's autograd gives them. `grad_out` is [B, Q, H·D].
pub fn ms_deform_attn_backward_cuda(
    dev: &CudaDevice,
    value: &Tensor,
    spatial_shapes: &[(usize, usize)],
    sampling_locations: &Tensor,
    attention_weights: &Tensor,
    grad_out: &Tensor,
) -> Result<[Tensor; 3]> {
    let g = msda_geom(value, spatial_shapes, sampling_locations, attention_weights)?;
    if grad_out.dims() != [g.b, g.q, g.heads * g.d] {
        return Err(Error::Shape {
            op: OP,
            msg: format!(
                "grad_out {} must be the output's shape [{}, {}, {}]",
                grad_out.shape(),
                g.b,
                g.q,
                g.heads * g.d
            ),
        });
    }
    let s = &dev.stream;
    let up = |t: &Tensor| -> Result<_> { s.clone_htod(&host_f32(t)?).map_err(dev_err) };
    let (v, l, a, go) = (
        up(value)?,
        up(sampling_locations)?,
        up(attention_weights)?,
        up(grad_out)?,
    );
    let [dv, dl, da] = msda_bwd_device(dev, &g, &v, &l, &a, &go)?;
    let down = |buf, like: &Tensor| -> Result<Tensor> {
        let h = s.clone_dtoh(&buf).map_err(dev_err)?;
        Tensor::from_vec(h, like.shape().clone())?.to_dtype(like.dtype())
    };
    Ok([
        down(dv, value)?,
        down(dl, sampling_locations)?,
        down(da, attention_weights)?,
    ])
}

fn host_f32(t: &Tensor) -> Result<Vec<f32>> {
    t.to_dtype(DType::F32)?.contiguous()?.to_vec::<f32>()
}
