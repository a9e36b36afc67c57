//! segment-anything's parameter names → transformers' SamModel names.
//!
//! The official checkpoints (`sam_vit_b_01ec64.pth` converted once to safetensors by
//! `tools/reference/sam_pth_to_safetensors.py`, names unchanged) use the module tree of
//! github.com/facebookresearch/segment-anything; our SAM is built with transformers' names.
//! The mapping is the one of transformers' `convert_sam_to_hf.py` (`KEYS_TO_MODIFY_MAPPING`
//! plus the hypernetwork-MLP renaming), written out name by name so that anything we do
//! not recognise is reported instead of passed through:
//!
//! | segment-anything | transformers |
//! |---|---|
//! | `image_encoder.` | `vision_encoder.` |
//! | `patch_embed.proj` | `patch_embed.projection` |
//! | `blocks.{i}.norm{1,2}` | `layers.{i}.layer_norm{1,2}` (attn, mlp unchanged) |
//! | `neck.{0,1,2,3}` | `neck.{conv1,layer_norm1,conv2,layer_norm2}` |
//! | `prompt_encoder.pe_layer.positional_encoding_gaussian_matrix` | `prompt_encoder.shared_embedding.positional_embedding` and `shared_image_embedding.positional_embedding` (tied) |
//! | `point_embeddings.{i}` | `point_embed.{i}` |
//! | `mask_downscaling.{0,1,3,4,6}` | `mask_embed.{conv1,layer_norm1,conv2,layer_norm2,conv3}` |
//! | `output_upscaling.{0,1,3}` | `upscale_conv1`, `upscale_layer_norm`, `upscale_conv2` |
//! | MLP `layers.{0, 1..d-2, d-1}` (hypernetworks, IoU head) | `proj_in`, `layers.{0..d-3}`, `proj_out` |
//! | `transformer.layers.{i}.norm{1..4}`, `transformer.norm_final_attn` | `layer_norm{1..4}`, `layer_norm_final_attn` |
//!
//! `pixel_mean` / `pixel_std` (normalisation constants the released checkpoints carry) have
//! no transformers name and are dropped. Numerics: segment-anything's two-way transformer
//! LayerNorms use eps 1e-5; transformers reads the block norms' eps from
//! `mask_decoder_config.layer_norm_eps` (1e-6 by default) — a 1e-4-level difference in the
//! mask logits, not a naming matter.
use crate::io::StateDict;
use crate::{Error, Result};

/// Official names that have no transformers counterpart and are dropped on conversion.
const DROPPED: [&str; 2] = ["pixel_mean", "pixel_std"];
const PE_PROMPT: &str = "prompt_encoder.shared_embedding.positional_embedding";
const PE_SHARED: &str = "shared_image_embedding.positional_embedding";
/// Depth of the official MLPs in every released SAM (hypernetworks and IoU head).
const SAM_MLP_DEPTH: usize = 3;

/// The transformers SamModel name of a segment-anything parameter, or `None` when the name
/// is not one segment-anything's SAM has (or, for `pixel_mean`/`pixel_std`, has no
/// transformers counterpart). The Gaussian matrix maps to
/// `prompt_encoder.shared_embedding.positional_embedding`; [`convert_official`] also fills
/// its tied copy. MLPs are taken to be 3 layers deep, as in every released SAM.
pub fn hf_name(official: &str) -> Option<String> {
    map_name(official, SAM_MLP_DEPTH)
}

/// True when `sd` uses segment-anything's names (detected by names only the official
/// module tree has: `image_encoder.*`, `pe_layer`, `mask_downscaling`, `output_upscaling`,
/// `point_embeddings`).
pub fn is_official(sd: &StateDict) -> bool {
    sd.names().any(|n| {
        n.starts_with("image_encoder.")
            || n.starts_with("prompt_encoder.pe_layer.")
            || n.starts_with("prompt_encoder.mask_downscaling.")
            || n.starts_with("prompt_encoder.point_embeddings.")
            || n.starts_with("mask_decoder.output_upscaling.")
    })
}

