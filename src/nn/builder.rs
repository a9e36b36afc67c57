//! The builder every SAM and Grounding DINO part is made through: parameters from a
//! `ParamSource`, and each Linear offered to the LoRA plan under its full dotted name (PEFT's module names), so any
//! Linear a target pattern names gets an adapter.
pub use super::param_source::{Init, ParamSource};
use crate::Result;
pub use crate::nn::Proj;
use crate::nn::{LoraPlan, Module, mark_only_lora_trainable, proj};

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

impl Builder<'_> {
    /// After building `model` from a state dict: report every missing, mis-shaped or
    /// unused tensor (naming `origin`), then, with a LoRA plan, check it matched something
    /// (PEFT's error otherwise) and leave only the adapters trainable. Returns the adapted
    /// module names.
    pub fn finish(self, model: &dyn Module, origin: &str) -> Result<Vec<String>> {
        self.src.finish(origin)?;
        match self.plan {
            Some(plan) => {
                let names = plan.finish()?;
                mark_only_lora_trainable(model)?;
                Ok(names)
            }
            None => Ok(Vec::new()),
        }
    }
}
