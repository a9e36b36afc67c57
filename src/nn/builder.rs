//! The builder every SAM and Grounding DINO part is made through: parameters from a
//! `ParamSource`, and each Linear offered to the LoRA plan under its full dotted name (PEFT's module names), so any
//! Linear a target pattern names gets an adapter.
pub use super::param_source::{Init, ParamSource};
use crate::Result;
pub use crate::nn::Proj;
use crate::nn::{LoraPlan, proj};

pub struct Builder<'a> {
    pub src: ParamSource<'a>,
    pub plan: Option<LoraPlan>,
}

impl Builder<'_> {
    pub fn linear(&mut self, name: &str, i: usize, o: usize, bias: bool) -> Result<Proj> {
        let lin = self.src.linear(name, i, o, bias)?;
        proj(self.plan.as_mut(), name, lin)
    }
}
