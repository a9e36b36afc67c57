//! SamModel as transformers builds it: the shared positional encoding, the ViT image
//! encoder, the prompt encoder and the mask decoder, with transformers' parameter names.
use super::build::{Builder, Init, ParamSource};
use super::config::SamConfig;
use super::decoder::{DecoderOutput, MaskDecoder};
use super::prompt::{PositionalEmbedding, PromptEncoder};
use super::vision::VisionEncoder;
use crate::io::StateDict;
use crate::nn::{LoraConfig, LoraPlan, Module};
use crate::{DType, Error, Result, Tensor};
use std::path::Path;

pub struct SamModel {
    pub shared_image_embedding: PositionalEmbedding,
    pub vision_encoder: VisionEncoder,
    pub prompt_encoder: PromptEncoder,
    pub mask_decoder: MaskDecoder,
    pub config: SamConfig,
}

/// The prompts for one batch of images: boxes [B, nb, 4] xyxy in the padded input frame
/// (pixels), and/or points [B, nb, n, 2] with labels, and an optional mask prompt.
#[derive(Default)]
pub struct Prompts<'a> {
    pub boxes: Option<&'a Tensor>,
    pub points: Option<(&'a Tensor, &'a [i64])>,
    /// [B, 1, 4h, 4w] low-res mask logits.
    pub masks: Option<&'a Tensor>,
}

const TIED: &str = "prompt_encoder.shared_embedding.positional_embedding";
const SHARED: &str = "shared_image_embedding.positional_embedding";

impl SamModel {
    /// Build from `src`; every Linear goes through the builder (and so the LoRA plan).
    pub fn build(cfg: &SamConfig, b: &mut Builder) -> Result<SamModel> {
        cfg.validate()?;
        let f = cfg.vision.num_pos_feats;
        // segment-anything draws this Gaussian with std 1 (PositionEmbeddingRandom's
        // default scale), which keeps the encoding smooth over the image; transformers'
        // random init uses hidden/2, whose high frequencies leave a fresh model unable to
        // tell where a box is. Loaded checkpoints carry their own values either way.
        let scale = 1.0;
        // transformers ties the prompt encoder's copy to this one; a checkpoint may hold
        // either name or both.
        let gaussian_name = match &b.src {
            ParamSource::Load { sd, .. } if !sd.contains(SHARED) && sd.contains(TIED) => TIED,
            _ => SHARED,
        };
        let gaussian = b.src.param(gaussian_name, [2, f], Init::Normal(scale))?;
        b.src.alias(TIED);
        Ok(SamModel {
            shared_image_embedding: PositionalEmbedding { gaussian },
            vision_encoder: VisionEncoder::build(b, &cfg.vision)?,
            prompt_encoder: PromptEncoder::build(b, &cfg.prompt)?,
            mask_decoder: MaskDecoder::build(b, &cfg.decoder)?,
            config: cfg.clone(),
        })
    }

    /// A randomly initialised model (tests, the synthetic training check).
    pub fn random(cfg: &SamConfig, seed: u64) -> Result<SamModel> {
        let mut b = Builder {
            src: ParamSource::random(seed),
            plan: None,
        };
        SamModel::build(cfg, &mut b)
    }

    /// From a state dict with transformers' names (or segment-anything's, mapped). Every
    /// missing, mis-shaped or unknown tensor is reported together, naming `origin`.
    pub fn from_state_dict(cfg: &SamConfig, sd: &StateDict, origin: &str) -> Result<SamModel> {
        Ok(SamModel::from_state_dict_lora(cfg, sd, origin, None)?.0)
    }

    /// As `from_state_dict`, with LoRA adapters on the Linears `lora` targets (PEFT's
    /// rules; none matching is an error). With adapters, only their A and B matrices stay
    /// trainable. Returns the adapted module names.
    pub fn from_state_dict_lora(
        cfg: &SamConfig,
        sd: &StateDict,
        origin: &str,
        lora: Option<(LoraConfig, u64)>,
    ) -> Result<(SamModel, Vec<String>)> {
        let mapped;
        let sd = if super::official_names::is_official(sd) {
            mapped = super::official_names::convert_official(sd)
                .map_err(|e| e.context(format!("SAM checkpoint {origin}")))?;
            &mapped
        } else {
            sd
        };
        let mut b = Builder {
            src: ParamSource::load(sd),
            plan: lora.map(|(c, seed)| LoraPlan::new(c, seed)),
        };
        let m = SamModel::build(cfg, &mut b)?;
        let adapted = b.finish(&m, origin)?;
        Ok((m, adapted))
    }

