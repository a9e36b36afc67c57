//! The Segment head's mask prototypes: ultralytics `Proto` (cv1 → ConvTranspose2d ×2 →
//! cv2 → cv3), with torch's ConvTranspose2d names and default init.
use super::blocks::Conv;
use crate::nn::{Module, init, parameter};
use crate::tensor::{ConvTranspose2dParams, Rng};
use crate::{Result, Tensor};

/// torch.nn.ConvTranspose2d(c, c, 2, 2, 0, bias=True): weight [in, out, 2, 2], bias [out].
pub struct ConvTranspose2d {
    pub weight: Tensor,
    pub bias: Tensor,
    pub params: ConvTranspose2dParams,
}

impl ConvTranspose2d {
    /// torch's default init: fan_in is weight dim 1 × kernel area.
    pub fn new(c_in: usize, c_out: usize, k: usize, s: usize, rng: &mut Rng) -> Result<Self> {
        let weight = parameter(init::default_weight([c_in, c_out, k, k], rng)?)?;
        let bias = parameter(init::default_bias(c_out, c_out * k * k, rng))?;
        let params = ConvTranspose2dParams {
            stride: (s, s),
            ..Default::default()
        };
        Ok(ConvTranspose2d {
            weight,
            bias,
            params,
        })
    }
    /// With kernel = stride and no padding (Proto's 2×2/2) the output pixels do not
    /// overlap: a 1×1 conv to `c_out·k·k` channels followed by a depth-to-space shuffle,
    /// which runs on the fast GEMM path (and stays differentiable through view ops).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let d = self.weight.dims();
        let (ci, co, k) = (d[0], d[1], d[2]);
        let p = self.params;
        let plain = d[3] == k
            && p.stride == (k, k)
            && p.padding == (0, 0)
            && p.output_padding == (0, 0)
            && p.dilation == (1, 1)
            && p.groups == 1;
        if !plain || x.rank() != 4 {
            return x.conv_transpose2d(&self.weight, Some(&self.bias), self.params);
        }
        let w =
            self.weight
                .permute(&[1, 2, 3, 0])?
                .contiguous()?
                .reshape([co * k * k, ci, 1, 1])?;
        let b = self
            .bias
            .unsqueeze(1)?
            .expand([co, k * k])?
            .contiguous()?
            .reshape(co * k * k)?;
        let y = x.conv2d(&w, Some(&b), Default::default())?;
        let (n, h, wd) = (y.dims()[0], y.dims()[2], y.dims()[3]);
        if y.tracks_grad() {
            return y
                .reshape([n, co, k, k, h, wd])?
                .permute(&[0, 1, 4, 2, 5, 3])?
                .contiguous()?
                .reshape([n, co, h * k, wd * k]);
        }
        let v = y.with_slice(|s: &[f32]| depth_to_space(s, n * co, k, h, wd))?;
        Tensor::from_vec(v, [n, co, h * k, wd * k])
    }
    fn copy(&self) -> Result<Self> {
        Ok(ConvTranspose2d {
            weight: parameter(self.weight.deep_clone()?)?,
            bias: parameter(self.bias.deep_clone()?)?,
            params: self.params,
        })
    }
}

impl Module for ConvTranspose2d {
    fn visit_own_params(&self, f: &mut dyn FnMut(&str, &Tensor)) {
        f("weight", &self.weight);
        f("bias", &self.bias);
    }
}

/// Proto(c1, c_, c2): cv1 3×3 → 2× transposed conv → cv2 3×3 → cv3 1×1: the mask
/// prototypes at 1/4 of the input size.
pub struct Proto {
    pub cv1: Conv,
    pub upsample: ConvTranspose2d,
    pub cv2: Conv,
    pub cv3: Conv,
}

impl Proto {
    pub fn new(c1: usize, c_: usize, c2: usize, rng: &mut Rng) -> Result<Self> {
        Ok(Proto {
            cv1: Conv::std(c1, c_, 3, 1, rng)?,
            upsample: ConvTranspose2d::new(c_, c_, 2, 2, rng)?,
            cv2: Conv::std(c_, c_, 3, 1, rng)?,
            cv3: Conv::std(c_, c2, 1, 1, rng)?,
        })
    }
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.cv3.forward(
            &self
                .cv2
                .forward(&self.upsample.forward(&self.cv1.forward(x)?)?)?,
        )
    }
    pub fn fuse(&self) -> Result<Self> {
        Ok(Proto {
            cv1: self.cv1.fuse()?,
            upsample: self.upsample.copy()?,
            cv2: self.cv2.fuse()?,
            cv3: self.cv3.fuse()?,
        })
    }
}

impl Module for Proto {
    fn visit_children(&self, f: &mut dyn FnMut(&str, &dyn Module)) {
        f("cv1", &self.cv1);
        f("upsample", &self.upsample);
        f("cv2", &self.cv2);
        f("cv3", &self.cv3);
    }
}

/// `[planes, k, k, h, w]` → `[planes, h·k, w·k]`: out[p, y·k+i, x·k+j] = in[p, i, j, y, x].
pub(crate) fn depth_to_space(s: &[f32], planes: usize, k: usize, h: usize, w: usize) -> Vec<f32> {
    use rayon::prelude::*;
    let (hw, ow) = (h * w, w * k);
    let mut out = vec![0f32; s.len()];
    out.par_chunks_mut(hw * k * k)
        .enumerate()
        .for_each(|(pl, o)| {
            let src = &s[pl * hw * k * k..][..hw * k * k];
            for y in 0..h {
                for i in 0..k {
                    let row = &mut o[(y * k + i) * ow..][..ow];
                    for j in 0..k {
                        let plane = &src[(i * k + j) * hw + y * w..][..w];
                        for (x, &v) in plane.iter().enumerate() {
                            row[x * k + j] = v;
                        }
                    }
                }
            }
        });
    debug_assert_eq!(out.len(), planes * hw * k * k);
    out
}
