//! The feature enhancer (GroundingDinoEncoder): per layer, image↔text fusion, text
//! self-attention within each phrase, then deformable self-attention over the image tokens.
use super::attention::{BiAttention, MultiheadAttention};
use super::config::GroundingDinoConfig;
use super::deform::DeformableAttention;
use crate::models::config_json::Act;
use crate::nn::builder::{Builder, Init, Proj};
use crate::nn::{Forward, LayerNorm, Module};
use crate::{Result, Tensor};

/// What every encoder layer reads besides the two token streams.
pub struct EncoderInputs<'a> {
    pub vision_pos: &'a Tensor,
    /// [B, S] f32, 1 = real image token.
    pub vision_valid: &'a Tensor,
    /// [B, S] u8, 1 = real image token.
    pub vision_keep: &'a Tensor,
    /// [B, L] u8, 1 = real text token.
    pub text_keep: &'a Tensor,
    /// [B, 1, L, L] additive mask of the phrase-blocked text self-attention.
    pub text_self_bias: &'a Tensor,
    /// [B, L, d] sinusoidal embedding of the per-phrase position ids.
    pub text_pos: &'a Tensor,
    /// [B, S, levels, 2]
    pub reference: &'a Tensor,
    pub shapes: &'a [(usize, usize)],
}

pub struct FusionLayer {
    pub layer_norm_vision: LayerNorm,
    pub layer_norm_text: LayerNorm,
    pub attn: BiAttention,
    pub vision_param: Tensor,
    pub text_param: Tensor,
}

pub struct TextEnhancerLayer {
    pub self_attn: MultiheadAttention,
    pub fc1: Proj,
    pub fc2: Proj,
    pub layer_norm_before: LayerNorm,
    pub layer_norm_after: LayerNorm,
}

pub struct DeformableLayer {
    pub self_attn: DeformableAttention,
    pub self_attn_layer_norm: LayerNorm,
    pub fc1: Proj,
    pub fc2: Proj,
    pub final_layer_norm: LayerNorm,
}

pub struct EncoderLayer {
    pub fusion_layer: FusionLayer,
    pub text_enhancer_layer: TextEnhancerLayer,
    pub deformable_layer: DeformableLayer,
    act: Act,
}

impl EncoderLayer {
    pub fn build(b: &mut Builder, name: &str, cfg: &GroundingDinoConfig) -> Result<EncoderLayer> {
        let (d, eps) = (cfg.d_model, cfg.layer_norm_eps);
        let half_ffn = cfg.encoder_ffn_dim / 2;
        let half_heads = cfg.encoder_attention_heads / 2;
        let f = format!("{name}.fusion_layer");
        let t = format!("{name}.text_enhancer_layer");
        let dl = format!("{name}.deformable_layer");
        Ok(EncoderLayer {
            fusion_layer: FusionLayer {
                layer_norm_vision: b
                    .src
                    .layer_norm(&format!("{f}.layer_norm_vision"), d, eps)?,
                layer_norm_text: b.src.layer_norm(&format!("{f}.layer_norm_text"), d, eps)?,
                attn: BiAttention::build(b, &format!("{f}.attn"), d, half_ffn, half_heads)?,
                vision_param: b
                    .src
                    .param(&format!("{f}.vision_param"), [d], Init::Normal(1e-4))?,
                text_param: b
                    .src
                    .param(&format!("{f}.text_param"), [d], Init::Normal(1e-4))?,
            },
            text_enhancer_layer: TextEnhancerLayer {
                self_attn: MultiheadAttention::build(b, &format!("{t}.self_attn"), d, half_heads)?,
                fc1: b.linear(&format!("{t}.fc1"), d, half_ffn, true)?,
                fc2: b.linear(&format!("{t}.fc2"), half_ffn, d, true)?,
                layer_norm_before: b
                    .src
                    .layer_norm(&format!("{t}.layer_norm_before"), d, eps)?,
                layer_norm_after: b.src.layer_norm(&format!("{t}.layer_norm_after"), d, eps)?,
            },
            deformable_layer: DeformableLayer {
                self_attn: DeformableAttention::build(
                    b,
                    &format!("{dl}.self_attn"),
                    d,
                    cfg.encoder_attention_heads,
                    cfg.num_feature_levels,
                    cfg.encoder_n_points,
                )?,
                self_attn_layer_norm: b.src.layer_norm(
                    &format!("{dl}.self_attn_layer_norm"),
                    d,
                    eps,
                )?,
                fc1: b.linear(&format!("{dl}.fc1"), d, cfg.encoder_ffn_dim, true)?,
                fc2: b.linear(&format!("{dl}.fc2"), cfg.encoder_ffn_dim, d, true)?,
                final_layer_norm: b
                    .src
                    .layer_norm(&format!("{dl}.final_layer_norm"), d, eps)?,
            },
            act: cfg.activation_function,
        })
    }

