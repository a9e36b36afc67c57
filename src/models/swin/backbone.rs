//! transformers' SwinBackbone (as Grounding DINO uses it, `always_partition=True`): patch
//! embedding, stages of window / shifted-window attention blocks with relative position
//! bias, patch merging between stages, and a LayerNorm on each returned stage map.
use super::config::SwinConfig;
use super::window::{
    pad_bottom_right, partition, relative_position_index, roll_hw, shift_mask, unpartition,
};
use crate::models::config_json::Act;
use crate::nn::builder::{Builder, Init, Proj};
use crate::nn::{Conv2d, Forward, LayerNorm, Module};
use crate::tensor::Conv2dParams;
use crate::{Error, Result, Tensor};

pub struct SwinBlock {
    pub layernorm_before: LayerNorm,
    pub q_proj: Proj,
    pub k_proj: Proj,
    pub v_proj: Proj,
    pub o_proj: Proj,
    /// [(2ws−1)², heads]
    pub relative_position_bias_table: Tensor,
    pub layernorm_after: LayerNorm,
    pub fc1: Proj,
    pub fc2: Proj,
    heads: usize,
    window: usize,
    shift: usize,
    act: Act,
    rel_index: Tensor,
}

impl SwinBlock {
    fn build(
        b: &mut Builder,
        name: &str,
        cfg: &SwinConfig,
        dim: usize,
        heads: usize,
        shift: usize,
    ) -> Result<SwinBlock> {
        let ws = cfg.window_size;
        let eps = cfg.layer_norm_eps;
        let hidden = (cfg.mlp_ratio * dim as f64) as usize;
        let a = format!("{name}.attention");
        Ok(SwinBlock {
            layernorm_before: b
                .src
                .layer_norm(&format!("{name}.layernorm_before"), dim, eps)?,
            q_proj: b.linear(&format!("{a}.q_proj"), dim, dim, cfg.qkv_bias)?,
            k_proj: b.linear(&format!("{a}.k_proj"), dim, dim, cfg.qkv_bias)?,
            v_proj: b.linear(&format!("{a}.v_proj"), dim, dim, cfg.qkv_bias)?,
            o_proj: b.linear(&format!("{a}.o_proj"), dim, dim, true)?,
            relative_position_bias_table: b.src.param(
                &format!("{a}.relative_position_bias.relative_position_bias_table"),
                [(2 * ws - 1) * (2 * ws - 1), heads],
                Init::Normal(0.02),
            )?,
            layernorm_after: b
                .src
                .layer_norm(&format!("{name}.layernorm_after"), dim, eps)?,
            fc1: b.linear(&format!("{name}.mlp.fc1"), dim, hidden, true)?,
            fc2: b.linear(&format!("{name}.mlp.fc2"), hidden, dim, true)?,
            heads,
            window: ws,
            shift,
            act: cfg.hidden_act,
            rel_index: relative_position_index(ws)?,
        })
    }

