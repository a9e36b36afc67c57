//! SAM's mask decoder (transformers' SamMaskDecoder): output tokens + prompt tokens through
//! the two-way transformer, the image tokens upscaled 4× by transposed convs, one
//! hypernetwork MLP per mask token giving that mask's weights, and the IoU head.
use super::build::{Builder, Init, Proj};
use super::config::DecoderConfig;
use super::two_way::TwoWayTransformer;
use super::vision::layer_norm_nchw;
use crate::nn::{Forward, LayerNorm, Module};
use crate::tensor::ConvTranspose2dParams;
use crate::{Result, Tensor};

/// SamFeedForward: proj_in, ReLU, (depth − 2) × (Linear, ReLU), proj_out.
pub struct FeedForward {
    pub proj_in: Proj,
    pub layers: Vec<Proj>,
    pub proj_out: Proj,
}

impl FeedForward {
    pub fn build(
        b: &mut Builder,
        name: &str,
        (i, h, o): (usize, usize, usize),
        depth: usize,
    ) -> Result<FeedForward> {
        Ok(FeedForward {
            proj_in: b.linear(&format!("{name}.proj_in"), i, h, true)?,
            layers: (0..depth.saturating_sub(2))
                .map(|k| b.linear(&format!("{name}.layers.{k}"), h, h, true))
                .collect::<Result<_>>()?,
            proj_out: b.linear(&format!("{name}.proj_out"), h, o, true)?,
        })
    }
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut x = self.proj_in.forward(x)?.relu()?;
        for l in &self.layers {
            x = l.forward(&x)?.relu()?;
        }
        self.proj_out.forward(&x)
    }
}

/// A transposed conv with kernel 2, stride 2 (SAM's upscaling).
pub struct Up2 {
    pub weight: Tensor,
    pub bias: Tensor,
}

impl Up2 {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.conv_transpose2d(
            &self.weight,
            Some(&self.bias),
            ConvTranspose2dParams {
                stride: (2, 2),
                ..Default::default()
            },
        )
    }
}

pub struct MaskDecoder {
    /// [1, C]
    pub iou_token: Tensor,
    /// [num_multimask_outputs + 1, C]
    pub mask_tokens: Tensor,
    pub transformer: TwoWayTransformer,
    pub upscale_conv1: Up2,
    pub upscale_conv2: Up2,
    pub upscale_layer_norm: LayerNorm,
    pub output_hypernetworks_mlps: Vec<FeedForward>,
    pub iou_prediction_head: FeedForward,
}

/// Low-res mask logits [B, nb, M, 4h, 4w] and predicted IoUs [B, nb, M].
pub struct DecoderOutput {
    pub masks: Tensor,
    pub iou_scores: Tensor,
}

impl MaskDecoder {
    pub fn build(b: &mut Builder, cfg: &DecoderConfig) -> Result<MaskDecoder> {
        let p = "mask_decoder";
        let c = cfg.hidden_size;
        let m = cfg.num_multimask_outputs + 1;
        let up = |b: &mut Builder, n: &str, i: usize, o: usize| -> Result<Up2> {
            Ok(Up2 {
                // ConvTranspose2d weight is [in, out, k, k]; torch's fan-in is its dim 1.
                weight: b
                    .src
                    .param(&format!("{p}.{n}.weight"), [i, o, 2, 2], Init::Default)?,
                bias: b
                    .src
                    .param(&format!("{p}.{n}.bias"), [o], Init::Bias(o * 4))?,
            })
        };
        Ok(MaskDecoder {
            iou_token: b.src.embedding(&format!("{p}.iou_token"), 1, c)?,
            mask_tokens: b.src.embedding(&format!("{p}.mask_tokens"), m, c)?,
            transformer: TwoWayTransformer::build(b, cfg)?,
            upscale_conv1: up(b, "upscale_conv1", c, c / 4)?,
            upscale_conv2: up(b, "upscale_conv2", c / 4, c / 8)?,
            upscale_layer_norm: b.src.layer_norm(
                &format!("{p}.upscale_layer_norm"),
                c / 4,
                1e-6,
            )?,
            output_hypernetworks_mlps: (0..m)
                .map(|i| {
                    FeedForward::build(
                        b,
                        &format!("{p}.output_hypernetworks_mlps.{i}"),
                        (c, c, c / 8),
                        3,
                    )
                })
                .collect::<Result<_>>()?,
            iou_prediction_head: FeedForward::build(
                b,
                &format!("{p}.iou_prediction_head"),
                (c, cfg.iou_head_hidden_dim, m),
                cfg.iou_head_depth,
            )?,
        })
    }

