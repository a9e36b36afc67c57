//! SAM's ViT image encoder (transformers' SamVisionEncoder): patch embedding, absolute
//! position embedding, blocks with windowed or global attention and decomposed relative
//! position bias, and the conv neck down to `output_channels`.
use super::build::{Builder, Proj};
use super::config::{Act, VisionConfig};
use super::rel_pos::decomposed_rel_pos;
use crate::nn::{Conv2d, Forward, LayerNorm, Module};
use crate::tensor::Conv2dParams;
use crate::{DType, Result, Tensor};

/// LayerNorm over channels of an NCHW map (SamLayerNorm "channels_first").
pub fn layer_norm_nchw(ln: &LayerNorm, x: &Tensor) -> Result<Tensor> {
    ln.forward(&x.permute(&[0, 2, 3, 1])?)?
        .permute(&[0, 3, 1, 2])
}

pub struct VisionAttention {
    pub qkv: Proj,
    pub proj: Proj,
    pub rel_pos_h: Option<Tensor>,
    pub rel_pos_w: Option<Tensor>,
    heads: usize,
}

impl VisionAttention {
    /// x [B, H, W, C] (one window or the whole grid) → [B, H, W, C].
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, h, w, c) = (x.dims()[0], x.dims()[1], x.dims()[2], x.dims()[3]);
        let (nh, hd) = (self.heads, c / self.heads);
        // [B, HW, 3, nh, hd] → [3, B, nh, HW, hd]
        let qkv = self
            .qkv
            .forward(x)?
            .reshape([b, h * w, 3, nh, hd])?
            .permute(&[2, 0, 3, 1, 4])?;
        let (q, k, v) = (
            qkv.narrow(0, 0, 1)?.reshape([b, nh, h * w, hd])?,
            qkv.narrow(0, 1, 1)?.reshape([b, nh, h * w, hd])?,
            qkv.narrow(0, 2, 1)?.reshape([b, nh, h * w, hd])?,
        );
        let bias = match (&self.rel_pos_h, &self.rel_pos_w) {
            (Some(rh), Some(rw)) => Some(
                decomposed_rel_pos(&q.reshape([b * nh, h * w, hd])?, rh, rw, (h, w), (h, w))?
                    .reshape([b, nh, h * w, h * w])?,
            ),
            _ => None,
        };
        let o = q.scaled_dot_product_attention(&k, &v, bias.as_ref(), None, None)?; // [B, nh, HW, hd]
        let o = o
            .reshape([b, nh, h, w, hd])?
            .permute(&[0, 2, 3, 1, 4])?
            .reshape([b, h, w, c])?;
        self.proj.forward(&o)
    }
}

pub struct Mlp {
    pub lin1: Proj,
    pub lin2: Proj,
    pub act: Act,
}

impl Mlp {
    pub fn build(b: &mut Builder, name: &str, dim: usize, hidden: usize, act: Act) -> Result<Mlp> {
        Ok(Mlp {
            lin1: b.linear(&format!("{name}.lin1"), dim, hidden, true)?,
            lin2: b.linear(&format!("{name}.lin2"), hidden, dim, true)?,
            act,
        })
    }
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.lin2.forward(&self.act.apply(&self.lin1.forward(x)?)?)
    }
}

impl Module for Mlp {
    fn visit_children(&self, f: &mut dyn FnMut(&str, &dyn Module)) {
        f("lin1", &self.lin1);
        f("lin2", &self.lin2);
    }
}

pub struct VisionLayer {
    pub layer_norm1: LayerNorm,
    pub attn: VisionAttention,
    pub layer_norm2: LayerNorm,
    pub mlp: Mlp,
    pub window: usize,
}

/// [B, H, W, C] → ([B·nw, ws, ws, C], padded (Hp, Wp)); zero padding at the bottom/right,
/// as SAM (the padded tokens take part in attention, unmasked).
pub fn window_partition(x: &Tensor, ws: usize) -> Result<(Tensor, (usize, usize))> {
    let (b, h, w, c) = (x.dims()[0], x.dims()[1], x.dims()[2], x.dims()[3]);
    let (ph, pw) = ((ws - h % ws) % ws, (ws - w % ws) % ws);
    let mut x = x.clone();
    if pw > 0 {
        x = Tensor::cat(&[&x, &Tensor::zeros([b, h, pw, c], x.dtype())], 2)?;
    }
    if ph > 0 {
        x = Tensor::cat(&[&x, &Tensor::zeros([b, ph, w + pw, c], x.dtype())], 1)?;
    }
    let (hp, wp) = (h + ph, w + pw);
    let win = x
        .reshape([b, hp / ws, ws, wp / ws, ws, c])?
        .permute(&[0, 1, 3, 2, 4, 5])?
        .reshape([b * (hp / ws) * (wp / ws), ws, ws, c])?;
    Ok((win, (hp, wp)))
}

