//! BertConfig as transformers writes it (Grounding DINO's `text_config`), with transformers'
//! defaults (bert-base-uncased sizes) for absent keys.
use crate::models::config_json::{Act, Obj};
use crate::{Error, Result};
use serde_json::Value;

#[derive(Clone, Debug, PartialEq)]
pub struct BertConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub hidden_act: Act,
    pub max_position_embeddings: usize,
    pub type_vocab_size: usize,
    pub layer_norm_eps: f64,
}

impl BertConfig {
    pub fn from_json(v: &Value, name: &str) -> Result<BertConfig> {
        let o = Obj::new(v, name);
        if let Some(t) = o.get("position_embedding_type")
            && t.as_str() != Some("absolute")
        {
            return Err(Error::msg(format!(
                "{name}: position_embedding_type {t} is not supported (absolute)"
            )));
        }
        let cfg = BertConfig {
            vocab_size: o.usize("vocab_size", 30522)?,
            hidden_size: o.usize("hidden_size", 768)?,
            num_hidden_layers: o.usize("num_hidden_layers", 12)?,
            num_attention_heads: o.usize("num_attention_heads", 12)?,
            intermediate_size: o.usize("intermediate_size", 3072)?,
            hidden_act: Act::parse(&o, "hidden_act", "gelu")?,
            max_position_embeddings: o.usize("max_position_embeddings", 512)?,
            type_vocab_size: o.usize("type_vocab_size", 2)?,
            layer_norm_eps: o.f64("layer_norm_eps", 1e-12)?,
        };
        if cfg.num_attention_heads == 0 || cfg.hidden_size % cfg.num_attention_heads != 0 {
            return Err(Error::msg(format!(
                "{name}: hidden_size {} is not divisible by {} heads",
                cfg.hidden_size, cfg.num_attention_heads
            )));
        }
        Ok(cfg)
    }
}