    /// (vision [B, S, d], text [B, L, d]) → the enhanced pair.
    pub fn forward(
        &self,
        vision: &Tensor,
        text: &Tensor,
        inp: &EncoderInputs,
    ) -> Result<(Tensor, Tensor)> {
        // Fusion: the residual is taken on the normalised features, scaled by a learned
        // per-channel gain (layer scale), as the reference.
        let fl = &self.fusion_layer;
        let v = fl.layer_norm_vision.forward(vision)?;
        let t = fl.layer_norm_text.forward(text)?;
        let (dv, dt) = fl.attn.forward(&v, &t, inp.vision_keep, inp.text_keep)?;
        let vision = v.add(&dv.mul(&fl.vision_param)?)?;
        let text = t.add(&dt.mul(&fl.text_param)?)?;

        let te = &self.text_enhancer_layer;
        let qk = text.add(inp.text_pos)?;
        let a = te
            .self_attn
            .forward(&qk, &qk, &text, Some(inp.text_self_bias))?;
        let text = te.layer_norm_before.forward(&text.add(&a)?)?;
        let m = te.fc2.forward(&self.act.apply(&te.fc1.forward(&text)?)?)?;
        let text = te.layer_norm_after.forward(&m.add(&text)?)?;

        let de = &self.deformable_layer;
        let a = de.self_attn.forward(
            &vision,
            Some(inp.vision_pos),
            &vision,
            inp.vision_valid,
            inp.reference,
            inp.shapes,
        )?;
        let vision = de.self_attn_layer_norm.forward(&vision.add(&a)?)?;
        let m = de
            .fc2
            .forward(&self.act.apply(&de.fc1.forward(&vision)?)?)?;
        let vision = de.final_layer_norm.forward(&vision.add(&m)?)?;
        Ok((vision, text))
    }
}

impl Module for FusionLayer {
    fn visit_own_params(&self, f: &mut dyn FnMut(&str, &Tensor)) {
        f("vision_param", &self.vision_param);
        f("text_param", &self.text_param);
    }
    fn visit_children(&self, f: &mut dyn FnMut(&str, &dyn Module)) {
        f("layer_norm_vision", &self.layer_norm_vision);
        f("layer_norm_text", &self.layer_norm_text);
        f("attn", &self.attn);
    }
}
impl Module for TextEnhancerLayer {
    fn visit_children(&self, f: &mut dyn FnMut(&str, &dyn Module)) {
        f("self_attn", &self.self_attn);
        f("fc1", &self.fc1);
        f("fc2", &self.fc2);
        f("layer_norm_before", &self.layer_norm_before);
        f("layer_norm_after", &self.layer_norm_after);
    }
}
impl Module for DeformableLayer {
    fn visit_children(&self, f: &mut dyn FnMut(&str, &dyn Module)) {
        f("self_attn", &self.self_attn);
        f("self_attn_layer_norm", &self.self_attn_layer_norm);
        f("fc1", &self.fc1);
        f("fc2", &self.fc2);
        f("final_layer_norm", &self.final_layer_norm);
    }
}
impl Module for EncoderLayer {
    fn visit_children(&self, f: &mut dyn FnMut(&str, &dyn Module)) {
        f("text_enhancer_layer", &self.text_enhancer_layer);
        f("fusion_layer", &self.fusion_layer);
        f("deformable_layer", &self.deformable_layer);
    }
}
