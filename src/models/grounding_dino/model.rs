//! GroundingDinoForObjectDetection as transformers builds it: Swin backbone and BERT, input
//! projections to `num_feature_levels` maps, the feature enhancer, two-stage query
//! selection, the decoder with box refinement, and contrastive logits over text tokens.
//! `encode` runs everything up to the query selection (frozen while LoRA tunes the
//! decoder, so it can be cached per image); `decode` runs the decoder and heads.
use super::attention::additive_mask;
use super::config::GroundingDinoConfig;
use super::decoder::{Decoder, Memory, MlpHead, inverse_sigmoid};
use super::encoder::{EncoderInputs, EncoderLayer};
use super::position::{LevelMask, encoder_reference_points, proposals, sine_image};
use super::text::phrase_masks;
use crate::io::StateDict;
use crate::models::bert::BertModel;
use crate::models::swin::SwinBackbone;
use crate::nn::builder::{Builder, Init, ParamSource, Proj};
use crate::nn::{Conv2d, Forward, LayerNorm, LoraConfig, LoraPlan, Module};
use crate::tensor::Conv2dParams;
use crate::{DType, Error, Result, Tensor};

/// One input projection: a conv (1×1 from a backbone map, or 3×3 stride 2 for an extra
/// level) and GroupNorm(32, d_model).
pub struct InputProj {
    pub conv: Conv2d,
    pub gn_weight: Tensor,
    pub gn_bias: Tensor,
}

impl InputProj {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.conv
            .forward(x)?
            .group_norm(32, Some(&self.gn_weight), Some(&self.gn_bias), 1e-5)
    }
}

pub struct GroundingDino {
    pub backbone: SwinBackbone,
    pub input_proj_vision: Vec<InputProj>,
    pub text_backbone: BertModel,
    pub text_projection: Proj,
    pub query_position_embeddings: Tensor,
    pub encoder: Vec<EncoderLayer>,
    pub decoder: Decoder,
    pub level_embed: Tensor,
    pub enc_output: Proj,
    pub enc_output_norm: LayerNorm,
    pub encoder_output_bbox_embed: MlpHead,
    /// One box head per decoder layer (all the same module when shared).
    pub bbox_embed: Vec<MlpHead>,
    pub config: GroundingDinoConfig,
}

/// The inputs of one batch, as the processor gives them.
pub struct Inputs<'a> {
    /// [B, 3, H, W] normalised.
    pub pixel_values: &'a Tensor,
    /// [B, H, W], 1 = real pixel; all ones when absent.
    pub pixel_mask: Option<&'a Tensor>,
    /// [B, L] i64.
    pub input_ids: &'a Tensor,
    /// [B, L], 1 = real token; all ones when absent.
    pub attention_mask: Option<&'a Tensor>,
    /// [B, L]; zeros when absent.
    pub token_type_ids: Option<&'a Tensor>,
}

/// Everything `decode` needs from the image and the prompt.
pub struct Encoded {
    /// Encoder output, image tokens [B, S, d] and text tokens [B, L, d].
    pub vision: Tensor,
    pub text: Tensor,
    /// The projected BERT output before the encoder [B, L, d] (the encoder-stage logits).
    pub text_features: Tensor,
    /// [B, S] f32, 1 = real image token.
    pub vision_valid: Tensor,
    /// [B, L] u8, 1 = real text token.
    pub text_keep: Tensor,
    pub shapes: Vec<(usize, usize)>,
    pub valid_ratios: Vec<Vec<(f64, f64)>>,
    /// The selected proposals' boxes [B, Q, 4] (sigmoid space).
    pub reference: Tensor,
    /// Two-stage scores and box logits of every image token.
    pub enc_outputs_class: Tensor,
    pub enc_outputs_coord_logits: Tensor,
}

