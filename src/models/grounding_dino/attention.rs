//! The two dense attentions of Grounding DINO: GroundingDinoMultiheadAttention (text
//! self-attention, decoder self- and text cross-attention) and the bi-directional
//! image↔text attention of the fusion layer.
use crate::nn::builder::{Builder, Proj};
use crate::nn::{Forward, Module};
use crate::{DType, Result, Tensor};

/// 0 where `allowed`, −inf elsewhere (masks are u8, 1 = allowed), in f32.
pub fn additive_mask(allowed: &Tensor) -> Result<Tensor> {
    Tensor::where_cond(
        &allowed.to_dtype(DType::U8)?,
        &Tensor::zeros((), DType::F32),
        &Tensor::full(f64::NEG_INFINITY, (), DType::F32),
    )
}

pub struct MultiheadAttention {
    pub query: Proj,
    pub key: Proj,
    pub value: Proj,
    pub out_proj: Proj,
    heads: usize,
}

impl MultiheadAttention {
    pub fn build(b: &mut Builder, name: &str, d: usize, heads: usize) -> Result<Self> {
        Ok(MultiheadAttention {
            query: b.linear(&format!("{name}.query"), d, d, true)?,
            key: b.linear(&format!("{name}.key"), d, d, true)?,
            value: b.linear(&format!("{name}.value"), d, d, true)?,
            out_proj: b.linear(&format!("{name}.out_proj"), d, d, true)?,
            heads,
        })
    }

    /// q [B, Lq, d], k and v [B, Lk, d]; `bias` broadcastable to [B, nh, Lq, Lk].
    pub fn forward(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        bias: Option<&Tensor>,
    ) -> Result<Tensor> {
        let (b, lq, d) = (q.dims()[0], q.dims()[1], q.dims()[2]);
        let nh = self.heads;
        let heads = |p: &Proj, x: &Tensor| -> Result<Tensor> {
            p.forward(x)?
                .reshape([b, x.dims()[1], nh, d / nh])?
                .permute(&[0, 2, 1, 3])
        };
        let o = heads(&self.query, q)?.scaled_dot_product_attention(
            &heads(&self.key, k)?,
            &heads(&self.value, v)?,
            bias,
            None,
            None,
        )?;
        self.out_proj
            .forward(&o.permute(&[0, 2, 1, 3])?.reshape([b, lq, d])?)
    }
}

impl Module for MultiheadAttention {
    fn visit_children(&self, f: &mut dyn FnMut(&str, &dyn Module)) {
        f("query", &self.query);
        f("key", &self.key);
        f("value", &self.value);
        f("out_proj", &self.out_proj);
    }
}

/// GroundingDinoBiMultiHeadAttention: one score matrix between image and text tokens,
/// softmaxed both ways.
pub struct BiAttention {
    pub vision_proj: Proj,
    pub text_proj: Proj,
    pub values_vision_proj: Proj,
    pub values_text_proj: Proj,
    pub out_vision_proj: Proj,
    pub out_text_proj: Proj,
    heads: usize,
    embed: usize,
}

impl BiAttention {
    pub fn build(
        b: &mut Builder,
        name: &str,
        d: usize,
        embed: usize,
        heads: usize,
    ) -> Result<Self> {
        let l = |b: &mut Builder, n: &str, i, o| b.linear(&format!("{name}.{n}"), i, o, true);
        Ok(BiAttention {
            vision_proj: l(b, "vision_proj", d, embed)?,
            text_proj: l(b, "text_proj", d, embed)?,
            values_vision_proj: l(b, "values_vision_proj", d, embed)?,
            values_text_proj: l(b, "values_text_proj", d, embed)?,
            out_vision_proj: l(b, "out_vision_proj", embed, d)?,
            out_text_proj: l(b, "out_text_proj", embed, d)?,
            heads,
            embed,
        })
    }

    /// vision [B, Nv, d], text [B, Nt, d]; `vision_keep` [B, Nv] and `text_keep` [B, Nt]
    /// u8 (1 = real token). → (vision delta [B, Nv, d], text delta [B, Nt, d]).
    pub fn forward(
        &self,
        vision: &Tensor,
        text: &Tensor,
        vision_keep: &Tensor,
        text_keep: &Tensor,
    ) -> Result<(Tensor, Tensor)> {
        let (b, nv, nt) = (vision.dims()[0], vision.dims()[1], text.dims()[1]);
        let (nh, e) = (self.heads, self.embed);
        let hd = e / nh;
        let heads = |x: Tensor, n: usize| -> Result<Tensor> {
            x.reshape([b, n, nh, hd])?.permute(&[0, 2, 1, 3])
        };
        let vq = heads(
            self.vision_proj
                .forward(vision)?
                .mul_scalar((hd as f64).powf(-0.5))?,
            nv,
        )?;
        let tk = heads(self.text_proj.forward(text)?, nt)?;
        let vv = heads(self.values_vision_proj.forward(vision)?, nv)?;
        let tv = heads(self.values_text_proj.forward(text)?, nt)?;
        let s = vq.matmul(&tk.transpose(2, 3)?)?; // [B, nh, Nv, Nt]
        // The reference shifts by the global max and clamps to ±50000 (an fp16 guard); the
        // shift cannot change a softmax, the clamp can, so both are kept. The max is a
        // constant for the gradient, as the shift cancels in the softmax.
        let s = s.sub(&s.detach().max_all()?)?.clamp(-50000.0, 50000.0)?;
        let st = s.transpose(2, 3)?;
        let st = st
            .sub(&st.detach().max(-1, true)?)?
            .clamp(-50000.0, 50000.0)?;
        let text_attn = st
            .add(&additive_mask(vision_keep)?.reshape([b, 1, 1, nv])?)?
            .softmax(-1)?;
        let vision_attn = s
            .add(&additive_mask(text_keep)?.reshape([b, 1, 1, nt])?)?
            .softmax(-1)?;
        let merge = |x: Tensor, n: usize| -> Result<Tensor> {
            x.permute(&[0, 2, 1, 3])?.reshape([b, n, e])
        };
        let v_out = self
            .out_vision_proj
            .forward(&merge(vision_attn.matmul(&tv)?, nv)?)?;
        let t_out = self
            .out_text_proj
            .forward(&merge(text_attn.matmul(&vv)?, nt)?)?;
        Ok((v_out, t_out))
    }
}

impl Module for BiAttention {
    fn visit_children(&self, f: &mut dyn FnMut(&str, &dyn Module)) {
        f("vision_proj", &self.vision_proj);
        f("text_proj", &self.text_proj);
        f("values_vision_proj", &self.values_vision_proj);
        f("values_text_proj", &self.values_text_proj);
        f("out_vision_proj", &self.out_vision_proj);
        f("out_text_proj", &self.out_text_proj);
    }
}