/// Inverse of `window_partition`, cropping the padding: → [B, H, W, C].
pub fn window_unpartition(
    win: &Tensor,
    ws: usize,
    (hp, wp): (usize, usize),
    (h, w): (usize, usize),
) -> Result<Tensor> {
    let c = win.dims()[3];
    let b = win.dims()[0] / ((hp / ws) * (wp / ws));
    let x = win
        .reshape([b, hp / ws, wp / ws, ws, ws, c])?
        .permute(&[0, 1, 3, 2, 4, 5])?
        .reshape([b, hp, wp, c])?;
    if (hp, wp) == (h, w) {
        Ok(x)
    } else {
        x.narrow(1, 0, h)?.narrow(2, 0, w)
    }
}

impl VisionLayer {
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = self.layer_norm1.forward(x)?;
        let y = if self.window > 0 {
            let (h, w) = (y.dims()[1], y.dims()[2]);
            let (win, pad) = window_partition(&y, self.window)?;
            window_unpartition(&self.attn.forward(&win)?, self.window, pad, (h, w))?
        } else {
            self.attn.forward(&y)?
        };
        let x = x.add(&y)?;
        x.add(&self.mlp.forward(&self.layer_norm2.forward(&x)?)?)
    }
}

pub struct Neck {
    pub conv1: Conv2d,
    pub layer_norm1: LayerNorm,
    pub conv2: Conv2d,
    pub layer_norm2: LayerNorm,
}

pub struct VisionEncoder {
    pub patch_embed: Conv2d,
    pub pos_embed: Option<Tensor>,
    pub layers: Vec<VisionLayer>,
    pub neck: Neck,
    pub config: VisionConfig,
}

impl VisionEncoder {
    pub fn build(b: &mut Builder, cfg: &VisionConfig) -> Result<VisionEncoder> {
        let p = "vision_encoder";
        let (c, g, ps) = (cfg.hidden_size, cfg.grid(), cfg.patch_size);
        let patch_embed = b.src.conv(
            &format!("{p}.patch_embed.projection"),
            cfg.num_channels,
            c,
            ps,
            Conv2dParams {
                stride: (ps, ps),
                ..Default::default()
            },
            true,
        )?;
        let pos_embed = if cfg.use_abs_pos {
            Some(b.src.param(
                &format!("{p}.pos_embed"),
                [1, g, g, c],
                super::build::Init::Normal(0.02),
            )?)
        } else {
            None
        };
        let hd = c / cfg.num_attention_heads;
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for i in 0..cfg.num_hidden_layers {
            let n = format!("{p}.layers.{i}");
            let window = cfg.window_of(i);
            let side = if window == 0 { g } else { window };
            let (rel_pos_h, rel_pos_w) = if cfg.use_rel_pos {
                (
                    Some(b.src.param(
                        &format!("{n}.attn.rel_pos_h"),
                        [2 * side - 1, hd],
                        super::build::Init::Normal(0.02),
                    )?),
                    Some(b.src.param(
                        &format!("{n}.attn.rel_pos_w"),
                        [2 * side - 1, hd],
                        super::build::Init::Normal(0.02),
                    )?),
                )
            } else {
                (None, None)
            };
            layers.push(VisionLayer {
                layer_norm1: b.src.layer_norm(
                    &format!("{n}.layer_norm1"),
                    c,
                    cfg.layer_norm_eps,
                )?,
                attn: VisionAttention {
                    qkv: b.linear(&format!("{n}.attn.qkv"), c, 3 * c, cfg.qkv_bias)?,
                    proj: b.linear(&format!("{n}.attn.proj"), c, c, true)?,
                    rel_pos_h,
                    rel_pos_w,
                    heads: cfg.num_attention_heads,
                },
                layer_norm2: b.src.layer_norm(
                    &format!("{n}.layer_norm2"),
                    c,
                    cfg.layer_norm_eps,
                )?,
                mlp: Mlp::build(b, &format!("{n}.mlp"), c, cfg.mlp_dim, cfg.hidden_act)?,
                window,
            });
        }
        let oc = cfg.output_channels;
        let neck = Neck {
            conv1: b.src.conv(
                &format!("{p}.neck.conv1"),
                c,
                oc,
                1,
                Conv2dParams::default(),
                false,
            )?,
            layer_norm1: b
                .src
                .layer_norm(&format!("{p}.neck.layer_norm1"), oc, 1e-6)?,
            conv2: b.src.conv(
                &format!("{p}.neck.conv2"),
                oc,
                oc,
                3,
                Conv2dParams {
                    padding: (1, 1),
                    ..Default::default()
                },
                false,
            )?,
            layer_norm2: b
                .src
                .layer_norm(&format!("{p}.neck.layer_norm2"), oc, 1e-6)?,
        };
        Ok(VisionEncoder {
            patch_embed,
            pos_embed,
            layers,
            neck,
            config: cfg.clone(),
        })
    }

