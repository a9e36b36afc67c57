//! torch.nn.functional.grid_sample with mode='bilinear', padding_mode='zeros' (the sampler
//! deformable attention uses). Differentiable in the input and in the grid.
use super::{restore, to_compute};
use crate::autograd::record;
use crate::backend::cpu::grid_sample::{GridGeom, grid_sample, grid_sample_backward};
use crate::tensor::StorageElement;
use crate::{Error, Result, Tensor, dispatch_float};

fn geom(x: &Tensor, grid: &Tensor, align_corners: bool) -> Result<GridGeom> {
    const OP: &str = "grid_sample";
    let (xd, gd) = (x.dims(), grid.dims());
    if x.rank() != 4 || grid.rank() != 4 || gd[3] != 2 || gd[0] != xd[0] {
        return Err(Error::Shape {
            op: OP,
            msg: format!(
                "expected input [N, C, H, W] and grid [N, Ho, Wo, 2] with the same N, got input {} \
                 and grid {}",
                x.shape(),
                grid.shape()
            ),
        });
    }
    if xd[2] == 0 || xd[3] == 0 {
        return Err(Error::Shape {
            op: OP,
            msg: format!("input {} has an empty plane", x.shape()),
        });
    }
    if x.dtype() != grid.dtype() || !x.dtype().is_float() {
        return Err(Error::DType {
            op: OP,
            msg: format!(
                "input {} {} and grid {} {} must share one float dtype",
                x.dtype(),
                x.shape(),
                grid.dtype(),
                grid.shape()
            ),
        });
    }
    Ok(GridGeom {
        n: xd[0],
        c: xd[1],
        h: xd[2],
        w: xd[3],
        p: gd[1] * gd[2],
        align_corners,
    })
}

fn with3<T: StorageElement, R>(
    a: &Tensor,
    b: &Tensor,
    c: &Tensor,
    f: impl FnOnce(&[T], &[T], &[T]) -> R,
) -> Result<R> {
    a.with_slice(|x: &[T]| b.with_slice(|y: &[T]| c.with_slice(|z: &[T]| f(x, y, z))))??
}

impl Tensor {
    /// Bilinearly samples `self` `[N, C, H, W]` at `grid` `[N, Ho, Wo, 2]` ((x, y) in [-1, 1],
    /// -1 = left/top edge), zeros outside; output `[N, C, Ho, Wo]`. `align_corners=false` maps
    /// -1/1 to the outer edges of the corner pixels, `true` to their centres (as in torch).
    pub fn grid_sample(&self, grid: &Tensor, align_corners: bool) -> Result<Tensor> {
        const OP: &str = "grid_sample";
        let g = geom(self, grid, align_corners)?;
        let dtype = self.dtype();
        let xc = to_compute(&self.detach())?;
        let gc = to_compute(&grid.detach())?;
        let (ho, wo) = (grid.dims()[1], grid.dims()[2]);
        let out = dispatch_float!(xc.dtype(), OP, T => {
            let v = xc.with_slice(|x: &[T]| gc.with_slice(|gr: &[T]| grid_sample(x, gr, &g)))??;
            Tensor::from_vec(v, [g.n, g.c, ho, wo])?
        });
        let out = restore(out, dtype)?;
        let (want_x, want_grid) = (self.tracks_grad(), grid.tracks_grad());
        let (xs, gs) = (self.shape().clone(), grid.shape().clone());
        Ok(record(out, OP, &[self, grid], move |_, gy| {
            let gyc = to_compute(gy)?;
            let (dx, dg) = dispatch_float!(gyc.dtype(), OP, T => {
                let (dx, dg) = with3(&xc, &gc, &gyc, |x: &[T], gr: &[T], go: &[T]| {
                    grid_sample_backward(x, gr, go, &g, want_x, want_grid)
                })?;
                let dx = if want_x { Some(restore(Tensor::from_vec(dx, xs.clone())?, dtype)?) } else { None };
                let dg = if want_grid { Some(restore(Tensor::from_vec(dg, gs.clone())?, dtype)?) } else { None };
                (dx, dg)
            });
            Ok(vec![dx, dg])
        }))
    }
}
