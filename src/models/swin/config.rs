//! SwinConfig as transformers writes it (a Grounding DINO `backbone_config`, or a Swin
//! config.json), with transformers' defaults (Swin-T) for absent keys.
use crate::models::config_json::{Act, Obj};
use crate::{Error, Result};
use serde_json::Value;

#[derive(Clone, Debug, PartialEq)]
pub struct SwinConfig {
    pub image_size: usize,
    pub patch_size: usize,
    pub num_channels: usize,
    pub embed_dim: usize,
    pub depths: Vec<usize>,
    pub num_heads: Vec<usize>,
    pub window_size: usize,
    pub mlp_ratio: f64,
    pub qkv_bias: bool,
    pub hidden_act: Act,
    pub use_absolute_embeddings: bool,
    pub layer_norm_eps: f64,
    /// Indices into `["stem", "stage1", …]` of the feature maps the backbone returns.
    pub out_indices: Vec<usize>,
}

impl SwinConfig {
    pub fn from_json(v: &Value, name: &str) -> Result<SwinConfig> {
        let o = Obj::new(v, name);
        let depths = o.usizes("depths", &[2, 2, 6, 2])?;
        let stage_names: Vec<String> = std::iter::once("stem".to_string())
            .chain((1..=depths.len()).map(|i| format!("stage{i}")))
            .collect();
        // transformers keeps out_features and out_indices aligned; either may be given.
        let out_indices = match (o.get("out_indices"), o.strs("out_features")?) {
            (Some(_), _) => o.usizes("out_indices", &[])?,
            (None, Some(feats)) => feats
                .iter()
                .map(|f| {
                    stage_names.iter().position(|s| s == f).ok_or_else(|| {
                        Error::msg(format!("{name}: out_features names unknown stage {f:?}"))
                    })
                })
                .collect::<Result<_>>()?,
            (None, None) => vec![depths.len()],
        };
        let image_size = match o.get("image_size") {
            Some(Value::Array(a)) => a.first().and_then(Value::as_u64).unwrap_or(224) as usize,
            _ => o.usize("image_size", 224)?,
        };
        let patch_size = match o.get("patch_size") {
            Some(Value::Array(a)) => a.first().and_then(Value::as_u64).unwrap_or(4) as usize,
            _ => o.usize("patch_size", 4)?,
        };
        let cfg = SwinConfig {
            image_size,
            patch_size,
            num_channels: o.usize("num_channels", 3)?,
            embed_dim: o.usize("embed_dim", 96)?,
            num_heads: o.usizes("num_heads", &[3, 6, 12, 24])?,
            depths,
            window_size: o.usize("window_size", 7)?,
            mlp_ratio: o.f64("mlp_ratio", 4.0)?,
            qkv_bias: o.bool("qkv_bias", true)?,
            hidden_act: Act::parse(&o, "hidden_act", "gelu")?,
            use_absolute_embeddings: o.bool("use_absolute_embeddings", false)?,
            layer_norm_eps: o.f64("layer_norm_eps", 1e-5)?,
            out_indices,
        };
        cfg.validate(name)?;
        Ok(cfg)
    }

    /// Channels of stage `i` (0 = stem): embed_dim · 2^(i−1), the stem embed_dim.
    pub fn channels(&self, i: usize) -> usize {
        self.embed_dim << i.saturating_sub(1)
    }
    pub fn stage_name(i: usize) -> String {
        if i == 0 {
            "stem".into()
        } else {
            format!("stage{i}")
        }
    }

    pub fn validate(&self, name: &str) -> Result<()> {
        let mut bad = Vec::new();
        if self.depths.is_empty() || self.depths.len() != self.num_heads.len() {
            bad.push(format!(
                "depths {:?} and num_heads {:?} must have one entry per stage",
                self.depths, self.num_heads
            ));
        }
        for (i, &h) in self.num_heads.iter().enumerate() {
            let c = self.channels(i + 1);
            if h == 0 || c % h != 0 {
                bad.push(format!(
                    "stage {} width {c} is not divisible by {h} heads",
                    i + 1
                ));
            }
        }
        if self.window_size == 0 || self.patch_size == 0 {
            bad.push("window_size and patch_size must be positive".into());
        }
        if let Some(&i) = self.out_indices.iter().find(|&&i| i > self.depths.len()) {
            bad.push(format!(
                "out index {i} is past the last stage {}",
                self.depths.len()
            ));
        }
        if bad.is_empty() {
            Ok(())
        } else {
            Err(Error::msg(format!("{name}: {}", bad.join("; "))))
        }
    }
}
