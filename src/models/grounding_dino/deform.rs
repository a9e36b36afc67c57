//! Multi-scale deformable attention (GroundingDinoMultiscaleDeformableAttention): each
//! query samples `points` locations per head and level around its reference point and
//! takes their softmax-weighted sum.
use crate::nn::builder::{Builder, Proj};
use crate::nn::{Forward, Module};
use crate::{Error, Result, Tensor};

pub struct DeformableAttention {
    pub sampling_offsets: Proj,
    pub attention_weights: Proj,
    pub value_proj: Proj,
    pub output_proj: Proj,
    heads: usize,
    levels: usize,
    points: usize,
}

impl DeformableAttention {
    pub fn build(
        b: &mut Builder,
        name: &str,
        d: usize,
        heads: usize,
        levels: usize,
        points: usize,
    ) -> Result<Self> {
        Ok(DeformableAttention {
            sampling_offsets: b.linear(
                &format!("{name}.sampling_offsets"),
                d,
                heads * levels * points * 2,
                true,
            )?,
            attention_weights: b.linear(
                &format!("{name}.attention_weights"),
                d,
                heads * levels * points,
                true,
            )?,
            value_proj: b.linear(&format!("{name}.value_proj"), d, d, true)?,
            output_proj: b.linear(&format!("{name}.output_proj"), d, d, true)?,
            heads,
            levels,
            points,
        })
    }

    /// hidden [B, Q, d] (+ pos), over `values` [B, S, d] whose padding rows `valid` [B, S]
    /// (1 = real, f32) zeroes; reference [B, Q, L, 2] (points) or [B, Q, L, 4] (boxes).
    pub fn forward(
        &self,
        hidden: &Tensor,
        pos: Option<&Tensor>,
        values: &Tensor,
        valid: &Tensor,
        reference: &Tensor,
        shapes: &[(usize, usize)],
    ) -> Result<Tensor> {
        let q = match pos {
            Some(p) => hidden.add(p)?,
            None => hidden.clone(),
        };
        let (b, nq, d) = (q.dims()[0], q.dims()[1], q.dims()[2]);
        let s = values.dims()[1];
        let (nh, nl, np) = (self.heads, self.levels, self.points);
        let value = self
            .value_proj
            .forward(values)?
            .mul(&valid.unsqueeze(2)?)?
            .reshape([b, s, nh, d / nh])?;
        let off = self
            .sampling_offsets
            .forward(&q)?
            .reshape([b, nq, nh, nl, np, 2])?;
        let att = self
            .attention_weights
            .forward(&q)?
            .reshape([b, nq, nh, nl * np])?
            .softmax(-1)?
            .reshape([b, nq, nh, nl, np])?;
        let loc = match reference.dims()[3] {
            2 => {
                // offsets are in cells of each level: divide by (w, h).
                let norm: Vec<f32> = shapes
                    .iter()
                    .flat_map(|&(h, w)| [w as f32, h as f32])
                    .collect();
                let norm = Tensor::from_vec(norm, [1, 1, 1, nl, 1, 2])?;
                reference
                    .reshape([b, nq, 1, nl, 1, 2])?
                    .add(&off.div(&norm)?)?
            }
            4 => {
                let xy = reference.narrow(3, 0, 2)?.reshape([b, nq, 1, nl, 1, 2])?;
                let wh = reference.narrow(3, 2, 2)?.reshape([b, nq, 1, nl, 1, 2])?;
                xy.add(&off.div_scalar(np as f64)?.mul(&wh)?.mul_scalar(0.5)?)?
            }
            k => {
                return Err(Error::Shape {
                    op: "deformable attention",
                    msg: format!("reference points end in {k} coordinates, not 2 or 4"),
                });
            }
        };
        let out = value.ms_deform_attn(shapes, &loc, &att)?;
        self.output_proj.forward(&out)
    }
}

impl Module for DeformableAttention {
    fn visit_children(&self, f: &mut dyn FnMut(&str, &dyn Module)) {
        f("sampling_offsets", &self.sampling_offsets);
        f("attention_weights", &self.attention_weights);
        f("value_proj", &self.value_proj);
        f("output_proj", &self.output_proj);
    }
}
