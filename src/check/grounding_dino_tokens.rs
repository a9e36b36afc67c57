//! The tokenizer half of a `grounding-dino` fixture: the `vocab` metadata (vocab.txt) and
//! the `prompt` (a string, or a JSON list of strings for a batch, padded to the longest as
//! the processor does) must give `inputs.input_ids` and `inputs.attention_mask` exactly.
use super::compare::compare_tensors;
use super::tolerance::Tolerance;
use super::{CheckLine, Fixture};
use crate::models::bert::BertTokenizer;
use crate::{Error, Result, Tensor};

pub fn check_tokens(fx: &Fixture) -> Result<Vec<CheckLine>> {
    let (Some(vocab), Some(prompt)) = (fx.meta("vocab"), fx.meta("prompt")) else {
        return Ok(Vec::new());
    };
    let tok = BertTokenizer::from_vocab_str(vocab, &format!("{} (metadata 'vocab')", fx.path()))?;
    let prompts: Vec<String> = match serde_json::from_str::<Vec<String>>(prompt) {
        Ok(list) if prompt.trim_start().starts_with('[') => list,
        _ => vec![prompt.to_string()],
    };
    let encs: Vec<_> = prompts.iter().map(|p| tok.encode(p)).collect();
    let l = encs.iter().map(|e| e.len()).max().unwrap_or(0);
    let (mut ids, mut mask) = (Vec::new(), Vec::new());
    for e in &encs {
        for i in 0..l {
            ids.push(e.ids.get(i).map_or(tok.pad_id() as i64, |&v| v as i64));
            mask.push(e.attention_mask.get(i).map_or(0, |&v| v as i64));
        }
    }
    let exact = Tolerance {
        atol: 0.0,
        rtol: 0.0,
    };
    let mut lines = Vec::new();
    for (name, v) in [("inputs.input_ids", ids), ("inputs.attention_mask", mask)] {
        if !fx.file().contains(name) {
            continue;
        }
        let ours = Tensor::from_vec(v, [encs.len(), l])?;
        let r = fx.tensor(name)?;
        lines.push(
            compare_tensors(name, &ours, &r, exact)
                .map_err(|e: Error| e.context(name.to_string()))?,
        );
    }
    Ok(lines)
}
