//! Kind `grounding-dino`: transformers' GroundingDinoForObjectDetection built from the
//! fixture's `config`, loaded from `weights.*`, run on `inputs.pixel_values` (+
//! `inputs.pixel_mask`) and `inputs.input_ids` (+ `attention_mask`, `token_type_ids`).
//! Compared: `outputs.logits`, `outputs.pred_boxes`, `outputs.last_hidden_state`, the
//! encoder's last states, and the intermediate and two-stage tensors when a fixture holds
//! them. With `vocab` and `prompt` metadata, our tokenizer must give `inputs.input_ids`.
use super::{CheckLine, Fixture};
use crate::models::grounding_dino::{GroundingDino, GroundingDinoConfig, Inputs};
use crate::{Result, Tensor};

pub fn check(fx: &Fixture) -> Result<Vec<CheckLine>> {
    let cfg = GroundingDinoConfig::from_json(&fx.config()?)?;
    let weights = fx.state_dict("weights.");
    let model = GroundingDino::from_state_dict(&cfg, &weights, fx.path())?;
    let has = |n: &str| fx.file().contains(n);
    let opt = |n: &str| -> Result<Option<Tensor>> {
        if has(n) {
            fx.tensor(n).map(Some)
        } else {
            Ok(None)
        }
    };
    let pixel_values = fx.tensor("inputs.pixel_values")?;
    let input_ids = fx.tensor("inputs.input_ids")?;
    let pixel_mask = opt("inputs.pixel_mask")?;
    let attention_mask = opt("inputs.attention_mask")?;
    let token_type_ids = opt("inputs.token_type_ids")?;
    // The tokenizer first: `vocab` + `prompt` metadata must give the fixture's ids.
    let mut lines = super::grounding_dino_tokens::check_tokens(fx)?;
    let mut produced = Vec::new();
    let _g = crate::no_grad();
    let (enc, out) = model.forward(&Inputs {
        pixel_values: &pixel_values,
        pixel_mask: pixel_mask.as_ref(),
        input_ids: &input_ids,
        attention_mask: attention_mask.as_ref(),
        token_type_ids: token_type_ids.as_ref(),
    })?;
    // Only what the fixture holds is compared; any other output it holds is a failure.
    let mut push = |name: &str, t: &Tensor| {
        if has(name) {
            lines.push(fx.compare(name, t));
        }
        produced.push(name.to_string());
    };
    push("outputs.logits", &out.logits);
    push("outputs.pred_boxes", &out.pred_boxes);
    push("outputs.last_hidden_state", &out.last_hidden_state);
    push("outputs.encoder_last_hidden_state_vision", &enc.vision);
    push("outputs.encoder_last_hidden_state_text", &enc.text);
    push("outputs.init_reference_points", &enc.reference);
    push("outputs.enc_outputs_class", &enc.enc_outputs_class);
    push(
        "outputs.enc_outputs_coord_logits",
        &enc.enc_outputs_coord_logits,
    );
    push("outputs.encoder_logits", &out.encoder_logits);
    push("outputs.encoder_pred_boxes", &out.encoder_pred_boxes);
    let stack =
        |v: &[Tensor]| -> Result<Tensor> { Tensor::stack(&v.iter().collect::<Vec<_>>(), 1) };
    if has("outputs.intermediate_hidden_states") || has("outputs.intermediate_reference_points") {
        push(
            "outputs.intermediate_hidden_states",
            &stack(&out.intermediate_hidden_states)?,
        );
        push(
            "outputs.intermediate_reference_points",
            &stack(&out.intermediate_reference_points)?,
        );
    }
    Ok(fx.with_unproduced(lines, &produced))
}