pub struct Output {
    /// [B, Q, max_text_len], −inf past the prompt and on padding.
    pub logits: Tensor,
    /// [B, Q, 4] cx, cy, w, h in 0..1.
    pub pred_boxes: Tensor,
    pub last_hidden_state: Tensor,
    /// Per decoder layer (auxiliary losses): logits and boxes.
    pub layer_logits: Vec<Tensor>,
    pub layer_boxes: Vec<Tensor>,
    /// The query selection's own logits and boxes (the encoder loss).
    pub encoder_logits: Tensor,
    pub encoder_pred_boxes: Tensor,
    pub intermediate_reference_points: Vec<Tensor>,
    /// The layer-normed hidden state after each decoder layer.
    pub intermediate_hidden_states: Vec<Tensor>,
}

/// Contrastive logits: vision [B, Q, d] · text [B, L, d]ᵀ, −inf on padded text and past L
/// up to `max_len`.
pub fn contrastive(
    vision: &Tensor,
    text: &Tensor,
    text_keep: &Tensor,
    max_len: usize,
) -> Result<Tensor> {
    let (b, q, l) = (vision.dims()[0], vision.dims()[1], text.dims()[1]);
    let s = vision.matmul(&text.transpose(1, 2)?)?;
    let s = s.add(&additive_mask(text_keep)?.reshape([b, 1, l])?)?;
    if l == max_len {
        return Ok(s);
    }
    let pad = Tensor::full(f64::NEG_INFINITY, [b, q, max_len - l], DType::F32);
    Tensor::cat(&[&s, &pad], 2)
}

impl GroundingDino {
    pub fn build(cfg: &GroundingDinoConfig, b: &mut Builder) -> Result<GroundingDino> {
        cfg.validate()?;
        let d = cfg.d_model;
        let backbone = SwinBackbone::build(b, "model.backbone.conv_encoder.model", &cfg.backbone)?;
        let chans = backbone.out_channels();
        let mut input_proj_vision = Vec::new();
        let mut in_c = *chans
            .last()
            .expect("validated: at least one backbone output");
        for l in 0..cfg.num_feature_levels {
            let name = format!("model.input_proj_vision.{l}");
            let (c, k, params) = if l < chans.len() {
                (chans[l], 1, Conv2dParams::default())
            } else {
                let c = in_c;
                in_c = d;
                (
                    c,
                    3,
                    Conv2dParams {
                        stride: (2, 2),
                        padding: (1, 1),
                        ..Default::default()
                    },
                )
            };
            input_proj_vision.push(InputProj {
                conv: b.src.conv(&format!("{name}.0"), c, d, k, params, true)?,
                gn_weight: b.src.param(&format!("{name}.1.weight"), [d], Init::Ones)?,
                gn_bias: b.src.param(&format!("{name}.1.bias"), [d], Init::Zeros)?,
            });
        }
        let text_backbone = BertModel::build(b, "model.text_backbone", &cfg.text)?;
        let text_projection = b.linear("model.text_projection", cfg.text.hidden_size, d, true)?;
        let query_position_embeddings =
            b.src
                .embedding("model.query_position_embeddings", cfg.num_queries, d)?;
        let encoder = (0..cfg.encoder_layers)
            .map(|i| EncoderLayer::build(b, &format!("model.encoder.layers.{i}"), cfg))
            .collect::<Result<Vec<_>>>()?;
        let decoder = Decoder::build(b, "model.decoder", cfg)?;
        let level_embed = b.src.param(
            "model.level_embed",
            [cfg.num_feature_levels, d],
            Init::Normal(1.0),
        )?;
        let enc_output = b.linear("model.enc_output", d, d, true)?;
        let enc_output_norm = b
            .src
            .layer_norm("model.enc_output_norm", d, cfg.layer_norm_eps)?;
        let encoder_output_bbox_embed =
            MlpHead::build(b, "model.encoder_output_bbox_embed", d, d, 4, 3)?;
        // transformers ties model.decoder.bbox_embed to bbox_embed, and with
        // decoder_bbox_embed_share every layer to bbox_embed.0; one module per distinct head.
        let distinct = if cfg.decoder_bbox_embed_share {
            1
        } else {
            cfg.decoder_layers
        };
        let mut bbox_embed = Vec::new();
        for i in 0..distinct {
            let name = match &b.src {
                ParamSource::Load { sd, .. }
                    if !sd.contains(&format!("bbox_embed.{i}.layers.0.weight")) =>
                {
                    format!("model.decoder.bbox_embed.{i}")
                }
                _ => format!("bbox_embed.{i}"),
            };
            bbox_embed.push(MlpHead::build(b, &name, d, d, 4, 3)?);
        }
        for i in 0..cfg.decoder_layers {
            for k in 0..3 {
                for p in ["weight", "bias"] {
                    b.src.alias(&format!("bbox_embed.{i}.layers.{k}.{p}"));
                    b.src
                        .alias(&format!("model.decoder.bbox_embed.{i}.layers.{k}.{p}"));
                }
            }
        }
        Ok(GroundingDino {
            backbone,
            input_proj_vision,
            text_backbone,
            text_projection,
            query_position_embeddings,
            encoder,
            decoder,
            level_embed,
            enc_output,
            enc_output_norm,
            encoder_output_bbox_embed,
            bbox_embed,
            config: cfg.clone(),
        })
    }