    /// x [B, H, W, C] → [B, H, W, C].
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, h, w, c) = (x.dims()[0], x.dims()[1], x.dims()[2], x.dims()[3]);
        let (ws, s) = (self.window, self.shift);
        let (hp, wp) = (h.div_ceil(ws) * ws, w.div_ceil(ws) * ws);
        let y = self.layernorm_before.forward(x)?;
        let mut y = pad_bottom_right(&y, hp - h, wp - w)?;
        if s > 0 {
            y = roll_hw(&y, -(s as isize))?;
        }
        let win = partition(&y, ws)?; // [B·nW, N, C]
        let (bw, n, nh) = (win.dims()[0], ws * ws, self.heads);
        let hd = c / nh;
        let split = |p: &Proj| -> Result<Tensor> {
            p.forward(&win)?
                .reshape([bw, n, nh, hd])?
                .permute(&[0, 2, 1, 3])
        };
        let (q, k, v) = (
            split(&self.q_proj)?,
            split(&self.k_proj)?,
            split(&self.v_proj)?,
        );
        let rel = self
            .relative_position_bias_table
            .index_select(0, &self.rel_index)?
            .reshape([n, n, nh])?
            .permute(&[2, 0, 1])?
            .unsqueeze(0)?; // [1, nh, N, N]
        let bias = if s > 0 {
            let nw = (hp / ws) * (wp / ws);
            let mask = shift_mask(hp, wp, ws, s)?
                .to_dtype(rel.dtype())?
                .unsqueeze(1)?; // [nW, 1, N, N]
            rel.add(&mask)?
                .unsqueeze(0)?
                .expand([b, nw, nh, n, n])?
                .reshape([bw, nh, n, n])?
        } else {
            rel
        };
        let o = q.scaled_dot_product_attention(&k, &v, Some(&bias), None, None)?; // [B·nW, nh, N, hd]
        let o = self
            .o_proj
            .forward(&o.permute(&[0, 2, 1, 3])?.reshape([bw, n, c])?)?;
        let mut o = unpartition(&o, ws, hp, wp)?;
        if s > 0 {
            o = roll_hw(&o, s as isize)?;
        }
        if hp != h || wp != w {
            o = o.narrow(1, 0, h)?.narrow(2, 0, w)?;
        }
        let x = x.add(&o)?;
        let m = self.fc2.forward(
            &self
                .act
                .apply(&self.fc1.forward(&self.layernorm_after.forward(&x)?)?)?,
        )?;
        x.add(&m)
    }
}

impl Module for SwinBlock {
    fn visit_children(&self, f: &mut dyn FnMut(&str, &dyn Module)) {
        f("layernorm_before", &self.layernorm_before);
        f("attention", &SwinAttn(self));
        f("layernorm_after", &self.layernorm_after);
        f("mlp", &SwinMlp(self));
    }
}
struct SwinAttn<'a>(&'a SwinBlock);
impl Module for SwinAttn<'_> {
    fn visit_children(&self, f: &mut dyn FnMut(&str, &dyn Module)) {
        f("q_proj", &self.0.q_proj);
        f("k_proj", &self.0.k_proj);
        f("v_proj", &self.0.v_proj);
        f("o_proj", &self.0.o_proj);
        f(
            "relative_position_bias",
            &RelBias(&self.0.relative_position_bias_table),
        );
    }
}
struct RelBias<'a>(&'a Tensor);
impl Module for RelBias<'_> {
    fn visit_own_params(&self, f: &mut dyn FnMut(&str, &Tensor)) {
        f("relative_position_bias_table", self.0);
    }
}
struct SwinMlp<'a>(&'a SwinBlock);
impl Module for SwinMlp<'_> {
    fn visit_children(&self, f: &mut dyn FnMut(&str, &dyn Module)) {
        f("fc1", &self.0.fc1);
        f("fc2", &self.0.fc2);
    }
}

/// Patch merging: each 2×2 neighbourhood concatenated (transformers' order) → LayerNorm(4C)
/// → Linear(4C, 2C) without bias. Odd sides are zero-padded first.
pub struct PatchMerging {
    pub norm: LayerNorm,
    pub reduction: Proj,
}

impl PatchMerging {
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, h, w, c) = (x.dims()[0], x.dims()[1], x.dims()[2], x.dims()[3]);
        let x = pad_bottom_right(x, h % 2, w % 2)?;
        let (h2, w2) = (h.div_ceil(2), w.div_ceil(2));
        // [B, h2, row, w2, col, C] → [B, h2, w2, col, row, C]: torch.cat over
        // `for col in range(2) for row in range(2)`.
        let x = x
            .reshape([b, h2, 2, w2, 2, c])?
            .permute(&[0, 1, 3, 4, 2, 5])?
            .reshape([b, h2, w2, 4 * c])?;
        self.reduction.forward(&self.norm.forward(&x)?)
    }
}

impl Module for PatchMerging {
    fn visit_children(&self, f: &mut dyn FnMut(&str, &dyn Module)) {
        f("reduction", &self.reduction);
        f("norm", &self.norm);
    }
}

pub struct SwinStage {
    pub blocks: Vec<SwinBlock>,
    pub downsample: Option<PatchMerging>,
}

