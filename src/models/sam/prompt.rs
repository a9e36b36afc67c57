//! SAM's prompt encoder (transformers' SamPromptEncoder): random-Fourier positional encoding
//! of points and box corners, the learned point/corner embeddings, and the dense embedding
//! (a mask prompt through a small conv stack, or the learned "no mask" vector).
use super::build::Builder;
use super::config::{Act, PromptConfig};
use super::vision::layer_norm_nchw;
use crate::nn::{Conv2d, Forward, LayerNorm, Module};
use crate::tensor::Conv2dParams;
use crate::{DType, Error, Result, Tensor};

/// SamPositionalEmbedding: coords in [0, 1]² → [sin(2π(2c−1)·G), cos(2π(2c−1)·G)].
pub struct PositionalEmbedding {
    /// G [2, F], shared by the image-wide grid and the prompts.
    pub gaussian: Tensor,
}

impl PositionalEmbedding {
    /// `coords` [..., 2] (x, y) already divided by the image size → [..., 2F].
    pub fn forward(&self, coords: &Tensor) -> Result<Tensor> {
        let c = coords.affine(2.0, -1.0)?.matmul(&self.gaussian)?;
        let c = c.mul_scalar(2.0 * std::f64::consts::PI)?;
        Tensor::cat(&[&c.sin()?, &c.cos()?], -1)
    }

    /// The encoding of every cell centre of a size×size grid: [1, 2F, size, size].
    pub fn grid(&self, size: usize) -> Result<Tensor> {
        let mut v = Vec::with_capacity(size * size * 2);
        for y in 0..size {
            for x in 0..size {
                // transformers: cumsum of ones − 0.5, then / size, in f32.
                v.push((x as f32 + 1.0 - 0.5) / size as f32);
                v.push((y as f32 + 1.0 - 0.5) / size as f32);
            }
        }
        let pe = self.forward(&Tensor::from_vec(v, [size, size, 2])?)?;
        pe.permute(&[2, 0, 1])?.unsqueeze(0)
    }
}

pub struct MaskEmbedding {
    pub conv1: Conv2d,
    pub layer_norm1: LayerNorm,
    pub conv2: Conv2d,
    pub layer_norm2: LayerNorm,
    pub conv3: Conv2d,
    pub act: Act,
}

impl MaskEmbedding {
    /// masks [B, 1, 4h, 4w] → [B, C, h, w].
    pub fn forward(&self, masks: &Tensor) -> Result<Tensor> {
        let x = self.conv1.forward(masks)?;
        let x = self.act.apply(&layer_norm_nchw(&self.layer_norm1, &x)?)?;
        let x = self.conv2.forward(&x)?;
        let x = self.act.apply(&layer_norm_nchw(&self.layer_norm2, &x)?)?;
        self.conv3.forward(&x)
    }
}

pub struct PromptEncoder {
    pub mask_embed: MaskEmbedding,
    /// [1, C]
    pub no_mask_embed: Tensor,
    /// point_embed.{0..3}.weight, each [1, C]: negative point, positive point, box corner 1,
    /// box corner 2.
    pub point_embed: Vec<Tensor>,
    pub not_a_point_embed: Tensor,
    pub config: PromptConfig,
}

/// What the prompt encoder gives the mask decoder.
pub struct PromptEmbeddings {
    /// [B, nb, T, C]
    pub sparse: Tensor,
    /// [B, C, h, w]
    pub dense: Tensor,
}

impl PromptEncoder {
    pub fn build(b: &mut Builder, cfg: &PromptConfig) -> Result<PromptEncoder> {
        let p = "prompt_encoder";
        let c = cfg.hidden_size;
        let mic = cfg.mask_input_channels;
        let k2 = Conv2dParams {
            stride: (2, 2),
            ..Default::default()
        };
        let eps = cfg.layer_norm_eps;
        let mask_embed = MaskEmbedding {
            conv1: b
                .src
                .conv(&format!("{p}.mask_embed.conv1"), 1, mic / 4, 2, k2, true)?,
            layer_norm1: b
                .src
                .layer_norm(&format!("{p}.mask_embed.layer_norm1"), mic / 4, eps)?,
            conv2: b
                .src
                .conv(&format!("{p}.mask_embed.conv2"), mic / 4, mic, 2, k2, true)?,
            layer_norm2: b
                .src
                .layer_norm(&format!("{p}.mask_embed.layer_norm2"), mic, eps)?,
            conv3: b.src.conv(
                &format!("{p}.mask_embed.conv3"),
                mic,
                c,
                1,
                Conv2dParams::default(),
                true,
            )?,
            act: cfg.hidden_act,
        };
        let no_mask_embed = b.src.embedding(&format!("{p}.no_mask_embed"), 1, c)?;
        let point_embed = (0..cfg.num_point_embeddings)
            .map(|i| b.src.embedding(&format!("{p}.point_embed.{i}"), 1, c))
            .collect::<Result<Vec<_>>>()?;
        let not_a_point_embed = b.src.embedding(&format!("{p}.not_a_point_embed"), 1, c)?;
        Ok(PromptEncoder {
            mask_embed,
            no_mask_embed,
            point_embed,
            not_a_point_embed,
            config: cfg.clone(),
        })
    }

