//! Kinds `sam` and `sam-lora`: transformers' SamModel built from the fixture's `config`,
//! loaded from `weights.*` (transformers' names, or segment-anything's), run on
//! `inputs.pixel_values` with the prompts the fixture gives (`inputs.input_boxes`,
//! `inputs.input_points` + `inputs.input_labels`, `inputs.input_masks`); multimask outputs
//! against `outputs.iou_scores` / `outputs.pred_masks`, single-mask against
//! `outputs.single.*`, the encoder against `outputs.image_embeddings`. `sam-lora` first
//! applies the PEFT adapter in `adapter.*` with the `adapter_config` metadata.
use super::{CheckLine, Fixture};
use crate::models::sam::{Prompts, SamConfig, SamModel};
use crate::{Error, Result, Tensor};

pub fn check(fx: &Fixture) -> Result<Vec<CheckLine>> {
    let cfg = SamConfig::from_json(&fx.config()?)?;
    let weights = fx.state_dict("weights.");
    let model = if fx.kind() == "sam-lora" {
        super::sam_lora::model_with_adapter(fx, &cfg, &weights)?
    } else {
        SamModel::from_state_dict(&cfg, &weights, fx.path())?
    };
    let pixels = fx.tensor("inputs.pixel_values")?;
    let has = |n: &str| fx.file().contains(n);
    let boxes = if has("inputs.input_boxes") {
        Some(fx.tensor("inputs.input_boxes")?)
    } else {
        None
    };
    let points = if has("inputs.input_points") {
        let labels = fx
            .tensor("inputs.input_labels")
            .map_err(|e| e.context("inputs.input_points needs inputs.input_labels"))?;
        let labels: Vec<i64> = labels.to_vec_f64()?.iter().map(|&v| v as i64).collect();
        Some((fx.tensor("inputs.input_points")?, labels))
    } else {
        None
    };
    let masks = if has("inputs.input_masks") {
        Some(fx.tensor("inputs.input_masks")?)
    } else {
        None
    };
    if boxes.is_none() && points.is_none() && masks.is_none() {
        return Err(Error::Format {
            path: fx.path().to_string(),
            record: "inputs".into(),
            msg:
                "no prompt: expected inputs.input_boxes, inputs.input_points or inputs.input_masks"
                    .into(),
        });
    }
    let prompts = Prompts {
        boxes: boxes.as_ref(),
        points: points.as_ref().map(|(p, l)| (p, l.as_slice())),
        masks: masks.as_ref(),
    };
    let _g = crate::no_grad();
    let emb = model.image_embeddings(&pixels)?;
    let mut lines = Vec::new();
    let mut produced = Vec::new();
    // Only what the fixture holds is compared; any other output it holds is a failure.
    let mut push = |name: &str, t: &Tensor| {
        if fx.file().contains(name) {
            lines.push(fx.compare(name, t));
        }
        produced.push(name.to_string());
    };
    push("outputs.image_embeddings", &emb);
    let multi = model.decode(&emb, &prompts, true)?;
    push("outputs.iou_scores", &multi.iou_scores);
    push("outputs.pred_masks", &multi.masks);
    if !fx.names_with_prefix("outputs.single.").is_empty() {
        let single = model.decode(&emb, &prompts, false)?;
        push("outputs.single.iou_scores", &single.iou_scores);
        push("outputs.single.pred_masks", &single.masks);
    }
    Ok(fx.with_unproduced(lines, &produced))
}