/// A state dict with segment-anything's names → the same tensors under transformers' names.
/// Every name is mapped; names that are not segment-anything SAM parameters are listed
/// together in the error. `pixel_mean`/`pixel_std` are dropped; the Gaussian matrix fills
/// both `shared_image_embedding.positional_embedding` and
/// `prompt_encoder.shared_embedding.positional_embedding`. The IoU head's depth is read from
/// the names (`iou_head_depth` other than 3 maps too). Tensors are read out of the source
/// (a mapped file is copied once).
pub fn convert_official(sd: &StateDict) -> Result<StateDict> {
    let iou_depth =
        mlp_depth(sd, "mask_decoder.iou_prediction_head.layers.").unwrap_or(SAM_MLP_DEPTH);
    let mut out = StateDict::new();
    let mut unknown = Vec::new();
    let mut clashes = Vec::new();
    for name in sd.names() {
        if DROPPED.contains(&name) {
            continue;
        }
        let mapped = if name.starts_with("mask_decoder.iou_prediction_head.") {
            map_name(name, iou_depth)
        } else {
            map_name(name, SAM_MLP_DEPTH)
        };
        let Some(new) = mapped else {
            unknown.push(name.to_string());
            continue;
        };
        if out.contains(&new) {
            clashes.push(format!("{name} -> {new}"));
            continue;
        }
        out.insert(new, sd.get(name)?);
    }
    if !unknown.is_empty() {
        let e = Error::Load {
            missing: vec![],
            unexpected: unknown,
            mismatched: vec![],
        };
        return Err(e.context(format!(
            "{}: names that are not segment-anything SAM parameters",
            sd.source()
        )));
    }
    if !clashes.is_empty() {
        return Err(Error::Format {
            path: sd.source().to_string(),
            record: "segment-anything names".into(),
            msg: format!(
                "two names map to one transformers name: {}",
                clashes.join(", ")
            ),
        });
    }
    if out.contains(PE_PROMPT) {
        let g = out.get(PE_PROMPT)?;
        out.insert(PE_SHARED, g);
    }
    Ok(out)
}

/// 1 + the largest `j` in `{prefix}{j}.…` names, if any.
fn mlp_depth(sd: &StateDict, prefix: &str) -> Option<usize> {
    sd.names()
        .filter_map(|n| {
            n.strip_prefix(prefix)?
                .split('.')
                .next()?
                .parse::<usize>()
                .ok()
        })
        .max()
        .map(|j| j + 1)
}

fn index(s: &str) -> Option<usize> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `weight` or `bias`.
fn wb(s: &str) -> bool {
    s == "weight" || s == "bias"
}

/// segment-anything MLP `layers.{j}` of a `depth`-layer MLP → transformers' SamFeedForward.
fn mlp_layer(j: usize, depth: usize) -> Option<String> {
    if depth < 2 || j >= depth {
        None
    } else if j == 0 {
        Some("proj_in".into())
    } else if j == depth - 1 {
        Some("proj_out".into())
    } else {
        Some(format!("layers.{}", j - 1))
    }
}

fn map_name(official: &str, iou_depth: usize) -> Option<String> {
    let p: Vec<&str> = official.split('.').collect();
    match p.as_slice() {
        ["image_encoder", rest @ ..] => vision(rest).map(|s| format!("vision_encoder.{s}")),
        ["prompt_encoder", rest @ ..] => prompt(rest).map(|s| format!("prompt_encoder.{s}")),
        ["mask_decoder", rest @ ..] => {
            decoder(rest, iou_depth).map(|s| format!("mask_decoder.{s}"))
        }
        _ => None,
    }
}

fn vision(p: &[&str]) -> Option<String> {
    match p {
        ["pos_embed"] => Some("pos_embed".into()),
        ["patch_embed", "proj", t] if wb(t) => Some(format!("patch_embed.projection.{t}")),
        ["blocks", i, rest @ ..] => {
            let i = index(i)?;
            let inner = match rest {
                ["norm1", t] if wb(t) => format!("layer_norm1.{t}"),
                ["norm2", t] if wb(t) => format!("layer_norm2.{t}"),
                ["attn", m @ ("qkv" | "proj"), t] if wb(t) => format!("attn.{m}.{t}"),
                ["attn", r @ ("rel_pos_h" | "rel_pos_w")] => format!("attn.{r}"),
                ["mlp", m @ ("lin1" | "lin2"), t] if wb(t) => format!("mlp.{m}.{t}"),
                _ => return None,
            };
            Some(format!("layers.{i}.{inner}"))
        }
        // convs without bias, LayerNorm2d with weight and bias
        ["neck", "0", "weight"] => Some("neck.conv1.weight".into()),
        ["neck", "1", t] if wb(t) => Some(format!("neck.layer_norm1.{t}")),
        ["neck", "2", "weight"] => Some("neck.conv2.weight".into()),
        ["neck", "3", t] if wb(t) => Some(format!("neck.layer_norm2.{t}")),
        _ => None,
    }
}