    /// `dir/config.json` + `dir/model.safetensors` (a transformers SAM checkpoint folder).
    pub fn load_dir(dir: impl AsRef<Path>) -> Result<SamModel> {
        let dir = dir.as_ref();
        let cfg_path = dir.join("config.json");
        let text = std::fs::read_to_string(&cfg_path).map_err(|e| Error::Io {
            path: cfg_path.clone(),
            source: e,
        })?;
        let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::Format {
            path: cfg_path.display().to_string(),
            record: "config".into(),
            msg: e.to_string(),
        })?;
        let cfg =
            SamConfig::from_json(&v).map_err(|e| e.context(cfg_path.display().to_string()))?;
        let w = dir.join("model.safetensors");
        let sd = StateDict::open(&w)?;
        SamModel::from_state_dict(&cfg, &sd, &w.display().to_string())
    }

    /// The positional encoding of every image-embedding cell: [1, C, h, w].
    pub fn image_pe(&self) -> Result<Tensor> {
        self.shared_image_embedding
            .grid(self.config.prompt.image_embedding_size)
    }

    /// pixel_values [B, 3, S, S] → image embeddings [B, C, S/p, S/p].
    pub fn image_embeddings(&self, pixel_values: &Tensor) -> Result<Tensor> {
        self.vision_encoder.forward(pixel_values)
    }

    /// Masks and IoU predictions from image embeddings [B, C, h, w] and prompts.
    pub fn decode(
        &self,
        image_embeddings: &Tensor,
        prompts: &Prompts,
        multimask: bool,
    ) -> Result<DecoderOutput> {
        self.decode_with_pe(image_embeddings, &self.image_pe()?, prompts, multimask)
    }

    /// `decode` with the image positional encoding (`image_pe()`) given, for callers that
    /// decode many times with a frozen encoding (training) and compute it once.
    pub fn decode_with_pe(
        &self,
        image_embeddings: &Tensor,
        image_pe: &Tensor,
        prompts: &Prompts,
        multimask: bool,
    ) -> Result<DecoderOutput> {
        let (b, c) = (image_embeddings.dims()[0], image_embeddings.dims()[1]);
        let s = self.config.prompt.image_embedding_size;
        if image_embeddings.dims() != [b, self.config.decoder.hidden_size, s, s] {
            return Err(Error::Shape {
                op: "SAM mask decoder",
                msg: format!(
                    "image embeddings {} must be [B, {}, {s}, {s}]",
                    image_embeddings.shape(),
                    self.config.decoder.hidden_size
                ),
            });
        }
        let pe = &self.shared_image_embedding;
        let pr = &self.prompt_encoder;
        let mut sparse = None;
        if let Some((pts, labels)) = prompts.points {
            let d = pts.dims();
            if d.len() != 4 || d[0] != b || d[3] != 2 || labels.len() != d[0] * d[1] * d[2] {
                return Err(Error::Shape {
                    op: "SAM prompts",
                    msg: format!(
                        "points {} must be [{b}, nb, n, 2] with one label each ({} labels)",
                        pts.shape(),
                        labels.len()
                    ),
                });
            }
            sparse = Some(pr.embed_points(pe, pts, labels, prompts.boxes.is_none())?);
        }
        if let Some(bx) = prompts.boxes {
            let d = bx.dims();
            if d.len() != 3 || d[0] != b || d[2] != 4 {
                return Err(Error::Shape {
                    op: "SAM prompts",
                    msg: format!("boxes {} must be [{b}, nb, 4] (xyxy)", bx.shape()),
                });
            }
            let e = pr.embed_boxes(pe, &bx.to_dtype(DType::F32)?)?;
            sparse = Some(match sparse {
                Some(p) => Tensor::cat(&[&p, &e], 2).map_err(|e| {
                    e.context("points and boxes need the same number of prompts per image")
                })?,
                None => e,
            });
        }
        let sparse = match sparse {
            Some(s) => s,
            // No point or box: the decoder runs on its output tokens alone (one prompt).
            None => Tensor::zeros([b, 1, 0, c], DType::F32),
        };
        let dense = pr.dense(b, prompts.masks)?;
        self.mask_decoder
            .forward(image_embeddings, image_pe, &sparse, &dense, multimask)
    }

    /// The whole model: pixel values and prompts → (image embeddings, decoder output).
    pub fn forward(
        &self,
        pixel_values: &Tensor,
        prompts: &Prompts,
        multimask: bool,
    ) -> Result<(Tensor, DecoderOutput)> {
        let emb = self.image_embeddings(pixel_values)?;
        let out = self.decode(&emb, prompts, multimask)?;
        Ok((emb, out))
    }
}

struct Gaussian<'a>(&'a Tensor);
impl Module for Gaussian<'_> {
    fn visit_own_params(&self, f: &mut dyn FnMut(&str, &Tensor)) {
        f("positional_embedding", self.0);
    }
}

impl Module for SamModel {
    fn visit_children(&self, f: &mut dyn FnMut(&str, &dyn Module)) {
        f(
            "shared_image_embedding",
            &Gaussian(&self.shared_image_embedding.gaussian),
        );
        f("vision_encoder", &self.vision_encoder);
        f("prompt_encoder", &self.prompt_encoder);
        f("mask_decoder", &self.mask_decoder);
    }
}
