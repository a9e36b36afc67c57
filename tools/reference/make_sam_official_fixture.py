"""Make a `sam` parity fixture whose weights use segment-anything's ORIGINAL names.

Dev-time only. Builds a tiny SAM from the official modeling code (pip install
segment-anything==1.0: ImageEncoderViT, PromptEncoder, MaskDecoder, TwoWayTransformer),
draws random weights, runs it on box prompts and writes a fixture of kind `sam` in the
layout of shared/fixtures/sam-visible.safetensors, except:
  - weights.* are the official state dict names ("image_encoder.blocks.0.norm1.weight",
    "mask_decoder.output_upscaling.0.weight", ...) plus pixel_mean / pixel_std (3,1,1), as
    the released .pth checkpoints carry them (the loader must drop them);
  - metadata "names": "segment-anything";
  - metadata "config" is the EQUIVALENT transformers SamConfig dict, so our code builds the
    transformers-shaped model and loads the official names through
    src/models/sam/official_names.rs.

    /work/venv/bin/python tools/reference/make_sam_official_fixture.py \
        --out tests/fixtures/sam-official-names.safetensors

Flags (defaults in brackets): --image-size [64] --patch [8] --hidden [32] --layers [3]
--heads [2] --window [3] --global [1] --out-channels [32] --decoder-hidden [64] (two-way
transformer MLP width) --decoder-layers [2] --decoder-heads [2] --batch [1] --boxes [2]
--seed [5] --out PATH.

The official model is called module by module like Sam.forward / SamPredictor do:
image_encoder on the (already normalized) batch, then per image prompt_encoder(boxes=...)
and mask_decoder(image_pe=prompt_encoder.get_dense_pe(), multimask_output=True/False);
per-image results are stacked to transformers' shapes (B, nb, 3, h, w) / (B, nb, 3).

Equivalence notes: segment-anything's two-way transformer uses nn.LayerNorm's default
eps 1e-5; transformers takes the block norms' eps from mask_decoder_config.layer_norm_eps
(default 1e-6) and uses 1e-5 for layer_norm_final_attn. The config written here sets
mask_decoder_config.layer_norm_eps = 1e-5, which makes the transformers model exactly the
official one. The script checks that: it maps the names (same mapping as
official_names.rs, re-implemented below), loads them into transformers' SamModel and
prints max |delta| against the official outputs (must be <= 1e-5).
"""
import argparse
import json
import os
import re
import sys
from functools import partial

import torch
import torch.nn as nn
from safetensors.torch import save_file

import segment_anything
from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer
import transformers
from transformers import SamConfig, SamModel

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_sam_fixture import TOLERANCES, make_inputs, parse_global  # noqa: E402

PIXEL_MEAN = [123.675, 116.28, 103.53]
PIXEL_STD = [58.395, 57.12, 57.375]


# ---- official -> transformers names (mirror of src/models/sam/official_names.rs) ----
def mlp_rename(prefix_re, name, depth):
    """segment-anything MLP layers.{0..d-1} -> transformers proj_in / layers.{i-1} / proj_out."""
    m = re.match(prefix_re + r"\.layers\.(\d+)\.(weight|bias)$", name)
    if not m:
        return None
    i = int(m.group(2))
    new = "proj_in" if i == 0 else "proj_out" if i == depth - 1 else f"layers.{i - 1}"
    return f"{m.group(1)}.{new}.{m.group(3)}"


def hf_name(name, iou_depth=3):
    if name in ("pixel_mean", "pixel_std"):
        return None  # normalization constants, not parameters
    if name == "prompt_encoder.pe_layer.positional_encoding_gaussian_matrix":
        return "prompt_encoder.shared_embedding.positional_embedding"
    r = mlp_rename(r"(mask_decoder\.output_hypernetworks_mlps\.\d+)", name, 3)
    if r is None:
        r = mlp_rename(r"(mask_decoder\.iou_prediction_head)", name, iou_depth)
    if r is not None:
        return r
    subs = [
        (r"^image_encoder\.", "vision_encoder."),
        (r"\.patch_embed\.proj\.", ".patch_embed.projection."),
        (r"\.blocks\.(\d+)\.norm(\d)\.", r".layers.\1.layer_norm\2."),
        (r"\.blocks\.(\d+)\.", r".layers.\1."),
        (r"\.neck\.0\.", ".neck.conv1."),
        (r"\.neck\.1\.", ".neck.layer_norm1."),
        (r"\.neck\.2\.", ".neck.conv2."),
        (r"\.neck\.3\.", ".neck.layer_norm2."),
        (r"\.point_embeddings\.(\d+)\.", r".point_embed.\1."),
        (r"\.mask_downscaling\.0\.", ".mask_embed.conv1."),
        (r"\.mask_downscaling\.1\.", ".mask_embed.layer_norm1."),
        (r"\.mask_downscaling\.3\.", ".mask_embed.conv2."),
        (r"\.mask_downscaling\.4\.", ".mask_embed.layer_norm2."),
        (r"\.mask_downscaling\.6\.", ".mask_embed.conv3."),
        (r"\.output_upscaling\.0\.", ".upscale_conv1."),
        (r"\.output_upscaling\.1\.", ".upscale_layer_norm."),
        (r"\.output_upscaling\.3\.", ".upscale_conv2."),
        (r"\.transformer\.layers\.(\d+)\.norm(\d)\.", r".transformer.layers.\1.layer_norm\2."),
        (r"\.transformer\.norm_final_attn\.", ".transformer.layer_norm_final_attn."),
    ]
    for pat, rep in subs:
        name = re.sub(pat, rep, name)
    return name


