//! GroundingDinoConfig as transformers writes it (IDEA-Research/grounding-dino-* config.json,
//! or a fixture's `config`), with transformers' defaults for absent keys.
use crate::models::bert::BertConfig;
use crate::models::config_json::{Act, Obj};
use crate::models::swin::SwinConfig;
use crate::{Error, Result};
use serde_json::Value;

const NAME: &str = "Grounding DINO config";

#[derive(Clone, Debug, PartialEq)]
pub struct GroundingDinoConfig {
    pub backbone: SwinConfig,
    pub text: BertConfig,
    pub d_model: usize,
    pub num_queries: usize,
    pub encoder_layers: usize,
    pub encoder_ffn_dim: usize,
    pub encoder_attention_heads: usize,
    pub decoder_layers: usize,
    pub decoder_ffn_dim: usize,
    pub decoder_attention_heads: usize,
    pub activation_function: Act,
    pub num_feature_levels: usize,
    pub encoder_n_points: usize,
    pub decoder_n_points: usize,
    pub two_stage: bool,
    pub max_text_len: usize,
    pub embedding_init_target: bool,
    pub query_dim: usize,
    pub decoder_bbox_embed_share: bool,
    pub two_stage_bbox_embed_share: bool,
    pub positional_embedding_temperature: f64,
    pub layer_norm_eps: f64,
    pub class_cost: f64,
    pub bbox_cost: f64,
    pub giou_cost: f64,
    pub bbox_loss_coefficient: f64,
    pub giou_loss_coefficient: f64,
    pub focal_alpha: f64,
}

impl GroundingDinoConfig {
    pub fn from_json(v: &Value) -> Result<GroundingDinoConfig> {
        let o = Obj::new(v, NAME);
        let mut bb = o.sub("backbone_config")?;
        // transformers' default backbone is Swin-T returning stages 2-4.
        if bb.get("out_indices").is_none() && bb.get("out_features").is_none() {
            bb["out_indices"] = serde_json::json!([2, 3, 4]);
        }
        if let Some(t) = bb.get("model_type").and_then(Value::as_str)
            && t != "swin"
        {
            return Err(Error::msg(format!(
                "{NAME}: backbone model_type {t:?} is not supported (swin)"
            )));
        }
        if o.bool("use_timm_backbone", false)? {
            return Err(Error::msg(format!(
                "{NAME}: use_timm_backbone is not supported"
            )));
        }
        let backbone = SwinConfig::from_json(&bb, "Grounding DINO config: backbone_config")?;
        let tc = o.sub("text_config")?;
        if let Some(t) = tc.get("model_type").and_then(Value::as_str)
            && t != "bert"
        {
            return Err(Error::msg(format!(
                "{NAME}: text model_type {t:?} is not supported (bert)"
            )));
        }
        let text = BertConfig::from_json(&tc, "Grounding DINO config: text_config")?;
        if o.str("position_embedding_type", "sine")? != "sine" {
            return Err(Error::msg(format!(
                "{NAME}: only position_embedding_type \"sine\" is supported"
            )));
        }
        let cfg = GroundingDinoConfig {
            backbone,
            text,
            d_model: o.usize("d_model", 256)?,
            num_queries: o.usize("num_queries", 900)?,
            encoder_layers: o.usize("encoder_layers", 6)?,
            encoder_ffn_dim: o.usize("encoder_ffn_dim", 2048)?,
            encoder_attention_heads: o.usize("encoder_attention_heads", 8)?,
            decoder_layers: o.usize("decoder_layers", 6)?,
            decoder_ffn_dim: o.usize("decoder_ffn_dim", 2048)?,
            decoder_attention_heads: o.usize("decoder_attention_heads", 8)?,
            activation_function: Act::parse(&o, "activation_function", "relu")?,
            num_feature_levels: o.usize("num_feature_levels", 4)?,
            encoder_n_points: o.usize("encoder_n_points", 4)?,
            decoder_n_points: o.usize("decoder_n_points", 4)?,
            two_stage: o.bool("two_stage", true)?,
            max_text_len: o.usize("max_text_len", 256)?,
            embedding_init_target: o.bool("embedding_init_target", true)?,
            query_dim: o.usize("query_dim", 4)?,
            decoder_bbox_embed_share: o.bool("decoder_bbox_embed_share", true)?,
            two_stage_bbox_embed_share: o.bool("two_stage_bbox_embed_share", false)?,
            positional_embedding_temperature: o.f64("positional_embedding_temperature", 20.0)?,
            layer_norm_eps: o.f64("layer_norm_eps", 1e-5)?,
            class_cost: o.f64("class_cost", 1.0)?,
            bbox_cost: o.f64("bbox_cost", 5.0)?,
            giou_cost: o.f64("giou_cost", 2.0)?,
            bbox_loss_coefficient: o.f64("bbox_loss_coefficient", 5.0)?,
            giou_loss_coefficient: o.f64("giou_loss_coefficient", 2.0)?,
            focal_alpha: o.f64("focal_alpha", 0.25)?,
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// The combinations this port builds; anything else is refused up front.
    pub fn validate(&self) -> Result<()> {
        let mut bad = Vec::new();
        let d = self.d_model;
        if d == 0 || d % 2 != 0 || d % 32 != 0 {
            bad.push(format!(
                "d_model {d} must be a positive multiple of 32 (GroupNorm(32, d_model))"
            ));
        }
        for (what, h) in [
            ("encoder", self.encoder_attention_heads),
            ("decoder", self.decoder_attention_heads),
        ] {
            if h == 0 || d % h != 0 {
                bad.push(format!("d_model {d} is not divisible by {h} {what} heads"));
            }
        }
        let half_heads = self.encoder_attention_heads / 2;
        if half_heads == 0 || d % half_heads != 0 || (self.encoder_ffn_dim / 2) % half_heads != 0 {
            bad.push(format!(
                "the text enhancer and fusion layers use {} heads (encoder heads / 2) over widths {d} and {}",
                half_heads,
                self.encoder_ffn_dim / 2
            ));
        }
        if self.query_dim != 4 {
            bad.push(format!("query_dim {} is not supported (4)", self.query_dim));
        }
        if !self.embedding_init_target {
            // transformers 5.23 itself fails on this with two_stage (it reads the missing
            // query embedding), so there is no reference to match.
            bad.push("embedding_init_target = false is not supported".into());
        }
        if !self.two_stage {
            bad.push("two_stage = false is not supported".into());
        }
        if self.two_stage_bbox_embed_share {
            bad.push("two_stage_bbox_embed_share = true is not supported".into());
        }
        let outs = self.backbone.out_indices.len();
        if self.num_feature_levels < outs || outs == 0 {
            bad.push(format!(
                "num_feature_levels {} is fewer than the backbone's {outs} outputs",
                self.num_feature_levels
            ));
        }
        if self.num_queries == 0 || self.max_text_len == 0 {
            bad.push("num_queries and max_text_len must be positive".into());
        }
        if bad.is_empty() {
            Ok(())
        } else {
            Err(Error::msg(format!("{NAME}: {}", bad.join("; "))))
        }
    }
}
