//! The cross-modality decoder (GroundingDinoDecoder) with iterative box refinement: each
//! layer attends queries to themselves, to the text, then deformably to the image around
//! the current boxes, and its box head moves the boxes for the next layer.
use super::attention::MultiheadAttention;
use super::config::GroundingDinoConfig;
use super::deform::DeformableAttention;
use super::position::encode_sinusoidal;
use crate::models::config_json::Act;
use crate::nn::builder::{Builder, Proj};
use crate::nn::{Forward, LayerNorm, Module};
use crate::{Result, Tensor};

/// GroundingDinoMLPPredictionHead: Linear layers with ReLU between.
pub struct MlpHead {
    pub layers: Vec<Proj>,
}

impl MlpHead {
    pub fn build(
        b: &mut Builder,
        name: &str,
        i: usize,
        h: usize,
        o: usize,
        n: usize,
    ) -> Result<MlpHead> {
        let dims: Vec<usize> = std::iter::once(i)
            .chain(std::iter::repeat_n(h, n - 1))
            .chain(std::iter::once(o))
            .collect();
        let layers = (0..n)
            .map(|k| b.linear(&format!("{name}.layers.{k}"), dims[k], dims[k + 1], true))
            .collect::<Result<Vec<_>>>()?;
        Ok(MlpHead { layers })
    }
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut x = x.clone();
        for (k, l) in self.layers.iter().enumerate() {
            x = l.forward(&x)?;
            if k + 1 < self.layers.len() {
                x = x.relu()?;
            }
        }
        Ok(x)
    }
}

impl Module for MlpHead {
    fn visit_children(&self, f: &mut dyn FnMut(&str, &dyn Module)) {
        for (k, l) in self.layers.iter().enumerate() {
            f(&format!("layers.{k}"), l);
        }
    }
}

pub struct DecoderLayer {
    pub self_attn: MultiheadAttention,
    pub self_attn_layer_norm: LayerNorm,
    pub encoder_attn_text: MultiheadAttention,
    pub encoder_attn_text_layer_norm: LayerNorm,
    pub encoder_attn: DeformableAttention,
    pub encoder_attn_layer_norm: LayerNorm,
    pub fc1: Proj,
    pub fc2: Proj,
    pub final_layer_norm: LayerNorm,
}

/// What the decoder reads from the encoder.
pub struct Memory<'a> {
    pub vision: &'a Tensor,
    /// [B, S] f32, 1 = real image token.
    pub vision_valid: &'a Tensor,
    pub text: &'a Tensor,
    /// [B, 1, 1, L] additive mask hiding padded text tokens.
    pub text_bias: &'a Tensor,
    pub shapes: &'a [(usize, usize)],
    /// (w, h) valid ratio per level, per image.
    pub valid_ratios: &'a [Vec<(f64, f64)>],
}

pub struct Decoder {
    pub layers: Vec<DecoderLayer>,
    pub layer_norm: LayerNorm,
    pub reference_points_head: MlpHead,
    act: Act,
}

pub struct DecoderOutput {
    /// The layer-normed hidden state after every layer: [B, layers, Q, d].
    pub intermediate: Vec<Tensor>,
    /// The refined boxes (cx, cy, w, h in 0..1) after every layer, detached.
    pub references: Vec<Tensor>,
}

