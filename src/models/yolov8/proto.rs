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
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.conv_transpose2d(&self.weight, Some(&self.bias), self.params)
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