    pub fn random(cfg: &GroundingDinoConfig, seed: u64) -> Result<GroundingDino> {
        let mut b = Builder {
            src: ParamSource::random(seed),
            plan: None,
        };
        GroundingDino::build(cfg, &mut b)
    }

    pub fn from_state_dict(
        cfg: &GroundingDinoConfig,
        sd: &StateDict,
        origin: &str,
    ) -> Result<GroundingDino> {
        Ok(GroundingDino::from_state_dict_lora(cfg, sd, origin, None)?.0)
    }

    /// As `from_state_dict`, with LoRA adapters on the Linears `lora` targets; only their
    /// A and B stay trainable. Returns the adapted module names.
    pub fn from_state_dict_lora(
        cfg: &GroundingDinoConfig,
        sd: &StateDict,
        origin: &str,
        lora: Option<(LoraConfig, u64)>,
    ) -> Result<(GroundingDino, Vec<String>)> {
        let mapped = super::names::map_legacy(sd)
            .map_err(|e| e.context(format!("Grounding DINO checkpoint {origin}")))?;
        let sd = mapped.as_ref().unwrap_or(sd);
        let mut b = Builder {
            src: ParamSource::load(sd),
            plan: lora.map(|(c, seed)| LoraPlan::new(c, seed)),
        };
        let m = GroundingDino::build(cfg, &mut b)?;
        let adapted = b.finish(&m, origin)?;
        Ok((m, adapted))
    }

    /// `dir/config.json` + `dir/model.safetensors` (a transformers checkpoint folder).
    pub fn load_dir(dir: impl AsRef<std::path::Path>) -> Result<GroundingDino> {
        let dir = dir.as_ref();
        let cfg_path = dir.join("config.json");
        let v = crate::models::config_json::read_config(&cfg_path)?;
        let cfg = GroundingDinoConfig::from_json(&v)
            .map_err(|e| e.context(cfg_path.display().to_string()))?;
        let w = dir.join("model.safetensors");
        let sd = StateDict::open(&w)?;
        GroundingDino::from_state_dict(&cfg, &sd, &w.display().to_string())
    }

