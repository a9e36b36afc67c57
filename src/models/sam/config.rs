//! SamConfig as transformers writes it (config.json of facebook/sam-vit-*, or a fixture's
//! `config`): the three sub-configs, with transformers' defaults for absent keys.
use crate::{Error, Result};
use serde_json::Value;

/// The activations SAM's configs name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Act {
    /// Exact (erf) GELU: transformers' "gelu".
    Gelu,
    /// Tanh GELU: "gelu_new", "gelu_pytorch_tanh".
    GeluTanh,
    Relu,
}

impl Act {
    pub fn parse(name: &str, field: &str) -> Result<Act> {
        match name {
            "gelu" => Ok(Act::Gelu),
            "gelu_new" | "gelu_pytorch_tanh" => Ok(Act::GeluTanh),
            "relu" => Ok(Act::Relu),
            _ => Err(Error::msg(format!(
                "SAM config: {field} = {name:?} is not supported (gelu, gelu_new, gelu_pytorch_tanh, relu)"
            ))),
        }
    }
    pub fn apply(self, x: &crate::Tensor) -> Result<crate::Tensor> {
        match self {
            Act::Gelu => x.gelu(),
            Act::GeluTanh => x.gelu_tanh(),
            Act::Relu => x.relu(),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct VisionConfig {
    pub hidden_size: usize,
    pub output_channels: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_channels: usize,
    pub image_size: usize,
    pub patch_size: usize,
    pub hidden_act: Act,
    pub layer_norm_eps: f64,
    pub qkv_bias: bool,
    pub mlp_dim: usize,
    pub use_abs_pos: bool,
    pub use_rel_pos: bool,
    pub window_size: usize,
    pub global_attn_indexes: Vec<usize>,
    pub num_pos_feats: usize,
}

impl VisionConfig {
    /// Tokens per side after patch embedding.
    pub fn grid(&self) -> usize {
        self.image_size / self.patch_size
    }
    /// Window of layer `i`: 0 (global attention) for the global layers.
    pub fn window_of(&self, i: usize) -> usize {
        if self.global_attn_indexes.contains(&i) {
            0
        } else {
            self.window_size
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct PromptConfig {
    pub hidden_size: usize,
    pub image_size: usize,
    pub mask_input_channels: usize,
    pub num_point_embeddings: usize,
    pub hidden_act: Act,
    pub layer_norm_eps: f64,
    pub image_embedding_size: usize,
}

#[derive(Clone, Debug, PartialEq)]
pub struct DecoderConfig {
    pub hidden_size: usize,
    pub hidden_act: Act,
    pub mlp_dim: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub attention_downsample_rate: usize,
    pub num_multimask_outputs: usize,
    pub iou_head_depth: usize,
    pub iou_head_hidden_dim: usize,
    pub layer_norm_eps: f64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SamConfig {
    pub vision: VisionConfig,
    pub prompt: PromptConfig,
    pub decoder: DecoderConfig,
}

struct Obj<'a> {
    v: &'a Value,
    name: &'static str,
}

impl Obj<'_> {
    fn get(&self, k: &str) -> Option<&Value> {
        self.v.get(k).filter(|x| !x.is_null())
    }
    fn usize(&self, k: &str, default: usize) -> Result<usize> {
        match self.get(k) {
            None => Ok(default),
            Some(x) => x.as_u64().map(|u| u as usize).ok_or_else(|| {
                Error::msg(format!(
                    "SAM config: {}.{k} = {x} is not a count",
                    self.name
                ))
            }),
        }
    }
    fn f64(&self, k: &str, default: f64) -> Result<f64> {
        match self.get(k) {
            None => Ok(default),
            Some(x) => x.as_f64().ok_or_else(|| {
                Error::msg(format!(
                    "SAM config: {}.{k} = {x} is not a number",
                    self.name
                ))
            }),
        }
    }
    fn bool(&self, k: &str, default: bool) -> Result<bool> {
        match self.get(k) {
            None => Ok(default),
            Some(x) => x.as_bool().ok_or_else(|| {
                Error::msg(format!("SAM config: {}.{k} = {x} is not a bool", self.name))
            }),
        }
    }
    fn act(&self, k: &str, default: &str) -> Result<Act> {
        match self.get(k) {
            None => Act::parse(default, k),
            Some(x) => Act::parse(
                x.as_str().ok_or_else(|| {
                    Error::msg(format!(
                        "SAM config: {}.{k} = {x} is not a string",
                        self.name
                    ))
                })?,
                &format!("{}.{k}", self.name),
            ),
        }
    }
}

impl SamConfig {
    /// From transformers' `SamConfig.to_dict()` / config.json. Defaults are transformers'
    /// (ViT-B sizes) for keys a config leaves out.
    pub fn from_json(v: &Value) -> Result<SamConfig> {
        let sub = |k: &'static str| -> Result<Obj<'_>> {
            match v.get(k) {
                Some(x) if x.is_object() => Ok(Obj { v: x, name: k }),
                Some(_) => Err(Error::msg(format!("SAM config: {k} is not an object"))),
                None => Ok(Obj {
                    v: &Value::Null,
                    name: k,
                }),
            }
        };
        let vc = sub("vision_config")?;
        let hidden = vc.usize("hidden_size", 768)?;
        let mlp_ratio = vc.f64("mlp_ratio", 4.0)?;
        let image_size = vc.usize("image_size", 1024)?;
        let patch_size = vc.usize("patch_size", 16)?;
        let global = match vc.get("global_attn_indexes") {
            None => vec![2, 5, 8, 11],
            Some(Value::Array(a)) => a
                .iter()
                .map(|x| {
                    x.as_u64().map(|u| u as usize).ok_or_else(|| {
                        Error::msg(format!(
                            "SAM config: vision_config.global_attn_indexes has {x}, not a layer index"
                        ))
                    })
                })
                .collect::<Result<_>>()?,
            Some(x) => {
                return Err(Error::msg(format!(
                    "SAM config: vision_config.global_attn_indexes = {x} is not a list"
                )));
            }
        };
        let vision = VisionConfig {
            hidden_size: hidden,
            output_channels: vc.usize("output_channels", 256)?,
            num_hidden_layers: vc.usize("num_hidden_layers", 12)?,
            num_attention_heads: vc.usize("num_attention_heads", 12)?,
            num_channels: vc.usize("num_channels", 3)?,
            image_size,
            patch_size,
            hidden_act: vc.act("hidden_act", "gelu")?,
            layer_norm_eps: vc.f64("layer_norm_eps", 1e-6)?,
            qkv_bias: vc.bool("qkv_bias", true)?,
            mlp_dim: vc.usize("mlp_dim", (hidden as f64 * mlp_ratio) as usize)?,
            use_abs_pos: vc.bool("use_abs_pos", true)?,
            use_rel_pos: vc.bool("use_rel_pos", true)?,
            window_size: vc.usize("window_size", 14)?,
            global_attn_indexes: global,
            num_pos_feats: vc.usize("num_pos_feats", 128)?,
        };
        let pc = sub("prompt_encoder_config")?;
        let p_image = pc.usize("image_size", 1024)?;
        let p_patch = pc.usize("patch_size", 16)?;
        let prompt = PromptConfig {
            hidden_size: pc.usize("hidden_size", 256)?,
            image_size: p_image,
            mask_input_channels: pc.usize("mask_input_channels", 16)?,
            num_point_embeddings: pc.usize("num_point_embeddings", 4)?,
            hidden_act: pc.act("hidden_act", "gelu")?,
            layer_norm_eps: pc.f64("layer_norm_eps", 1e-6)?,
            image_embedding_size: pc.usize("image_embedding_size", p_image / p_patch.max(1))?,
        };
        let dc = sub("mask_decoder_config")?;
        let decoder = DecoderConfig {
            hidden_size: dc.usize("hidden_size", 256)?,
            hidden_act: dc.act("hidden_act", "relu")?,
            mlp_dim: dc.usize("mlp_dim", 2048)?,
            num_hidden_layers: dc.usize("num_hidden_layers", 2)?,
            num_attention_heads: dc.usize("num_attention_heads", 8)?,
            attention_downsample_rate: dc.usize("attention_downsample_rate", 2)?,
            num_multimask_outputs: dc.usize("num_multimask_outputs", 3)?,
            iou_head_depth: dc.usize("iou_head_depth", 3)?,
            iou_head_hidden_dim: dc.usize("iou_head_hidden_dim", 256)?,
            layer_norm_eps: dc.f64("layer_norm_eps", 1e-6)?,
        };
        let cfg = SamConfig {
            vision,
            prompt,
            decoder,
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// The shapes the three parts must agree on; a config that breaks one is refused here
    /// rather than failing deep inside a forward.
    pub fn validate(&self) -> Result<()> {
        let (v, p, d) = (&self.vision, &self.prompt, &self.decoder);
        let mut bad = Vec::new();
        if v.patch_size == 0 || v.image_size % v.patch_size != 0 {
            bad.push(format!(
                "vision image_size {} is not a multiple of patch_size {}",
                v.image_size, v.patch_size
            ));
        }
        if v.num_attention_heads == 0 || v.hidden_size % v.num_attention_heads != 0 {
            bad.push(format!(
                "vision hidden_size {} not divisible by {} heads",
                v.hidden_size, v.num_attention_heads
            ));
        }
        if let Some(&i) = v
            .global_attn_indexes
            .iter()
            .find(|&&i| i >= v.num_hidden_layers)
        {
            bad.push(format!(
                "global_attn_indexes has layer {i} of {}",
                v.num_hidden_layers
            ));
        }
        if v.output_channels != p.hidden_size || p.hidden_size != d.hidden_size {
            bad.push(format!(
                "vision output_channels {}, prompt hidden_size {} and decoder hidden_size {} must be equal",
                v.output_channels, p.hidden_size, d.hidden_size
            ));
        }
        if 2 * v.num_pos_feats != d.hidden_size {
            bad.push(format!(
                "2 × num_pos_feats ({}) must equal the decoder hidden_size {}",
                v.num_pos_feats, d.hidden_size
            ));
        }
        if p.image_embedding_size != v.grid() || p.image_size != v.image_size {
            bad.push(format!(
                "prompt image_size {} / embedding size {} do not match the vision encoder's {} / {}",
                p.image_size,
                p.image_embedding_size,
                v.image_size,
                v.grid()
            ));
        }
        if d.hidden_size % 8 != 0 || d.attention_downsample_rate == 0 {
            bad.push(format!(
                "decoder hidden_size {} must be a multiple of 8 (downsample rate {})",
                d.hidden_size, d.attention_downsample_rate
            ));
        } else if d.num_attention_heads == 0
            || (d.hidden_size / d.attention_downsample_rate) % d.num_attention_heads != 0
        {
            bad.push(format!(
                "decoder internal dim {} not divisible by {} heads",
                d.hidden_size / d.attention_downsample_rate,
                d.num_attention_heads
            ));
        }
        if d.iou_head_depth < 2 {
            bad.push(format!("iou_head_depth {} < 2", d.iou_head_depth));
        }
        if p.num_point_embeddings < 4 || p.mask_input_channels % 4 != 0 {
            bad.push(format!(
                "prompt num_point_embeddings {} (need 4) / mask_input_channels {} (multiple of 4)",
                p.num_point_embeddings, p.mask_input_channels
            ));
        }
        if bad.is_empty() {
            Ok(())
        } else {
            Err(Error::msg(format!("SAM config: {}", bad.join("; "))))
        }
    }
}
