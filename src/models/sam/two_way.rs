//! The mask decoder's two-way transformer (transformers' SamTwoWayTransformer): prompt
//! tokens and image tokens attend to each other in turn; q/k/v/out projections are the
//! Linears LoRA adapts.
use super::build::{Builder, Proj};
use super::config::DecoderConfig;
use super::vision::Mlp;
use crate::nn::{Forward, LayerNorm, Module};
use crate::{Result, Tensor};

/// SamAttention: projections to `hidden / downsample` channels, multi-head attention,
/// projection back.
pub struct Attention {
    pub q_proj: Proj,
    pub k_proj: Proj,
    pub v_proj: Proj,
    pub out_proj: Proj,
    heads: usize,
}

impl Attention {
    pub fn build(
        b: &mut Builder,
        name: &str,
        cfg: &DecoderConfig,
        downsample: usize,
    ) -> Result<Attention> {
        let (c, i) = (cfg.hidden_size, cfg.hidden_size / downsample);
        Ok(Attention {
            q_proj: b.linear(&format!("{name}.q_proj"), c, i, true)?,
            k_proj: b.linear(&format!("{name}.k_proj"), c, i, true)?,
            v_proj: b.linear(&format!("{name}.v_proj"), c, i, true)?,
            out_proj: b.linear(&format!("{name}.out_proj"), i, c, true)?,
            heads: cfg.num_attention_heads,
        })
    }

    /// q [X, Y, Lq, C], k and v [X', Y', Lk, C] with X·Y = X'·Y' → [X, Y, Lq, C].
    pub fn forward(&self, q: &Tensor, k: &Tensor, v: &Tensor) -> Result<Tensor> {
        let (x, y, lq) = (q.dims()[0], q.dims()[1], q.dims()[2]);
        let heads = |t: Tensor| -> Result<Tensor> {
            let d = t.dims().to_vec();
            let ch = d[3] / self.heads;
            t.reshape([d[0] * d[1], d[2], self.heads, ch])?
                .transpose(1, 2)
        };
        let qh = heads(self.q_proj.forward(q)?)?;
        let kh = heads(self.k_proj.forward(k)?)?;
        let vh = heads(self.v_proj.forward(v)?)?;
        let o = qh.scaled_dot_product_attention(&kh, &vh, None, None, None)?; // [XY, h, Lq, ch]
        let inner = o.dims()[1] * o.dims()[3];
        let o = o.transpose(1, 2)?.reshape([x, y, lq, inner])?;
        self.out_proj.forward(&o)
    }
}

pub struct TwoWayBlock {
    pub self_attn: Attention,
    pub layer_norm1: LayerNorm,
    pub cross_attn_token_to_image: Attention,
    pub layer_norm2: LayerNorm,
    pub mlp: Mlp,
    pub layer_norm3: LayerNorm,
    pub layer_norm4: LayerNorm,
    pub cross_attn_image_to_token: Attention,
    pub skip_first_layer_pe: bool,
}

impl TwoWayBlock {
    /// queries [B, nb, T, C], keys [B·nb, 1, hw, C] → updated (queries, keys).
    pub fn forward(
        &self,
        queries: &Tensor,
        keys: &Tensor,
        query_pe: &Tensor,
        key_pe: &Tensor,
    ) -> Result<(Tensor, Tensor)> {
        let queries = if self.skip_first_layer_pe {
            self.self_attn.forward(queries, queries, queries)?
        } else {
            let q = queries.add(query_pe)?;
            queries.add(&self.self_attn.forward(&q, &q, queries)?)?
        };
        let queries = self.layer_norm1.forward(&queries)?;

        let q = queries.add(query_pe)?;
        let k = keys.add(key_pe)?;
        let queries = queries.add(&self.cross_attn_token_to_image.forward(&q, &k, keys)?)?;
        let queries = self.layer_norm2.forward(&queries)?;

        let queries = queries.add(&self.mlp.forward(&queries)?)?;
        let queries = self.layer_norm3.forward(&queries)?;

        let q = queries.add(query_pe)?;
        let keys = keys.add(&self.cross_attn_image_to_token.forward(&k, &q, &queries)?)?;
        let keys = self.layer_norm4.forward(&keys)?;
        Ok((queries, keys))
    }
}

pub struct TwoWayTransformer {
    pub layers: Vec<TwoWayBlock>,
    pub final_attn_token_to_image: Attention,
    pub layer_norm_final_attn: LayerNorm,
}

