//! BertModel without the pooler (as Grounding DINO's text backbone): embeddings (word +
//! position + token type, LayerNorm), then post-norm encoder layers. The attention mask is
//! a full [B, L, L] boolean (true = may attend), as Grounding DINO passes one.
use super::config::BertConfig;
use crate::nn::builder::{Builder, Proj};
use crate::nn::{Forward, LayerNorm, Module};
use crate::{DType, Error, Result, Tensor};

pub struct BertLayer {
    pub query: Proj,
    pub key: Proj,
    pub value: Proj,
    pub attn_out: Proj,
    pub attn_norm: LayerNorm,
    pub intermediate: Proj,
    pub output: Proj,
    pub out_norm: LayerNorm,
}

pub struct BertModel {
    pub word_embeddings: Tensor,
    pub position_embeddings: Tensor,
    pub token_type_embeddings: Tensor,
    pub embed_norm: LayerNorm,
    pub layers: Vec<BertLayer>,
    pub config: BertConfig,
}

impl BertModel {
    /// `prefix` is where BertModel sits in the state dict ("model.text_backbone").
    pub fn build(b: &mut Builder, prefix: &str, cfg: &BertConfig) -> Result<BertModel> {
        let p = |s: &str| crate::nn::join(prefix, s);
        let (h, eps) = (cfg.hidden_size, cfg.layer_norm_eps);
        let word_embeddings =
            b.src
                .embedding(&p("embeddings.word_embeddings"), cfg.vocab_size, h)?;
        let position_embeddings = b.src.embedding(
            &p("embeddings.position_embeddings"),
            cfg.max_position_embeddings,
            h,
        )?;
        let token_type_embeddings = b.src.embedding(
            &p("embeddings.token_type_embeddings"),
            cfg.type_vocab_size,
            h,
        )?;
        let embed_norm = b.src.layer_norm(&p("embeddings.LayerNorm"), h, eps)?;
        // Older checkpoints store the position-id buffer; it is rebuilt, never read.
        b.src.alias(&p("embeddings.position_ids"));
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| {
                let l = p(&format!("encoder.layer.{i}"));
                Ok(BertLayer {
                    query: b.linear(&format!("{l}.attention.self.query"), h, h, true)?,
                    key: b.linear(&format!("{l}.attention.self.key"), h, h, true)?,
                    value: b.linear(&format!("{l}.attention.self.value"), h, h, true)?,
                    attn_out: b.linear(&format!("{l}.attention.output.dense"), h, h, true)?,
                    attn_norm: b.src.layer_norm(
                        &format!("{l}.attention.output.LayerNorm"),
                        h,
                        eps,
                    )?,
                    intermediate: b.linear(
                        &format!("{l}.intermediate.dense"),
                        h,
                        cfg.intermediate_size,
                        true,
                    )?,
                    output: b.linear(
                        &format!("{l}.output.dense"),
                        cfg.intermediate_size,
                        h,
                        true,
                    )?,
                    out_norm: b.src.layer_norm(&format!("{l}.output.LayerNorm"), h, eps)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(BertModel {
            word_embeddings,
            position_embeddings,
            token_type_embeddings,
            embed_norm,
            layers,
            config: cfg.clone(),
        })
    }

    /// input_ids, token_type_ids, position_ids [B, L] (i64); `attend` [B, L, L] u8 (1 = the
    /// query may attend to the key) → last hidden state [B, L, hidden].
    pub fn forward(
        &self,
        input_ids: &Tensor,
        token_type_ids: &Tensor,
        position_ids: &Tensor,
        attend: &Tensor,
    ) -> Result<Tensor> {
        let cfg = &self.config;
        let (b, l) = (input_ids.dims()[0], input_ids.dims()[1]);
        let check_ids = |t: &Tensor, what: &str, limit: usize| -> Result<()> {
            if t.dims() != [b, l] {
                return Err(Error::Shape {
                    op: "BERT",
                    msg: format!("{what} {} must be [{b}, {l}]", t.shape()),
                });
            }
            if let Some(bad) = t
                .to_vec_f64()?
                .into_iter()
                .find(|&v| v < 0.0 || v >= limit as f64)
            {
                return Err(Error::Index {
                    op: "BERT",
                    msg: format!("{what} holds {bad}, outside 0..{limit}"),
                });
            }
            Ok(())
        };
        check_ids(input_ids, "input_ids", cfg.vocab_size)?;
        check_ids(token_type_ids, "token_type_ids", cfg.type_vocab_size)?;
        check_ids(position_ids, "position_ids", cfg.max_position_embeddings)?;
        if attend.dims() != [b, l, l] {
            return Err(Error::Shape {
                op: "BERT",
                msg: format!("attention mask {} must be [{b}, {l}, {l}]", attend.shape()),
            });
        }
        let look = |table: &Tensor, ids: &Tensor| -> Result<Tensor> {
            table
                .index_select(0, &ids.reshape([b * l])?.to_dtype(DType::I64)?)?
                .reshape([b, l, cfg.hidden_size])
        };
        let x = look(&self.word_embeddings, input_ids)?
            .add(&look(&self.token_type_embeddings, token_type_ids)?)?
            .add(&look(&self.position_embeddings, position_ids)?)?;
        let mut x = self.embed_norm.forward(&x)?;
        // 0 where attended, −inf elsewhere (transformers adds finfo.min: the same softmax).
        let bias = Tensor::where_cond(
            &attend.to_dtype(DType::U8)?,
            &Tensor::zeros((), DType::F32),
            &Tensor::full(f64::NEG_INFINITY, (), DType::F32),
        )?
        .unsqueeze(1)?;
        let (nh, hd) = (
            cfg.num_attention_heads,
            cfg.hidden_size / cfg.num_attention_heads,
        );
        for layer in &self.layers {
            let heads = |p: &Proj| -> Result<Tensor> {
                p.forward(&x)?
                    .reshape([b, l, nh, hd])?
                    .permute(&[0, 2, 1, 3])
            };
            let o = heads(&layer.query)?.scaled_dot_product_attention(
                &heads(&layer.key)?,
                &heads(&layer.value)?,
                Some(&bias),
                None,
                None,
            )?;
            let o = layer.attn_out.forward(&o.permute(&[0, 2, 1, 3])?.reshape([
                b,
                l,
                cfg.hidden_size,
            ])?)?;
            let a = layer.attn_norm.forward(&o.add(&x)?)?;
            let m = layer
                .output
                .forward(&cfg.hidden_act.apply(&layer.intermediate.forward(&a)?)?)?;
            x = layer.out_norm.forward(&m.add(&a)?)?;
        }
        Ok(x)
    }
}

struct Emb<'a>(&'a BertModel);
impl Module for Emb<'_> {
    fn visit_children(&self, f: &mut dyn FnMut(&str, &dyn Module)) {
        f("word_embeddings", &W(&self.0.word_embeddings));
        f("position_embeddings", &W(&self.0.position_embeddings));
        f("token_type_embeddings", &W(&self.0.token_type_embeddings));
        f("LayerNorm", &self.0.embed_norm);
    }
}
struct W<'a>(&'a Tensor);
impl Module for W<'_> {
    fn visit_own_params(&self, f: &mut dyn FnMut(&str, &Tensor)) {
        f("weight", self.0);
    }
}
impl Module for BertLayer {
    fn visit_children(&self, f: &mut dyn FnMut(&str, &dyn Module)) {
        f("attention.self.query", &self.query);
        f("attention.self.key", &self.key);
        f("attention.self.value", &self.value);
        f("attention.output.dense", &self.attn_out);
        f("attention.output.LayerNorm", &self.attn_norm);
        f("intermediate.dense", &self.intermediate);
        f("output.dense", &self.output);
        f("output.LayerNorm", &self.out_norm);
    }
}
impl Module for BertModel {
    fn visit_children(&self, f: &mut dyn FnMut(&str, &dyn Module)) {
        f("embeddings", &Emb(self));
        for (i, l) in self.layers.iter().enumerate() {
            f(&format!("encoder.layer.{i}"), l);
        }
    }
}