impl Module for SwinStage {
    fn visit_children(&self, f: &mut dyn FnMut(&str, &dyn Module)) {
        for (i, blk) in self.blocks.iter().enumerate() {
            f(&format!("blocks.{i}"), blk);
        }
        if let Some(d) = &self.downsample {
            f("downsample", d);
        }
    }
}

pub struct SwinBackbone {
    pub patch_embed: Conv2d,
    pub embed_norm: LayerNorm,
    pub position_embeddings: Option<Tensor>,
    pub stages: Vec<SwinStage>,
    /// (stage index, its LayerNorm) for every returned stage.
    pub norms: Vec<(usize, LayerNorm)>,
    pub config: SwinConfig,
}

impl SwinBackbone {
    /// `prefix` is where SwinBackbone sits in the state dict ("" for a bare backbone,
    /// "model.backbone.conv_encoder.model" inside Grounding DINO).
    pub fn build(b: &mut Builder, prefix: &str, cfg: &SwinConfig) -> Result<SwinBackbone> {
        let p = |s: &str| crate::nn::join(prefix, s);
        let c0 = cfg.embed_dim;
        let patch_embed = b.src.conv(
            &p("swin.embeddings.patch_embeddings.projection"),
            cfg.num_channels,
            c0,
            cfg.patch_size,
            Conv2dParams {
                stride: (cfg.patch_size, cfg.patch_size),
                ..Default::default()
            },
            true,
        )?;
        // nn.LayerNorm's default eps here and in merging / output norms, as transformers.
        let embed_norm = b.src.layer_norm(&p("swin.embeddings.norm"), c0, 1e-5)?;
        let position_embeddings = if cfg.use_absolute_embeddings {
            let g = cfg.image_size / cfg.patch_size;
            Some(b.src.param(
                &p("swin.embeddings.position_embeddings"),
                [1, g * g, c0],
                Init::Zeros,
            )?)
        } else {
            None
        };
        let mut stages = Vec::new();
        let last = cfg.depths.len() - 1;
        for (si, (&depth, &heads)) in cfg.depths.iter().zip(&cfg.num_heads).enumerate() {
            let dim = cfg.channels(si + 1);
            let sname = p(&format!("swin.encoder.layers.{si}"));
            let blocks = (0..depth)
                .map(|j| {
                    let shift = if j % 2 == 0 { 0 } else { cfg.window_size / 2 };
                    SwinBlock::build(b, &format!("{sname}.blocks.{j}"), cfg, dim, heads, shift)
                })
                .collect::<Result<Vec<_>>>()?;
            let downsample = if si < last {
                Some(PatchMerging {
                    reduction: b.linear(
                        &format!("{sname}.downsample.reduction"),
                        4 * dim,
                        2 * dim,
                        false,
                    )?,
                    norm: b
                        .src
                        .layer_norm(&format!("{sname}.downsample.norm"), 4 * dim, 1e-5)?,
                })
            } else {
                None
            };
            stages.push(SwinStage { blocks, downsample });
        }
        let norms = cfg
            .out_indices
            .iter()
            .map(|&i| {
                let name = p(&format!(
                    "hidden_states_norms.{}",
                    SwinConfig::stage_name(i)
                ));
                Ok((i, b.src.layer_norm(&name, cfg.channels(i), 1e-5)?))
            })
            .collect::<Result<Vec<_>>>()?;
        // SwinModel's final LayerNorm feeds only its pooled output, which a backbone never
        // uses; a checkpoint may hold it or not.
        b.src.alias(&p("swin.layernorm.weight"));
        b.src.alias(&p("swin.layernorm.bias"));
        Ok(SwinBackbone {
            patch_embed,
            embed_norm,
            position_embeddings,
            stages,
            norms,
            config: cfg.clone(),
        })
    }

