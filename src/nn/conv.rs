//! Conv2d with torch's names (weight [out, in/groups, kh, kw], bias [out]) and default init.
use super::{Forward, Module, init, parameter};
use crate::tensor::{Conv2dParams, Rng};
use crate::{Error, Result, ResultExt, Tensor};

pub struct Conv2d {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
    pub params: Conv2dParams,
}

impl Conv2d {
    /// torch.nn.Conv2d's default initialisation, drawn from `rng`.
    pub fn new(
        in_ch: usize,
        out_ch: usize,
        kernel: (usize, usize),
        params: Conv2dParams,
        bias: bool,
        rng: &mut Rng,
    ) -> Result<Self> {
        let g = params.groups;
        if g == 0 || !in_ch.is_multiple_of(g) || !out_ch.is_multiple_of(g) {
            return Err(Error::Shape {
                op: "Conv2d",
                msg: format!("channels {in_ch}->{out_ch} not divisible by groups {g}"),
            });
        }
        let weight = parameter(init::default_weight(
            [out_ch, in_ch / g, kernel.0, kernel.1],
            rng,
        )?)?;
        let fan_in = in_ch / g * kernel.0 * kernel.1;
        let bias = if bias {
            Some(parameter(init::default_bias(out_ch, fan_in, rng))?)
        } else {
            None
        };
        Ok(Conv2d {
            weight,
            bias,
            params,
        })
    }
}

impl Forward for Conv2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.conv2d(&self.weight, self.bias.as_ref(), self.params)
            .with_context(|| format!("Conv2d {}", self.weight.shape()))
    }
}

impl Module for Conv2d {
    fn visit_own_params(&self, f: &mut dyn FnMut(&str, &Tensor)) {
        f("weight", &self.weight);
        if let Some(b) = &self.bias {
            f("bias", b);
        }
    }
}