    /// Backbone, text encoder, feature enhancer and query selection.
    pub fn encode(&self, inp: &Inputs) -> Result<Encoded> {
        let cfg = &self.config;
        let d = cfg.d_model;
        let px = inp.pixel_values;
        if px.rank() != 4 {
            return Err(Error::Shape {
                op: "Grounding DINO",
                msg: format!("pixel_values {} must be [B, 3, H, W]", px.shape()),
            });
        }
        let (b, h, w) = (px.dims()[0], px.dims()[2], px.dims()[3]);
        let ids = inp.input_ids;
        if ids.rank() != 2 || ids.dims()[0] != b {
            return Err(Error::Shape {
                op: "Grounding DINO",
                msg: format!("input_ids {} must be [{b}, L]", ids.shape()),
            });
        }
        let l = ids.dims()[1];
        if l > cfg.max_text_len {
            return Err(Error::Shape {
                op: "Grounding DINO",
                msg: format!(
                    "the prompt has {l} tokens, more than max_text_len {}; shorten the class names or use fewer classes per prompt",
                    cfg.max_text_len
                ),
            });
        }
        // Text: phrase-blocked attention and per-phrase positions, then BERT.
        let idv: Vec<i64> = ids.to_vec_f64()?.into_iter().map(|v| v as i64).collect();
        let mut attend = Vec::with_capacity(b * l * l);
        let mut pos = Vec::with_capacity(b * l);
        for row in idv.chunks(l) {
            let (a, p) = phrase_masks(row);
            attend.extend(a.into_iter().map(u8::from));
            pos.extend(p);
        }
        let attend = Tensor::from_vec(attend, [b, l, l])?;
        let position_ids = Tensor::from_vec(pos.clone(), [b, l])?;
        let token_type = match inp.token_type_ids {
            Some(t) => t.to_dtype(DType::I64)?,
            None => Tensor::zeros([b, l], DType::I64),
        };
        let text_keep = match inp.attention_mask {
            Some(m) if m.dims() != [b, l] => {
                return Err(Error::Shape {
                    op: "Grounding DINO",
                    msg: format!("attention_mask {} must be [{b}, {l}]", m.shape()),
                });
            }
            Some(m) => {
                let v: Vec<u8> = m.to_vec_f64()?.iter().map(|&x| (x != 0.0) as u8).collect();
                Tensor::from_vec(v, [b, l])?
            }
            None => Tensor::ones([b, l], DType::U8),
        };
        let text_hidden = self
            .text_backbone
            .forward(ids, &token_type, &position_ids, &attend)?;
        let text_features = self.text_projection.forward(&text_hidden)?;

        // Image: backbone maps, projections, masks and position embeddings per level.
        let pixel = match inp.pixel_mask {
            Some(m) if m.dims() != [b, h, w] => {
                return Err(Error::Shape {
                    op: "Grounding DINO",
                    msg: format!("pixel_mask {} must be [{b}, {h}, {w}]", m.shape()),
                });
            }
            Some(m) => {
                let v = m.to_vec_f64()?;
                LevelMask {
                    h,
                    w,
                    valid: v
                        .chunks(h * w)
                        .map(|c| c.iter().map(|&x| x != 0.0).collect())
                        .collect(),
                }
            }
            None => LevelMask {
                h,
                w,
                valid: vec![vec![true; h * w]; b],
            },
        };
        let maps = self.backbone.forward(px)?;
        let mut feats = Vec::new();
        for (lvl, proj) in self.input_proj_vision.iter().enumerate() {
            let src = if lvl < maps.len() {
                &maps[lvl]
            } else if lvl == maps.len() {
                maps.last().expect("at least one map")
            } else {
                feats.last().expect("previous level")
            };
            let f = proj.forward(src)?;
            feats.push(f);
        }
        let mut levels = Vec::new();
        let mut tokens = Vec::new();
        let mut pos_embed = Vec::new();
        let mut shapes = Vec::new();
        for (lvl, f) in feats.iter().enumerate() {
            let (fh, fw) = (f.dims()[2], f.dims()[3]);
            let m = LevelMask::resize(&pixel, fh, fw);
            let pe = sine_image(&m, d, cfg.positional_embedding_temperature)?;
            pos_embed.push(pe.add(&self.level_embed.narrow(0, lvl, 1)?.reshape([1, 1, d])?)?);
            tokens.push(f.reshape([b, d, fh * fw])?.transpose(1, 2)?);
            levels.push(m);
            shapes.push((fh, fw));
        }
        let refs: Vec<&Tensor> = tokens.iter().collect();
        let source = Tensor::cat(&refs, 1)?;
        let refs: Vec<&Tensor> = pos_embed.iter().collect();
        let vision_pos = Tensor::cat(&refs, 1)?;
        let s = source.dims()[1];
        let mut keep = vec![0u8; b * s];
        for bi in 0..b {
            let mut off = 0;
            for m in &levels {
                for (k, &v) in m.valid[bi].iter().enumerate() {
                    keep[bi * s + off + k] = v as u8;
                }
                off += m.h * m.w;
            }
        }
        let vision_keep = Tensor::from_vec(keep.clone(), [b, s])?;
        let vision_valid =
            Tensor::from_vec(keep.iter().map(|&k| k as f32).collect::<Vec<_>>(), [b, s])?;
        let valid_ratios: Vec<Vec<(f64, f64)>> =
            levels.iter().map(LevelMask::valid_ratio).collect();
        let reference = encoder_reference_points(&levels, &valid_ratios)?;

        // Text position embedding from the per-phrase ids; phrase-blocked additive mask.
        let pos_f: Vec<f64> = pos.iter().map(|&p| p as f64).collect();
        let text_pos =
            Tensor::from_vec(super::position::encode_sinusoidal(&pos_f, 1, d), [b, l, d])?;
        let text_self_bias = additive_mask(&attend)?.unsqueeze(1)?;
        let enc_in = EncoderInputs {
            vision_pos: &vision_pos,
            vision_valid: &vision_valid,
            vision_keep: &vision_keep,
            text_keep: &text_keep,
            text_self_bias: &text_self_bias,
            text_pos: &text_pos,
            reference: &reference,
            shapes: &shapes,
        };
        let (mut vision, mut text) = (source, text_features.clone());
        for layer in &self.encoder {
            (vision, text) = layer.forward(&vision, &text, &enc_in)?;
        }

        // Two-stage query selection: score every image token against the prompt and keep
        // the best `num_queries` proposals.
        let (prop, kept) = proposals(&levels)?;
        let kept_t = Tensor::from_vec(
            kept.iter().map(|&k| k as u8 as f32).collect::<Vec<_>>(),
            [b, s, 1],
        )?;
        let object_query = self
            .enc_output_norm
            .forward(&self.enc_output.forward(&vision.mul(&kept_t)?)?)?;
        let enc_outputs_class = contrastive(&object_query, &text, &text_keep, cfg.max_text_len)?;
        let enc_outputs_coord_logits = self
            .encoder_output_bbox_embed
            .forward(&object_query)?
            .add(&prop)?;
        let k = cfg.num_queries;
        if k > s {
            return Err(Error::Shape {
                op: "Grounding DINO",
                msg: format!(
                    "num_queries {k} is more than the {s} image tokens of a {h}×{w} input"
                ),
            });
        }
        let (_, top) = enc_outputs_class.max(-1, false)?.topk(k, 1, true)?; // [B, K]
        let top = top.to_dtype(DType::I64)?;
        let idx4 = top.unsqueeze(2)?.expand([b, k, 4])?.contiguous()?;
        let reference = enc_outputs_coord_logits
            .gather(1, &idx4)?
            .detach()
            .sigmoid()?;
        Ok(Encoded {
            vision,
            text,
            text_features,
            vision_valid,
            text_keep,
            shapes,
            valid_ratios,
            reference,
            enc_outputs_class,
            enc_outputs_coord_logits,
        })
    }