    /// pixel_values [B, C, H, W] → the `out_indices` maps, each [B, C_i, H_i, W_i].
    pub fn forward(&self, pixel_values: &Tensor) -> Result<Vec<Tensor>> {
        let cfg = &self.config;
        if pixel_values.rank() != 4 || pixel_values.dims()[1] != cfg.num_channels {
            return Err(Error::Shape {
                op: "Swin backbone",
                msg: format!(
                    "pixel_values {} must be [B, {}, H, W]",
                    pixel_values.shape(),
                    cfg.num_channels
                ),
            });
        }
        let (h, w) = (pixel_values.dims()[2], pixel_values.dims()[3]);
        let ps = cfg.patch_size;
        // Right/bottom zero padding up to a multiple of the patch (SwinPatchEmbeddings).
        let x = pad_bottom_right(
            &pixel_values.permute(&[0, 2, 3, 1])?,
            h.div_ceil(ps) * ps - h,
            w.div_ceil(ps) * ps - w,
        )?
        .permute(&[0, 3, 1, 2])?;
        let x = self.patch_embed.forward(&x)?.permute(&[0, 2, 3, 1])?; // [B, h, w, C]
        let mut x = self.embed_norm.forward(&x)?;
        if let Some(pe) = &self.position_embeddings {
            let (b, gh, gw, c) = (x.dims()[0], x.dims()[1], x.dims()[2], x.dims()[3]);
            if pe.dims()[1] != gh * gw {
                return Err(Error::Shape {
                    op: "Swin backbone",
                    msg: format!(
                        "absolute position embeddings hold {} patches, the image gives {gh}×{gw}; \
                         interpolation is not supported",
                        pe.dims()[1]
                    ),
                });
            }
            x = x.add(&pe.reshape([1, gh, gw, c])?.expand([b, gh, gw, c])?)?;
        }
        let mut maps = vec![None; cfg.depths.len() + 1];
        maps[0] = Some(x.clone());
        for (si, stage) in self.stages.iter().enumerate() {
            for blk in &stage.blocks {
                x = blk.forward(&x)?;
            }
            maps[si + 1] = Some(x.clone());
            if let Some(d) = &stage.downsample {
                x = d.forward(&x)?;
            }
        }
        self.norms
            .iter()
            .map(|(i, ln)| {
                let m = maps[*i].as_ref().expect("every stage output is kept");
                ln.forward(m)?.permute(&[0, 3, 1, 2])
            })
            .collect()
    }

    /// Channels of each returned map.
    pub fn out_channels(&self) -> Vec<usize> {
        self.norms
            .iter()
            .map(|(i, _)| self.config.channels(*i))
            .collect()
    }
}

impl Module for SwinBackbone {
    fn visit_children(&self, f: &mut dyn FnMut(&str, &dyn Module)) {
        f("swin", &SwinInner(self));
        f("hidden_states_norms", &Norms(&self.norms));
    }
}
struct SwinInner<'a>(&'a SwinBackbone);
impl Module for SwinInner<'_> {
    fn visit_children(&self, f: &mut dyn FnMut(&str, &dyn Module)) {
        f("embeddings", &Embeddings(self.0));
        f("encoder", &Stages(&self.0.stages));
    }
}
struct Embeddings<'a>(&'a SwinBackbone);
impl Module for Embeddings<'_> {
    fn visit_own_params(&self, f: &mut dyn FnMut(&str, &Tensor)) {
        if let Some(p) = &self.0.position_embeddings {
            f("position_embeddings", p);
        }
    }
    fn visit_children(&self, f: &mut dyn FnMut(&str, &dyn Module)) {
        f("patch_embeddings.projection", &self.0.patch_embed);
        f("norm", &self.0.embed_norm);
    }
}
struct Stages<'a>(&'a [SwinStage]);
impl Module for Stages<'_> {
    fn visit_children(&self, f: &mut dyn FnMut(&str, &dyn Module)) {
        for (i, s) in self.0.iter().enumerate() {
            f(&format!("layers.{i}"), s);
        }
    }
}
struct Norms<'a>(&'a [(usize, LayerNorm)]);
impl Module for Norms<'_> {
    fn visit_children(&self, f: &mut dyn FnMut(&str, &dyn Module)) {
        for (i, ln) in self.0 {
            f(&SwinConfig::stage_name(*i), ln);
        }
    }
}