def to_hf(sd):
    out = {}
    for k, v in sd.items():
        n = hf_name(k)
        if n is not None:
            out[n] = v
    out["shared_image_embedding.positional_embedding"] = out["prompt_encoder.shared_embedding.positional_embedding"]
    return out


# ---- models ----
def official_model(a):
    tokens = a.image_size // a.patch
    encoder = ImageEncoderViT(
        img_size=a.image_size, patch_size=a.patch, in_chans=3, embed_dim=a.hidden, depth=a.layers,
        num_heads=a.heads, mlp_ratio=4.0, out_chans=a.out_channels, qkv_bias=True,
        norm_layer=partial(nn.LayerNorm, eps=1e-6), act_layer=nn.GELU, use_abs_pos=True,
        use_rel_pos=True, rel_pos_zero_init=True, window_size=a.window,
        global_attn_indexes=tuple(parse_global(a.global_)),
    )
    prompt = PromptEncoder(embed_dim=a.out_channels, image_embedding_size=(tokens, tokens),
                           input_image_size=(a.image_size, a.image_size), mask_in_chans=8)
    decoder = MaskDecoder(
        num_multimask_outputs=3,
        transformer=TwoWayTransformer(depth=a.decoder_layers, embedding_dim=a.out_channels,
                                      mlp_dim=a.decoder_hidden, num_heads=a.decoder_heads),
        transformer_dim=a.out_channels, iou_head_depth=3, iou_head_hidden_dim=a.out_channels,
    )
    return Sam(image_encoder=encoder, prompt_encoder=prompt, mask_decoder=decoder,
               pixel_mean=PIXEL_MEAN, pixel_std=PIXEL_STD).eval()