fn prompt(p: &[&str]) -> Option<String> {
    match p {
        ["pe_layer", "positional_encoding_gaussian_matrix"] => {
            Some("shared_embedding.positional_embedding".into())
        }
        ["point_embeddings", i, "weight"] => Some(format!("point_embed.{}.weight", index(i)?)),
        [e @ ("not_a_point_embed" | "no_mask_embed"), "weight"] => Some(format!("{e}.weight")),
        ["mask_downscaling", i, t] if wb(t) => {
            let m = match *i {
                "0" => "conv1",
                "1" => "layer_norm1",
                "3" => "conv2",
                "4" => "layer_norm2",
                "6" => "conv3",
                _ => return None, // 2 and 5 are activations
            };
            Some(format!("mask_embed.{m}.{t}"))
        }
        _ => None,
    }
}

fn decoder(p: &[&str], iou_depth: usize) -> Option<String> {
    match p {
        [e @ ("iou_token" | "mask_tokens"), "weight"] => Some(format!("{e}.weight")),
        ["output_upscaling", i, t] if wb(t) => {
            let m = match *i {
                "0" => "upscale_conv1",
                "1" => "upscale_layer_norm",
                "3" => "upscale_conv2",
                _ => return None, // 2 and 4 are activations
            };
            Some(format!("{m}.{t}"))
        }
        ["output_hypernetworks_mlps", k, "layers", j, t] if wb(t) => {
            let l = mlp_layer(index(j)?, SAM_MLP_DEPTH)?;
            Some(format!("output_hypernetworks_mlps.{}.{l}.{t}", index(k)?))
        }
        ["iou_prediction_head", "layers", j, t] if wb(t) => {
            let l = mlp_layer(index(j)?, iou_depth)?;
            Some(format!("iou_prediction_head.{l}.{t}"))
        }
        ["transformer", rest @ ..] => two_way(rest).map(|s| format!("transformer.{s}")),
        _ => None,
    }
}

fn attention_proj(p: &[&str]) -> Option<String> {
    match p {
        [m @ ("q_proj" | "k_proj" | "v_proj" | "out_proj"), t] if wb(t) => Some(format!("{m}.{t}")),
        _ => None,
    }
}

