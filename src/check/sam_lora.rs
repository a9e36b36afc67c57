//! Kind `sam-lora`: the base SAM from `weights.*` with the PEFT adapter of `adapter.*`
//! (PEFT's own key names) and the `adapter_config` metadata (its adapter_config.json).
use super::Fixture;
use crate::Result;
use crate::io::{Adapter, StateDict, apply_adapter};
use crate::models::sam::{SamConfig, SamModel};

pub fn model_with_adapter(fx: &Fixture, cfg: &SamConfig, weights: &StateDict) -> Result<SamModel> {
    let origin = format!("{} (adapter)", fx.path());
    let adapter = Adapter::from_parts(
        &fx.meta_json("adapter_config")?,
        fx.state_dict("adapter."),
        &origin,
    )?;
    // The adapter's A/B values replace the plan's init, so the seed does not matter.
    let (model, _) =
        SamModel::from_state_dict_lora(cfg, weights, fx.path(), Some((adapter.config.clone(), 0)))?;
    apply_adapter(&model, &adapter)?;
    Ok(model)
}