def hf_config(a):
    tokens = a.image_size // a.patch
    vision = dict(hidden_size=a.hidden, output_channels=a.out_channels, num_hidden_layers=a.layers,
                  num_attention_heads=a.heads, image_size=a.image_size, patch_size=a.patch,
                  window_size=a.window, global_attn_indexes=parse_global(a.global_),
                  num_pos_feats=a.out_channels // 2, mlp_dim=4 * a.hidden, initializer_range=0.02)
    prompt = dict(hidden_size=a.out_channels, image_size=a.image_size, patch_size=a.patch,
                  mask_input_channels=8, image_embedding_size=tokens)
    decoder = dict(hidden_size=a.out_channels, mlp_dim=a.decoder_hidden, num_hidden_layers=a.decoder_layers,
                   num_attention_heads=a.decoder_heads, iou_head_hidden_dim=a.out_channels, iou_head_depth=3,
                   layer_norm_eps=1e-5)
    cfg = SamConfig(vision_config=vision, prompt_encoder_config=prompt, mask_decoder_config=decoder)
    cfg._attn_implementation = "eager"
    return cfg


@torch.no_grad()
def randomize_official(model):
    """Same draw as make_sam_fixture.randomize, over parameters and the Gaussian-matrix buffer."""
    named = list(model.named_parameters()) + [
        (n, b) for n, b in model.named_buffers() if n.endswith("positional_encoding_gaussian_matrix")]
    for name, p in named:
        if p.dim() >= 2:
            p.copy_(torch.randn_like(p) / (p.numel() // p.shape[0]) ** 0.5)
        elif name.endswith("weight"):
            p.copy_(1.0 + 0.1 * torch.randn_like(p))
        else:
            p.copy_(0.1 * torch.randn_like(p))


@torch.no_grad()
def run_official(sam, pix, boxes):
    emb = sam.image_encoder(pix)
    pe = sam.prompt_encoder.get_dense_pe()
    out = {k: [] for k in ("iou_scores", "pred_masks", "single.iou_scores", "single.pred_masks")}
    for b in range(pix.shape[0]):
        sparse, dense = sam.prompt_encoder(points=None, boxes=boxes[b], masks=None)
        for multi, prefix in ((True, ""), (False, "single.")):
            masks, iou = sam.mask_decoder(image_embeddings=emb[b:b + 1], image_pe=pe,
                                          sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense,
                                          multimask_output=multi)
            out[prefix + "pred_masks"].append(masks)  # (nb, k, h, w)
            out[prefix + "iou_scores"].append(iou)  # (nb, k)
    res = {"outputs." + k: torch.stack(v) for k, v in out.items()}
    res["outputs.image_embeddings"] = emb
    return res


@torch.no_grad()
def run_hf(model, pix, boxes):
    m = model(pixel_values=pix, input_boxes=boxes, multimask_output=True)
    s = model(pixel_values=pix, input_boxes=boxes, multimask_output=False)
    return {"outputs.image_embeddings": model.get_image_embeddings(pix),
            "outputs.iou_scores": m.iou_scores, "outputs.pred_masks": m.pred_masks,
            "outputs.single.iou_scores": s.iou_scores, "outputs.single.pred_masks": s.pred_masks}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--patch", type=int, default=8)
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--heads", type=int, default=2)
    ap.add_argument("--window", type=int, default=3)
    ap.add_argument("--global", dest="global_", default="1")
    ap.add_argument("--out-channels", type=int, default=32)
    ap.add_argument("--decoder-hidden", type=int, default=64)
    ap.add_argument("--decoder-layers", type=int, default=2)
    ap.add_argument("--decoder-heads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--boxes", type=int, default=2)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()

    torch.manual_seed(a.seed)
    sam = official_model(a)
    randomize_official(sam)
    pix, boxes = make_inputs(a.batch, a.boxes, a.image_size, torch.Generator().manual_seed(a.seed + 1000))
    outs = run_official(sam, pix, boxes)

    sd = {k: v.detach().float().contiguous().clone() for k, v in sam.state_dict().items()}
    sd["pixel_mean"] = torch.tensor(PIXEL_MEAN).view(3, 1, 1)  # non-persistent in the pip package,
    sd["pixel_std"] = torch.tensor(PIXEL_STD).view(3, 1, 1)    # present in the released .pth files

    # transformers on the renamed weights must give the same numbers
    cfg = hf_config(a)
    hf = SamModel(cfg).eval()
    hf_sd = to_hf(sd)
    expected = set(hf.state_dict())
    assert set(hf_sd) == expected, (sorted(set(hf_sd) - expected), sorted(expected - set(hf_sd)))
    hf.load_state_dict(hf_sd, strict=True)
    ref = run_hf(hf, pix, boxes)
    worst = 0.0
    for k, v in outs.items():
        assert v.shape == ref[k].shape, (k, v.shape, ref[k].shape)
        d = (v - ref[k]).abs().max().item()
        worst = max(worst, d)
        print(f"{k:28s} {str(tuple(v.shape)):20s} absmax {v.abs().max():.4f}  official vs transformers max|d| {d:.3e}")
    assert worst <= 1e-5, f"official and transformers differ by {worst}"

    tensors = {"weights." + k: v for k, v in sd.items()}
    tensors["inputs.pixel_values"] = pix
    tensors["inputs.input_boxes"] = boxes
    tensors.update({k: v.contiguous() for k, v in outs.items()})
    meta = {
        "kind": "sam",
        "names": "segment-anything",
        "reference": f"segment-anything {segment_anything.__version__ if hasattr(segment_anything, '__version__') else '1.0'} "
                     f"(official modeling), torch {torch.__version__}",
        "config": json.dumps(cfg.to_dict()),
        "tolerances": json.dumps(TOLERANCES),
        "notes": (
            "weights.* use segment-anything's original names (plus pixel_mean/pixel_std, which are not "
            "parameters); config is the equivalent transformers SamConfig (mask_decoder layer_norm_eps 1e-5 = "
            "the official nn.LayerNorm default). Outputs come from the official modules (image_encoder, "
            "prompt_encoder(boxes), mask_decoder) stacked to transformers' shapes: pred_masks (B, boxes, 3, "
            "4*S/patch, 4*S/patch) low-res logits with multimask_output=True, outputs.single.* with "
            "multimask_output=False. pixel_values are already normalized (SAM mean/std on 0..255, zero padding "
            f"bottom/right); input_boxes are xyxy in pixel_values coordinates. transformers {transformers.__version__} "
            f"SamModel on the renamed weights matches to max|d| {worst:.1e}."
        ),
    }
    save_file(tensors, a.out, metadata=meta)
    print(f"wrote {a.out} ({os.path.getsize(a.out)} bytes, {len(tensors)} tensors)")


if __name__ == "__main__":
    main()