    /// pixel_values [B, 3, S, S] (normalised, padded) → image embeddings [B, out, S/p, S/p].
    pub fn forward(&self, pixel_values: &Tensor) -> Result<Tensor> {
        let cfg = &self.config;
        let d = pixel_values.dims();
        if d.len() != 4
            || d[1] != cfg.num_channels
            || d[2] != cfg.image_size
            || d[3] != cfg.image_size
        {
            return Err(crate::Error::Shape {
                op: "SAM vision encoder",
                msg: format!(
                    "pixel_values {} must be [B, {}, {}, {}]",
                    pixel_values.shape(),
                    cfg.num_channels,
                    cfg.image_size,
                    cfg.image_size
                ),
            });
        }
        let x = pixel_values.to_dtype(DType::F32)?;
        let mut x = self.patch_embed.forward(&x)?.permute(&[0, 2, 3, 1])?;
        if let Some(pe) = &self.pos_embed {
            x = x.add(pe)?;
        }
        for l in &self.layers {
            x = l.forward(&x)?;
        }
        let x = x.permute(&[0, 3, 1, 2])?;
        let x = layer_norm_nchw(&self.neck.layer_norm1, &self.neck.conv1.forward(&x)?)?;
        layer_norm_nchw(&self.neck.layer_norm2, &self.neck.conv2.forward(&x)?)
    }
}

impl Module for VisionAttention {
    fn visit_own_params(&self, f: &mut dyn FnMut(&str, &Tensor)) {
        if let (Some(h), Some(w)) = (&self.rel_pos_h, &self.rel_pos_w) {
            f("rel_pos_h", h);
            f("rel_pos_w", w);
        }
    }
    fn visit_children(&self, f: &mut dyn FnMut(&str, &dyn Module)) {
        f("qkv", &self.qkv);
        f("proj", &self.proj);
    }
}

impl Module for VisionLayer {
    fn visit_children(&self, f: &mut dyn FnMut(&str, &dyn Module)) {
        f("layer_norm1", &self.layer_norm1);
        f("attn", &self.attn);
        f("layer_norm2", &self.layer_norm2);
        f("mlp", &self.mlp);
    }
}

impl Module for Neck {
    fn visit_children(&self, f: &mut dyn FnMut(&str, &dyn Module)) {
        f("conv1", &self.conv1);
        f("layer_norm1", &self.layer_norm1);
        f("conv2", &self.conv2);
        f("layer_norm2", &self.layer_norm2);
    }
}

/// The patch embedding's conv sits under `patch_embed.projection`.
struct PatchEmbed<'a>(&'a Conv2d);
impl Module for PatchEmbed<'_> {
    fn visit_children(&self, f: &mut dyn FnMut(&str, &dyn Module)) {
        f("projection", self.0);
    }
}

impl Module for VisionEncoder {
    fn visit_own_params(&self, f: &mut dyn FnMut(&str, &Tensor)) {
        if let Some(p) = &self.pos_embed {
            f("pos_embed", p);
        }
    }
    fn visit_children(&self, f: &mut dyn FnMut(&str, &dyn Module)) {
        f("patch_embed", &PatchEmbed(&self.patch_embed));
        for (i, l) in self.layers.iter().enumerate() {
            f(&format!("layers.{i}"), l);
        }
        f("neck", &self.neck);
    }
}