    /// image [B, C, h, w], image_pe [1 or B, C, h, w], sparse [B, nb, T, C], dense
    /// [B, C, h, w].
    pub fn forward(
        &self,
        image: &Tensor,
        image_pe: &Tensor,
        sparse: &Tensor,
        dense: &Tensor,
        multimask: bool,
    ) -> Result<DecoderOutput> {
        let (b, c, h, w) = (
            image.dims()[0],
            image.dims()[1],
            image.dims()[2],
            image.dims()[3],
        );
        let nb = sparse.dims()[1];
        let m = self.mask_tokens.dims()[0];
        let out_tokens = Tensor::cat(&[&self.iou_token, &self.mask_tokens], 0)?; // [1+M, C]
        let out_tokens = out_tokens
            .reshape([1, 1, m + 1, c])?
            .expand([b, nb, m + 1, c])?;
        let tokens = Tensor::cat(&[&out_tokens, sparse], 2)?;
        // Each image's data repeated per prompt (repeat_interleave over the batch).
        let per_prompt = |t: &Tensor| -> Result<Tensor> {
            t.unsqueeze(1)?
                .expand([b, nb, c, h, w])?
                .reshape([b * nb, c, h, w])
        };
        let img = per_prompt(&image.add(dense)?)?;
        let pe = per_prompt(&image_pe.expand([b, c, h, w])?)?;
        let (hs, keys) = self.transformer.forward(&tokens, &img, &pe)?;
        let iou_token_out = hs.narrow(2, 0, 1)?.squeeze(2)?; // [B, nb, C]

        let src = keys.transpose(2, 3)?.reshape([b * nb, c, h, w])?;
        let up = self.upscale_conv1.forward(&src)?;
        let up = layer_norm_nchw(&self.upscale_layer_norm, &up)?.gelu()?;
        let up = self.upscale_conv2.forward(&up)?.gelu()?; // [B·nb, C/8, 4h, 4w]
        let (c8, uh, uw) = (up.dims()[1], up.dims()[2], up.dims()[3]);

        let hyper: Vec<Tensor> = self
            .output_hypernetworks_mlps
            .iter()
            .enumerate()
            .map(|(i, mlp)| mlp.forward(&hs.narrow(2, 1 + i, 1)?.squeeze(2)?))
            .collect::<Result<_>>()?;
        let hyper_refs: Vec<&Tensor> = hyper.iter().collect();
        let hyper_in = Tensor::stack(&hyper_refs, 2)?; // [B, nb, M, C/8]
        let masks = hyper_in
            .matmul(&up.reshape([b, nb, c8, uh * uw])?)?
            .reshape([b, nb, m, uh, uw])?;
        let iou = self.iou_prediction_head.forward(&iou_token_out)?; // [B, nb, M]
        let (start, len) = if multimask { (1, m - 1) } else { (0, 1) };
        Ok(DecoderOutput {
            masks: masks.narrow(2, start, len)?,
            iou_scores: iou.narrow(2, start, len)?,
        })
    }
}

impl Module for FeedForward {
    fn visit_children(&self, f: &mut dyn FnMut(&str, &dyn Module)) {
        f("proj_in", &self.proj_in);
        f("proj_out", &self.proj_out);
        for (i, l) in self.layers.iter().enumerate() {
            f(&format!("layers.{i}"), l);
        }
    }
}

impl Module for Up2 {
    fn visit_own_params(&self, f: &mut dyn FnMut(&str, &Tensor)) {
        f("weight", &self.weight);
        f("bias", &self.bias);
    }
}

impl Module for MaskDecoder {
    fn visit_children(&self, f: &mut dyn FnMut(&str, &dyn Module)) {
        f("iou_token", &super::prompt::Weight(&self.iou_token));
        f("mask_tokens", &super::prompt::Weight(&self.mask_tokens));
        f("transformer", &self.transformer);
        f("upscale_conv1", &self.upscale_conv1);
        f("upscale_conv2", &self.upscale_conv2);
        f("upscale_layer_norm", &self.upscale_layer_norm);
        for (i, m) in self.output_hypernetworks_mlps.iter().enumerate() {
            f(&format!("output_hypernetworks_mlps.{i}"), m);
        }
        f("iou_prediction_head", &self.iou_prediction_head);
    }
}