fn two_way(p: &[&str]) -> Option<String> {
    match p {
        ["layers", i, rest @ ..] => {
            let i = index(i)?;
            let inner = match rest {
                [
                    a @ ("self_attn" | "cross_attn_token_to_image" | "cross_attn_image_to_token"),
                    r @ ..,
                ] => {
                    format!("{a}.{}", attention_proj(r)?)
                }
                [n @ ("norm1" | "norm2" | "norm3" | "norm4"), t] if wb(t) => {
                    format!("layer_{n}.{t}") // norm1 -> layer_norm1
                }
                ["mlp", m @ ("lin1" | "lin2"), t] if wb(t) => format!("mlp.{m}.{t}"),
                _ => return None,
            };
            Some(format!("layers.{i}.{inner}"))
        }
        ["final_attn_token_to_image", r @ ..] => {
            Some(format!("final_attn_token_to_image.{}", attention_proj(r)?))
        }
        ["norm_final_attn", t] if wb(t) => Some(format!("layer_norm_final_attn.{t}")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Tensor;

    const GAUSSIAN: &str = "prompt_encoder.pe_layer.positional_encoding_gaussian_matrix";

    const PAIRS: &[(&str, &str)] = &[
        ("image_encoder.pos_embed", "vision_encoder.pos_embed"),
        (
            "image_encoder.patch_embed.proj.weight",
            "vision_encoder.patch_embed.projection.weight",
        ),
        (
            "image_encoder.patch_embed.proj.bias",
            "vision_encoder.patch_embed.projection.bias",
        ),
        (
            "image_encoder.blocks.0.norm1.weight",
            "vision_encoder.layers.0.layer_norm1.weight",
        ),
        (
            "image_encoder.blocks.11.norm2.bias",
            "vision_encoder.layers.11.layer_norm2.bias",
        ),
        (
            "image_encoder.blocks.3.attn.qkv.weight",
            "vision_encoder.layers.3.attn.qkv.weight",
        ),
        (
            "image_encoder.blocks.3.attn.proj.bias",
            "vision_encoder.layers.3.attn.proj.bias",
        ),
        (
            "image_encoder.blocks.31.attn.rel_pos_h",
            "vision_encoder.layers.31.attn.rel_pos_h",
        ),
        (
            "image_encoder.blocks.7.attn.rel_pos_w",
            "vision_encoder.layers.7.attn.rel_pos_w",
        ),
        (
            "image_encoder.blocks.2.mlp.lin1.weight",
            "vision_encoder.layers.2.mlp.lin1.weight",
        ),
        (
            "image_encoder.blocks.2.mlp.lin2.bias",
            "vision_encoder.layers.2.mlp.lin2.bias",
        ),
        (
            "image_encoder.neck.0.weight",
            "vision_encoder.neck.conv1.weight",
        ),
        (
            "image_encoder.neck.1.weight",
            "vision_encoder.neck.layer_norm1.weight",
        ),
        (
            "image_encoder.neck.1.bias",
            "vision_encoder.neck.layer_norm1.bias",
        ),
        (
            "image_encoder.neck.2.weight",
            "vision_encoder.neck.conv2.weight",
        ),
        (
            "image_encoder.neck.3.bias",
            "vision_encoder.neck.layer_norm2.bias",
        ),
        (GAUSSIAN, PE_PROMPT),
        (
            "prompt_encoder.point_embeddings.0.weight",
            "prompt_encoder.point_embed.0.weight",
        ),
        (
            "prompt_encoder.point_embeddings.3.weight",
            "prompt_encoder.point_embed.3.weight",
        ),
        (
            "prompt_encoder.not_a_point_embed.weight",
            "prompt_encoder.not_a_point_embed.weight",
        ),
        (
            "prompt_encoder.no_mask_embed.weight",
            "prompt_encoder.no_mask_embed.weight",
        ),
        (
            "prompt_encoder.mask_downscaling.0.weight",
            "prompt_encoder.mask_embed.conv1.weight",
        ),
        (
            "prompt_encoder.mask_downscaling.1.bias",
            "prompt_encoder.mask_embed.layer_norm1.bias",
        ),
        (
            "prompt_encoder.mask_downscaling.3.bias",
            "prompt_encoder.mask_embed.conv2.bias",
        ),
        (
            "prompt_encoder.mask_downscaling.4.weight",
            "prompt_encoder.mask_embed.layer_norm2.weight",
        ),
        (
            "prompt_encoder.mask_downscaling.6.weight",
            "prompt_encoder.mask_embed.conv3.weight",
        ),
        (
            "mask_decoder.iou_token.weight",
            "mask_decoder.iou_token.weight",
        ),
        (
            "mask_decoder.mask_tokens.weight",
            "mask_decoder.mask_tokens.weight",
        ),
        (
            "mask_decoder.output_upscaling.0.weight",
            "mask_decoder.upscale_conv1.weight",
        ),
        (
            "mask_decoder.output_upscaling.1.bias",
            "mask_decoder.upscale_layer_norm.bias",
        ),
        (
            "mask_decoder.output_upscaling.3.bias",
            "mask_decoder.upscale_conv2.bias",
        ),
        (
            "mask_decoder.output_hypernetworks_mlps.0.layers.0.weight",
            "mask_decoder.output_hypernetworks_mlps.0.proj_in.weight",
        ),
        (
            "mask_decoder.output_hypernetworks_mlps.2.layers.1.bias",
            "mask_decoder.output_hypernetworks_mlps.2.layers.0.bias",
        ),
        (
            "mask_decoder.output_hypernetworks_mlps.3.layers.2.weight",
            "mask_decoder.output_hypernetworks_mlps.3.proj_out.weight",
        ),
        (
            "mask_decoder.iou_prediction_head.layers.0.weight",
            "mask_decoder.iou_prediction_head.proj_in.weight",
        ),
        (
            "mask_decoder.iou_prediction_head.layers.1.bias",
            "mask_decoder.iou_prediction_head.layers.0.bias",
        ),
        (
            "mask_decoder.iou_prediction_head.layers.2.bias",
            "mask_decoder.iou_prediction_head.proj_out.bias",
        ),
        (
            "mask_decoder.transformer.layers.0.self_attn.q_proj.weight",
            "mask_decoder.transformer.layers.0.self_attn.q_proj.weight",
        ),
        (
            "mask_decoder.transformer.layers.1.cross_attn_token_to_image.out_proj.bias",
            "mask_decoder.transformer.layers.1.cross_attn_token_to_image.out_proj.bias",
        ),
        (
            "mask_decoder.transformer.layers.0.cross_attn_image_to_token.v_proj.weight",
            "mask_decoder.transformer.layers.0.cross_attn_image_to_token.v_proj.weight",
        ),
        (
            "mask_decoder.transformer.layers.1.norm1.weight",
            "mask_decoder.transformer.layers.1.layer_norm1.weight",
        ),
        (
            "mask_decoder.transformer.layers.0.norm4.bias",
            "mask_decoder.transformer.layers.0.layer_norm4.bias",
        ),
        (
            "mask_decoder.transformer.layers.1.mlp.lin2.weight",
            "mask_decoder.transformer.layers.1.mlp.lin2.weight",
        ),
        (
            "mask_decoder.transformer.final_attn_token_to_image.k_proj.bias",
            "mask_decoder.transformer.final_attn_token_to_image.k_proj.bias",
        ),
        (
            "mask_decoder.transformer.norm_final_attn.weight",
            "mask_decoder.transformer.layer_norm_final_attn.weight",
        ),
    ];

    #[test]
    fn known_pairs() {
        for (official, hf) in PAIRS {
            assert_eq!(hf_name(official).as_deref(), Some(*hf), "{official}");
        }
    }

    #[test]
    fn unknown_names_map_to_none() {
        for n in [
            "pixel_mean",
            "pixel_std",
            "image_encoder.blocks.0.attn.qkv",
            "image_encoder.blocks.x.norm1.weight",
            "image_encoder.blocks.0.norm3.weight",
            "image_encoder.neck.0.bias",
            "image_encoder.neck.4.weight",
            "prompt_encoder.mask_downscaling.2.weight",
            "mask_decoder.output_upscaling.2.weight",
            "mask_decoder.output_hypernetworks_mlps.0.layers.3.weight",
            "mask_decoder.transformer.layers.0.norm5.weight",
            "mask_decoder.transformer.layers.0.self_attn.qkv.weight",
            "vision_encoder.layers.0.attn.qkv.weight",
            "shared_image_embedding.positional_embedding",
            "image_encoder.pos_embed.extra",
            "",
        ] {
            assert_eq!(hf_name(n), None, "{n}");
        }
    }

    fn t(v: f32, shape: &[usize]) -> Tensor {
        let n: usize = shape.iter().product();
        Tensor::from_vec(vec![v; n], shape).unwrap()
    }

    #[test]
    fn convert_fills_both_pe_drops_pixel_stats_and_reads_iou_depth() {
        let sd = StateDict::from_tensors([
            (GAUSSIAN.to_string(), t(0.5, &[2, 4])),
            ("pixel_mean".to_string(), t(100.0, &[3, 1, 1])),
            ("pixel_std".to_string(), t(50.0, &[3, 1, 1])),
            (
                "image_encoder.neck.0.weight".to_string(),
                t(1.0, &[2, 3, 1, 1]),
            ),
            // an IoU head 4 layers deep
            (
                "mask_decoder.iou_prediction_head.layers.0.weight".to_string(),
                t(2.0, &[2, 2]),
            ),
            (
                "mask_decoder.iou_prediction_head.layers.1.weight".to_string(),
                t(3.0, &[2, 2]),
            ),
            (
                "mask_decoder.iou_prediction_head.layers.2.weight".to_string(),
                t(4.0, &[2, 2]),
            ),
            (
                "mask_decoder.iou_prediction_head.layers.3.weight".to_string(),
                t(5.0, &[2, 2]),
            ),
        ]);
        assert!(is_official(&sd));
        let hf = convert_official(&sd).unwrap();
        let names: Vec<&str> = hf.names().collect();
        assert_eq!(
            names,
            vec![
                "mask_decoder.iou_prediction_head.layers.0.weight",
                "mask_decoder.iou_prediction_head.layers.1.weight",
                "mask_decoder.iou_prediction_head.proj_in.weight",
                "mask_decoder.iou_prediction_head.proj_out.weight",
                PE_PROMPT,
                PE_SHARED,
                "vision_encoder.neck.conv1.weight",
            ]
        );
        let val = |n: &str| hf.get(n).unwrap().to_vec_f32().unwrap()[0];
        assert_eq!(val("mask_decoder.iou_prediction_head.proj_in.weight"), 2.0);
        assert_eq!(val("mask_decoder.iou_prediction_head.layers.0.weight"), 3.0);
        assert_eq!(val("mask_decoder.iou_prediction_head.layers.1.weight"), 4.0);
        assert_eq!(val("mask_decoder.iou_prediction_head.proj_out.weight"), 5.0);
        assert_eq!(val(PE_PROMPT), 0.5);
        assert_eq!(val(PE_SHARED), 0.5);
        assert_eq!(hf.shape(PE_SHARED).unwrap().dims(), &[2, 4]);
        assert!(!is_official(&hf));
    }

    #[test]
    fn convert_lists_every_unknown_name() {
        let sd = StateDict::from_tensors([
            ("image_encoder.pos_embed".to_string(), t(0.0, &[1, 2, 2, 4])),
            (
                "image_encoder.blocks.0.attn.bogus".to_string(),
                t(0.0, &[1]),
            ),
            (
                "vision_encoder.layers.0.attn.qkv.weight".to_string(),
                t(0.0, &[1]),
            ),
        ]);
        let e = convert_official(&sd).unwrap_err().to_string();
        assert!(e.contains("image_encoder.blocks.0.attn.bogus"), "{e}");
        assert!(e.contains("vision_encoder.layers.0.attn.qkv.weight"), "{e}");
        assert!(!e.contains("image_encoder.pos_embed,"), "{e}");
    }

    #[test]
    fn transformers_names_are_not_official() {
        let sd = StateDict::from_tensors([
            ("vision_encoder.pos_embed".to_string(), t(0.0, &[1])),
            (PE_SHARED.to_string(), t(0.0, &[2, 2])),
            (
                "mask_decoder.upscale_conv1.weight".to_string(),
                t(0.0, &[1]),
            ),
        ]);
        assert!(!is_official(&sd));
    }

    /// The committed official-names fixture converts to exactly the names of a transformers
    /// fixture with the same depth (3 vision layers, 2 two-way layers), values carried over.
    #[test]
    fn official_fixture_converts_to_transformers_names() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let (off, hf) = (
            dir.join("sam-official-names.safetensors"),
            dir.join("sam-win3-pad.safetensors"),
        );
        if !off.exists() || !hf.exists() {
            eprintln!("skipping: fixtures not present");
            return;
        }
        let official = StateDict::open(&off).unwrap().strip_prefix("weights.");
        assert!(is_official(&official));
        let converted = convert_official(&official).unwrap();
        let reference = StateDict::open(&hf).unwrap().strip_prefix("weights.");
        let a: Vec<&str> = converted.names().collect();
        let b: Vec<&str> = reference.names().collect();
        assert_eq!(a, b);
        for (o, h) in [
            (
                "mask_decoder.output_hypernetworks_mlps.1.layers.1.weight",
                "mask_decoder.output_hypernetworks_mlps.1.layers.0.weight",
            ),
            (
                "image_encoder.neck.2.weight",
                "vision_encoder.neck.conv2.weight",
            ),
            (GAUSSIAN, PE_SHARED),
        ] {
            let x = official.get(o).unwrap();
            let y = converted.get(h).unwrap();
            assert_eq!(x.dims(), y.dims(), "{o}");
            assert_eq!(x.to_vec_f32().unwrap(), y.to_vec_f32().unwrap(), "{o}");
        }
    }
}