impl Decoder {
    pub fn build(b: &mut Builder, name: &str, cfg: &GroundingDinoConfig) -> Result<Decoder> {
        let (d, eps) = (cfg.d_model, cfg.layer_norm_eps);
        let heads = cfg.decoder_attention_heads;
        let layers = (0..cfg.decoder_layers)
            .map(|i| {
                let l = format!("{name}.layers.{i}");
                let ln = |b: &mut Builder, n: &str| b.src.layer_norm(&format!("{l}.{n}"), d, eps);
                Ok(DecoderLayer {
                    self_attn: MultiheadAttention::build(b, &format!("{l}.self_attn"), d, heads)?,
                    self_attn_layer_norm: ln(b, "self_attn_layer_norm")?,
                    encoder_attn_text: MultiheadAttention::build(
                        b,
                        &format!("{l}.encoder_attn_text"),
                        d,
                        heads,
                    )?,
                    encoder_attn_text_layer_norm: ln(b, "encoder_attn_text_layer_norm")?,
                    encoder_attn: DeformableAttention::build(
                        b,
                        &format!("{l}.encoder_attn"),
                        d,
                        heads,
                        cfg.num_feature_levels,
                        cfg.decoder_n_points,
                    )?,
                    encoder_attn_layer_norm: ln(b, "encoder_attn_layer_norm")?,
                    fc1: b.linear(&format!("{l}.fc1"), d, cfg.decoder_ffn_dim, true)?,
                    fc2: b.linear(&format!("{l}.fc2"), cfg.decoder_ffn_dim, d, true)?,
                    final_layer_norm: ln(b, "final_layer_norm")?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Decoder {
            layers,
            layer_norm: b.src.layer_norm(&format!("{name}.layer_norm"), d, eps)?,
            reference_points_head: MlpHead::build(
                b,
                &format!("{name}.reference_points_head"),
                cfg.query_dim / 2 * d,
                d,
                d,
                2,
            )?,
            act: cfg.activation_function,
        })
    }

    /// target [B, Q, d], reference boxes [B, Q, 4] (sigmoid space, no gradient);
    /// `bbox_embed[i]` refines the boxes after layer i.
    pub fn forward(
        &self,
        target: &Tensor,
        reference: &Tensor,
        mem: &Memory,
        bbox_embed: &[&MlpHead],
    ) -> Result<DecoderOutput> {
        let (b, nq, d) = (target.dims()[0], target.dims()[1], target.dims()[2]);
        let nl = mem.shapes.len();
        let mut hidden = target.clone();
        let mut reference = reference.detach();
        let mut intermediate = Vec::new();
        let mut references = Vec::new();
        for (i, layer) in self.layers.iter().enumerate() {
            // Boxes scaled into each level's valid region: [B, Q, L, 4].
            let r = reference.to_vec_f64()?;
            let mut ref_in = Vec::with_capacity(b * nq * nl * 4);
            for bi in 0..b {
                for qi in 0..nq {
                    let bx = &r[(bi * nq + qi) * 4..][..4];
                    for ratios in mem.valid_ratios.iter().take(nl) {
                        let (vw, vh) = ratios[bi];
                        for (k, v) in bx.iter().enumerate() {
                            ref_in.push(v * if k % 2 == 0 { vw } else { vh });
                        }
                    }
                }
            }
            // Level 0's scaled box, sinusoidally encoded, through the head: the query position.
            let first: Vec<f64> = ref_in
                .chunks(4 * nl)
                .flat_map(|c| c[..4].to_vec())
                .collect();
            let sine = Tensor::from_vec(encode_sinusoidal(&first, 4, d / 2), [b, nq, 2 * d])?;
            let pos = self.reference_points_head.forward(&sine)?;
            let ref_in = Tensor::from_vec(
                ref_in.iter().map(|&v| v as f32).collect::<Vec<_>>(),
                [b, nq, nl, 4],
            )?;

            let qk = hidden.add(&pos)?;
            let a = layer.self_attn.forward(&qk, &qk, &hidden, None)?;
            hidden = layer.self_attn_layer_norm.forward(&hidden.add(&a)?)?;
            let a = layer.encoder_attn_text.forward(
                &hidden.add(&pos)?,
                mem.text,
                mem.text,
                Some(mem.text_bias),
            )?;
            hidden = layer
                .encoder_attn_text_layer_norm
                .forward(&hidden.add(&a)?)?;
            let a = layer.encoder_attn.forward(
                &hidden,
                Some(&pos),
                mem.vision,
                mem.vision_valid,
                &ref_in,
                mem.shapes,
            )?;
            hidden = layer.encoder_attn_layer_norm.forward(&hidden.add(&a)?)?;
            let m = layer
                .fc2
                .forward(&self.act.apply(&layer.fc1.forward(&hidden)?)?)?;
            hidden = layer.final_layer_norm.forward(&hidden.add(&m)?)?;

            let delta = bbox_embed[i].forward(&hidden)?;
            reference = delta
                .add(&inverse_sigmoid(&reference)?)?
                .sigmoid()?
                .detach();
            intermediate.push(self.layer_norm.forward(&hidden)?);
            references.push(reference.clone());
        }
        Ok(DecoderOutput {
            intermediate,
            references,
        })
    }
}

/// torch.special.logit(x, eps=1e-5): log(x / (1 − x)) with x clamped to [eps, 1 − eps].
pub fn inverse_sigmoid(x: &Tensor) -> Result<Tensor> {
    let x = x.clamp(1e-5, 1.0 - 1e-5)?;
    x.div(&x.neg()?.add_scalar(1.0)?)?.log()
}

impl Module for DecoderLayer {
    fn visit_children(&self, f: &mut dyn FnMut(&str, &dyn Module)) {
        f("self_attn", &self.self_attn);
        f("self_attn_layer_norm", &self.self_attn_layer_norm);
        f("encoder_attn_text", &self.encoder_attn_text);
        f(
            "encoder_attn_text_layer_norm",
            &self.encoder_attn_text_layer_norm,
        );
        f("encoder_attn", &self.encoder_attn);
        f("encoder_attn_layer_norm", &self.encoder_attn_layer_norm);
        f("fc1", &self.fc1);
        f("fc2", &self.fc2);
        f("final_layer_norm", &self.final_layer_norm);
    }
}
impl Module for Decoder {
    fn visit_children(&self, f: &mut dyn FnMut(&str, &dyn Module)) {
        f("layer_norm", &self.layer_norm);
        for (i, l) in self.layers.iter().enumerate() {
            f(&format!("layers.{i}"), l);
        }
        f("reference_points_head", &self.reference_points_head);
    }
}