impl TwoWayTransformer {
    pub fn build(b: &mut Builder, cfg: &DecoderConfig) -> Result<TwoWayTransformer> {
        let p = "mask_decoder.transformer";
        let (c, eps, ds) = (
            cfg.hidden_size,
            cfg.layer_norm_eps,
            cfg.attention_downsample_rate,
        );
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for i in 0..cfg.num_hidden_layers {
            let n = format!("{p}.layers.{i}");
            layers.push(TwoWayBlock {
                self_attn: Attention::build(b, &format!("{n}.self_attn"), cfg, 1)?,
                layer_norm1: b.src.layer_norm(&format!("{n}.layer_norm1"), c, eps)?,
                cross_attn_token_to_image: Attention::build(
                    b,
                    &format!("{n}.cross_attn_token_to_image"),
                    cfg,
                    ds,
                )?,
                layer_norm2: b.src.layer_norm(&format!("{n}.layer_norm2"), c, eps)?,
                mlp: Mlp::build(b, &format!("{n}.mlp"), c, cfg.mlp_dim, cfg.hidden_act)?,
                layer_norm3: b.src.layer_norm(&format!("{n}.layer_norm3"), c, eps)?,
                layer_norm4: b.src.layer_norm(&format!("{n}.layer_norm4"), c, eps)?,
                cross_attn_image_to_token: Attention::build(
                    b,
                    &format!("{n}.cross_attn_image_to_token"),
                    cfg,
                    ds,
                )?,
                skip_first_layer_pe: i == 0,
            });
        }
        Ok(TwoWayTransformer {
            layers,
            final_attn_token_to_image: Attention::build(
                b,
                &format!("{p}.final_attn_token_to_image"),
                cfg,
                ds,
            )?,
            // nn.LayerNorm(hidden) with torch's default eps, not the config's.
            layer_norm_final_attn: b.src.layer_norm(
                &format!("{p}.layer_norm_final_attn"),
                c,
                1e-5,
            )?,
        })
    }

    /// tokens [B, nb, T, C]; image and image_pe [B·nb, C, h, w] → (tokens, image tokens
    /// [B·nb, 1, hw, C]).
    pub fn forward(
        &self,
        tokens: &Tensor,
        image: &Tensor,
        image_pe: &Tensor,
    ) -> Result<(Tensor, Tensor)> {
        let flat =
            |t: &Tensor| -> Result<Tensor> { t.flatten(2, -1)?.transpose(1, 2)?.unsqueeze(1) };
        let key_pe = flat(image_pe)?;
        let mut keys = flat(image)?;
        let mut queries = tokens.clone();
        for l in &self.layers {
            (queries, keys) = l.forward(&queries, &keys, tokens, &key_pe)?;
        }
        let q = queries.add(tokens)?;
        let k = keys.add(&key_pe)?;
        let queries = queries.add(&self.final_attn_token_to_image.forward(&q, &k, &keys)?)?;
        Ok((self.layer_norm_final_attn.forward(&queries)?, keys))
    }
}

impl Module for Attention {
    fn visit_children(&self, f: &mut dyn FnMut(&str, &dyn Module)) {
        f("q_proj", &self.q_proj);
        f("k_proj", &self.k_proj);
        f("v_proj", &self.v_proj);
        f("out_proj", &self.out_proj);
    }
}

impl Module for TwoWayBlock {
    fn visit_children(&self, f: &mut dyn FnMut(&str, &dyn Module)) {
        f("self_attn", &self.self_attn);
        f("layer_norm1", &self.layer_norm1);
        f("cross_attn_token_to_image", &self.cross_attn_token_to_image);
        f("layer_norm2", &self.layer_norm2);
        f("mlp", &self.mlp);
        f("layer_norm3", &self.layer_norm3);
        f("layer_norm4", &self.layer_norm4);
        f("cross_attn_image_to_token", &self.cross_attn_image_to_token);
    }
}

impl Module for TwoWayTransformer {
    fn visit_children(&self, f: &mut dyn FnMut(&str, &dyn Module)) {
        for (i, l) in self.layers.iter().enumerate() {
            f(&format!("layers.{i}"), l);
        }
        f("final_attn_token_to_image", &self.final_attn_token_to_image);
        f("layer_norm_final_attn", &self.layer_norm_final_attn);
    }
}
