//! Older Grounding DINO checkpoints (those on the Hub before transformers 5) name the Swin
//! attention and MLP as Swin v1 did; transformers renames them on load, and so do we. The
//! renames apply only inside the backbone: BERT keeps `attention.self.query`.
use crate::Result;
use crate::io::StateDict;

const BACKBONE: &str = "model.backbone.conv_encoder.model.";

/// transformers' "swin" WeightRenaming list, in its order (the first match wins).
const RENAMES: [(&str, &str); 7] = [
    ("attention.self.query", "attention.q_proj"),
    ("attention.self.key", "attention.k_proj"),
    ("attention.self.value", "attention.v_proj"),
    (
        "attention.self.relative_position_bias_table",
        "attention.relative_position_bias.relative_position_bias_table",
    ),
    ("attention.output.dense", "attention.o_proj"),
    ("intermediate.dense", "mlp.fc1"),
    ("output.dense", "mlp.fc2"),
];

fn rename(name: &str) -> Option<String> {
    let rest = name.strip_prefix(BACKBONE)?;
    for (old, new) in RENAMES {
        if let Some(i) = rest.find(old) {
            return Some(format!(
                "{BACKBONE}{}{new}{}",
                &rest[..i],
                &rest[i + old.len()..]
            ));
        }
    }
    None
}

/// A renamed copy when `sd` uses the old names (None when nothing needs renaming). The
/// relative-position index buffers are dropped: they are rebuilt from the window size.
pub fn map_legacy(sd: &StateDict) -> Result<Option<StateDict>> {
    let needs = sd
        .names()
        .any(|n| rename(n).is_some() || n.ends_with("relative_position_index"));
    if !needs {
        return Ok(None);
    }
    let mut out = StateDict::new();
    for n in sd.names() {
        if n.ends_with("relative_position_index") {
            continue;
        }
        let new = rename(n).unwrap_or_else(|| n.to_string());
        out.insert(new, sd.get(n)?);
    }
    Ok(Some(out))
}