    /// The decoder and the detection heads on an encoded batch.
    pub fn decode(&self, enc: &Encoded) -> Result<Output> {
        let cfg = &self.config;
        let b = enc.vision.dims()[0];
        let (k, d) = (cfg.num_queries, cfg.d_model);
        let target = self
            .query_position_embeddings
            .unsqueeze(0)?
            .expand([b, k, d])?;
        let text_bias = additive_mask(&enc.text_keep)?.reshape([b, 1, 1, enc.text.dims()[1]])?;
        let mem = Memory {
            vision: &enc.vision,
            vision_valid: &enc.vision_valid,
            text: &enc.text,
            text_bias: &text_bias,
            shapes: &enc.shapes,
            valid_ratios: &enc.valid_ratios,
        };
        let heads: Vec<&MlpHead> = (0..cfg.decoder_layers).map(|i| self.box_head(i)).collect();
        let out = self
            .decoder
            .forward(&target, &enc.reference, &mem, &heads)?;
        let mut layer_logits = Vec::new();
        let mut layer_boxes = Vec::new();
        for (lvl, hs) in out.intermediate.iter().enumerate() {
            let reference = if lvl == 0 {
                &enc.reference
            } else {
                &out.references[lvl - 1]
            };
            layer_logits.push(contrastive(
                hs,
                &enc.text,
                &enc.text_keep,
                cfg.max_text_len,
            )?);
            layer_boxes.push(
                heads[lvl]
                    .forward(hs)?
                    .add(&inverse_sigmoid(reference)?)?
                    .sigmoid()?,
            );
        }
        let encoder_logits = contrastive(
            &target,
            &enc.text_features,
            &enc.text_keep,
            cfg.max_text_len,
        )?;
        Ok(Output {
            logits: layer_logits.last().expect("decoder_layers ≥ 1").clone(),
            pred_boxes: layer_boxes.last().expect("decoder_layers ≥ 1").clone(),
            last_hidden_state: out.intermediate.last().expect("decoder_layers ≥ 1").clone(),
            layer_logits,
            layer_boxes,
            encoder_logits,
            encoder_pred_boxes: enc.reference.clone(),
            intermediate_reference_points: out.references,
            intermediate_hidden_states: out.intermediate,
        })
    }