    /// Pixel coords [..., 2] (x, y) in the padded input frame → the positional encoding of
    /// the pixel centres.
    fn encode_coords(&self, pe: &PositionalEmbedding, coords: &Tensor) -> Result<Tensor> {
        let s = self.config.image_size as f64;
        pe.forward(&coords.add_scalar(0.5)?.div_scalar(s)?)
    }

    /// boxes [B, nb, 4] xyxy → [B, nb, 2, C].
    pub fn embed_boxes(&self, pe: &PositionalEmbedding, boxes: &Tensor) -> Result<Tensor> {
        let (b, nb) = (boxes.dims()[0], boxes.dims()[1]);
        let corners = self.encode_coords(pe, &boxes.reshape([b, nb, 2, 2])?)?;
        let c = corners.dims()[3];
        let add = Tensor::cat(&[&self.point_embed[2], &self.point_embed[3]], 0)?; // [2, C]
        corners.add(&add.reshape([1, 1, 2, c])?)
    }

    /// points [B, nb, n, 2] with labels [B, nb, n] (1 positive, 0 negative, −1 not a point,
    /// −10 padding) → [B, nb, n(+1), C]; `pad` appends one not-a-point (no box follows).
    pub fn embed_points(
        &self,
        pe: &PositionalEmbedding,
        points: &Tensor,
        labels: &[i64],
        pad: bool,
    ) -> Result<Tensor> {
        let (b, nb, n) = (points.dims()[0], points.dims()[1], points.dims()[2]);
        let mut labels = labels.to_vec();
        let mut points = points.to_dtype(DType::F32)?;
        let mut n_out = n;
        if pad {
            points = Tensor::cat(&[&points, &Tensor::zeros([b, nb, 1, 2], DType::F32)], 2)?;
            labels = labels
                .chunks(n)
                .flat_map(|ch| ch.iter().copied().chain([-1]))
                .collect();
            n_out += 1;
        }
        let enc = self.encode_coords(pe, &points)?; // [B, nb, n_out, C]
        let c = enc.dims()[3];
        // Per-point: keep the encoding (labels 0/1) or replace it (−1: not_a_point; −10: 0),
        // then add the label's learned embedding.
        let (mut keep, mut add) = (Vec::with_capacity(labels.len()), Vec::new());
        for &l in &labels {
            keep.push(if l == 0 || l == 1 { 1.0f32 } else { 0.0 });
        }
        let zero = Tensor::zeros([1, c], DType::F32);
        for &l in &labels {
            add.push(match l {
                1 => self.point_embed[1].clone(),
                0 => self.point_embed[0].clone(),
                -1 => self.not_a_point_embed.clone(),
                -10 => zero.clone(),
                other => {
                    return Err(Error::msg(format!(
                        "SAM point label {other}: labels are 1, 0, -1 or -10"
                    )));
                }
            });
        }
        let keep = Tensor::from_vec(keep, [b, nb, n_out, 1])?;
        let add_refs: Vec<&Tensor> = add.iter().collect();
        let add = Tensor::cat(&add_refs, 0)?.reshape([b, nb, n_out, c])?;
        enc.mul(&keep)?.add(&add)
    }

    /// The dense embedding: of `masks` [B, 1, 4h, 4w] when given, else no_mask_embed
    /// broadcast over the h×w grid.
    pub fn dense(&self, batch: usize, masks: Option<&Tensor>) -> Result<Tensor> {
        match masks {
            Some(m) => self.mask_embed.forward(m),
            None => {
                let (c, s) = (
                    self.no_mask_embed.dims()[1],
                    self.config.image_embedding_size,
                );
                self.no_mask_embed
                    .reshape([1, c, 1, 1])?
                    .expand([batch, c, s, s])
            }
        }
    }
}

impl Module for MaskEmbedding {
    fn visit_children(&self, f: &mut dyn FnMut(&str, &dyn Module)) {
        f("conv1", &self.conv1);
        f("conv2", &self.conv2);
        f("conv3", &self.conv3);
        f("layer_norm1", &self.layer_norm1);
        f("layer_norm2", &self.layer_norm2);
    }
}

/// An `nn.Embedding`'s lone weight, as a module.
pub struct Weight<'a>(pub &'a Tensor);
impl Module for Weight<'_> {
    fn visit_own_params(&self, f: &mut dyn FnMut(&str, &Tensor)) {
        f("weight", self.0);
    }
}

impl Module for PromptEncoder {
    fn visit_children(&self, f: &mut dyn FnMut(&str, &dyn Module)) {
        f("mask_embed", &self.mask_embed);
        f("no_mask_embed", &Weight(&self.no_mask_embed));
        for (i, p) in self.point_embed.iter().enumerate() {
            f(&format!("point_embed.{i}"), &Weight(p));
        }
        f("not_a_point_embed", &Weight(&self.not_a_point_embed));
    }
}