    pub fn forward(&self, inp: &Inputs) -> Result<(Encoded, Output)> {
        let enc = self.encode(inp)?;
        let out = self.decode(&enc)?;
        Ok((enc, out))
    }

    fn box_head(&self, layer: usize) -> &MlpHead {
        &self.bbox_embed[layer.min(self.bbox_embed.len() - 1)]
    }
}

struct Param<'a>(&'a str, &'a Tensor);
impl Module for Param<'_> {
    fn visit_own_params(&self, f: &mut dyn FnMut(&str, &Tensor)) {
        f(self.0, self.1);
    }
}
impl Module for InputProj {
    fn visit_children(&self, f: &mut dyn FnMut(&str, &dyn Module)) {
        f("0", &self.conv);
        f("1", &GroupNormP(self));
    }
}
struct GroupNormP<'a>(&'a InputProj);
impl Module for GroupNormP<'_> {
    fn visit_own_params(&self, f: &mut dyn FnMut(&str, &Tensor)) {
        f("weight", &self.0.gn_weight);
        f("bias", &self.0.gn_bias);
    }
}
struct Inner<'a>(&'a GroundingDino);
impl Module for Inner<'_> {
    fn visit_own_params(&self, f: &mut dyn FnMut(&str, &Tensor)) {
        f("level_embed", &self.0.level_embed);
    }
    fn visit_children(&self, f: &mut dyn FnMut(&str, &dyn Module)) {
        let m = self.0;
        f("backbone.conv_encoder.model", &m.backbone);
        for (i, p) in m.input_proj_vision.iter().enumerate() {
            f(&format!("input_proj_vision.{i}"), p);
        }
        f("text_backbone", &m.text_backbone);
        f("text_projection", &m.text_projection);
        f(
            "query_position_embeddings",
            &Param("weight", &m.query_position_embeddings),
        );
        for (i, l) in m.encoder.iter().enumerate() {
            f(&format!("encoder.layers.{i}"), l);
        }
        f("decoder", &m.decoder);
        f("enc_output", &m.enc_output);
        f("enc_output_norm", &m.enc_output_norm);
        f("encoder_output_bbox_embed", &m.encoder_output_bbox_embed);
    }
}
impl Module for GroundingDino {
    fn visit_children(&self, f: &mut dyn FnMut(&str, &dyn Module)) {
        f("model", &Inner(self));
        for (i, h) in self.bbox_embed.iter().enumerate() {
            f(&format!("bbox_embed.{i}"), h);
        }
    }
}
