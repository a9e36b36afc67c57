"""Make a parity fixture of kind `sam` or `sam-lora` (shared/FIXTURES.md) with transformers / PEFT.

Dev-time only. Same layout as shared/fixtures/sam-visible.safetensors and
sam-lora-visible.safetensors, for any (tiny) SamConfig, batch, box count and seed:

    /work/venv/bin/python tools/reference/make_sam_fixture.py --kind sam \
        --image-size 96 --patch 8 --hidden 48 --layers 3 --heads 2 --window 5 --global 2 \
        --out-channels 32 --batch 2 --boxes 3 --seed 1 --out tests/fixtures/sam-win3-pad.safetensors

    /work/venv/bin/python tools/reference/make_sam_fixture.py --kind sam-lora \
        --lora-targets q_proj,v_proj --lora-r 2 --lora-alpha 6 --seed 3 --out /tmp/l.safetensors

Flags (defaults in brackets):
  --kind sam|sam-lora [sam]
  vision encoder: --image-size [96] --patch [8] --hidden [48] --layers [3] --heads [2]
      --mlp-dim [4*hidden] --window [5] --global [2]  (comma list of global-attention layers,
      "" or "none" for none)
  --out-channels [32]  image-embedding channels = prompt encoder / mask decoder width
      (SAM requires the three to be equal); num_pos_feats = out_channels / 2
  mask decoder: --decoder-hidden [2*out_channels] (the two-way transformer's MLP width,
      mlp_dim) --decoder-layers [2] --decoder-heads [2]; iou head width = out_channels
  inputs: --batch [2] --boxes [3] --seed [0]
  LoRA (sam-lora): --lora-r [4] --lora-alpha [8] --lora-targets (a regex, used as one
      string, when it holds any of ".*|()[]\\^$+?"; otherwise a comma list of module-name
      suffixes, PEFT's list semantics) --rslora  --all-outputs (also write
      outputs.image_embeddings and outputs.single.*; without it a sam-lora file holds
      outputs.iou_scores and outputs.pred_masks, like the shared one)
  --attn eager|sdpa [eager]  transformers attention implementation (recorded in notes)
  --out PATH

Weights are random, drawn like the shared fixtures' (checked against them): every tensor
with 2+ dims ~ N(0, 1/fan_in) with fan_in = numel/shape[0] (so pos_embed is small and
rel_pos_h/w and the prompt encoder's Gaussian matrix are non-zero), 1-D biases
~ N(0, 0.1^2), norm weights ~ 1 + N(0, 0.1^2). LoRA: lora_A as PEFT inits it (kaiming
uniform), lora_B ~ N(0, 0.2^2) (PEFT inits it to zero, which would pin nothing).
Inputs: a smooth random RGB image, resized-and-padded the way SamProcessor does (longest
side = image size, zero padding bottom/right), normalized with SAM's pixel mean/std;
boxes are integer xyxy pixel coordinates inside the unpadded part of each image.
"""
import argparse
import json
import os
import tempfile

import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import save_file

import transformers
from transformers import SamConfig, SamModel

PIXEL_MEAN = torch.tensor([123.675, 116.28, 103.53]).view(3, 1, 1)
PIXEL_STD = torch.tensor([58.395, 57.12, 57.375]).view(3, 1, 1)
TOLERANCES = {"outputs.*": {"atol": 0.0005, "rtol": 0.005}}
REGEX_CHARS = set(".*|()[]\\^$+?")


def parse_global(s):
    s = s.strip()
    if s in ("", "none", "[]"):
        return []
    return [int(x) for x in s.split(",") if x.strip()]


def parse_targets(s):
    """A regex string (PEFT full-match) or a list of suffixes (PEFT list semantics)."""
    if any(c in REGEX_CHARS for c in s):
        return s
    return [x.strip() for x in s.split(",") if x.strip()]


def make_config(a):
    tokens = a.image_size // a.patch
    assert a.image_size % a.patch == 0, "--image-size must be a multiple of --patch"
    assert a.hidden % a.heads == 0 and a.out_channels % 8 == 0
    assert (a.out_channels // 2) % a.decoder_heads == 0, "decoder cross-attn width (out/2) % heads"
    vision = dict(
        hidden_size=a.hidden, output_channels=a.out_channels, num_hidden_layers=a.layers,
        num_attention_heads=a.heads, image_size=a.image_size, patch_size=a.patch,
        window_size=a.window, global_attn_indexes=parse_global(a.global_),
        num_pos_feats=a.out_channels // 2, mlp_dim=a.mlp_dim or 4 * a.hidden,
        initializer_range=0.02,  # as in the shared fixtures' config (unused: weights are drawn here)
    )
    prompt = dict(
        hidden_size=a.out_channels, image_size=a.image_size, patch_size=a.patch,
        mask_input_channels=8, image_embedding_size=tokens,
    )
    decoder = dict(
        hidden_size=a.out_channels, mlp_dim=a.decoder_hidden or 2 * a.out_channels,
        num_hidden_layers=a.decoder_layers, num_attention_heads=a.decoder_heads,
        iou_head_hidden_dim=a.out_channels,
    )
    cfg = SamConfig(vision_config=vision, prompt_encoder_config=prompt, mask_decoder_config=decoder)
    cfg._attn_implementation = a.attn
    return cfg


@torch.no_grad()
def randomize(model):
    """The shared fixtures' init: N(0, 1/fan_in) for 2+-dim tensors, small biases, norms near 1."""
    for name, p in model.named_parameters():
        if p.dim() >= 2:
            fan_in = p.numel() // p.shape[0]
            p.copy_(torch.randn_like(p) / fan_in ** 0.5)
        elif name.endswith("weight"):  # LayerNorm / SamLayerNorm weights
            p.copy_(1.0 + 0.1 * torch.randn_like(p))
        else:
            p.copy_(0.1 * torch.randn_like(p))


def make_inputs(batch, nb, size, gen):
    """Smooth random images, longest side `size`, zero-padded bottom/right; boxes inside."""
    pix = torch.zeros(batch, 3, size, size)
    boxes = torch.zeros(batch, nb, 4)
    for b in range(batch):
        short = size * (3 + b % 2) // 4 if b % 3 != 2 else size  # 3/4, 1, then square
        h, w = (short, size) if b % 2 == 0 else (size, short)
        low = torch.rand(1, 3, 6, 6, generator=gen) * 255.0
        img = F.interpolate(low, size=(h, w), mode="bilinear", align_corners=False)[0]
        img = (img + 12.0 * torch.randn(3, h, w, generator=gen)).clamp(0, 255)
        pix[b, :, :h, :w] = (img - PIXEL_MEAN) / PIXEL_STD
        for i in range(nb):
            x1 = int(torch.randint(0, max(1, w - 16), (1,), generator=gen))
            y1 = int(torch.randint(0, max(1, h - 16), (1,), generator=gen))
            x2 = int(torch.randint(x1 + 8, w, (1,), generator=gen))
            y2 = int(torch.randint(y1 + 8, h, (1,), generator=gen))
            boxes[b, i] = torch.tensor([x1, y1, x2, y2], dtype=torch.float32)
    return pix, boxes


@torch.no_grad()
def run(model, pix, boxes):
    multi = model(pixel_values=pix, input_boxes=boxes, multimask_output=True)
    single = model(pixel_values=pix, input_boxes=boxes, multimask_output=False)
    # image embeddings of the (possibly LoRA-wrapped) vision encoder
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    emb = base.get_image_embeddings(pix)
    return {
        "outputs.image_embeddings": emb,
        "outputs.iou_scores": multi.iou_scores,
        "outputs.pred_masks": multi.pred_masks,
        "outputs.single.iou_scores": single.iou_scores,
        "outputs.single.pred_masks": single.pred_masks,
    }


def contiguous(d):
    return {k: v.detach().to(torch.float32).contiguous().clone() for k, v in d.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kind", choices=["sam", "sam-lora"], default="sam")
    ap.add_argument("--hidden", type=int, default=48)
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--heads", type=int, default=2)
    ap.add_argument("--mlp-dim", type=int, default=0)
    ap.add_argument("--window", type=int, default=5)
    ap.add_argument("--global", dest="global_", default="2")
    ap.add_argument("--image-size", type=int, default=96)
    ap.add_argument("--patch", type=int, default=8)
    ap.add_argument("--out-channels", type=int, default=32)
    ap.add_argument("--decoder-hidden", type=int, default=0)
    ap.add_argument("--decoder-layers", type=int, default=2)
    ap.add_argument("--decoder-heads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--boxes", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lora-r", type=int, default=4)
    ap.add_argument("--lora-alpha", type=float, default=8)
    ap.add_argument("--lora-targets", default=r".*mask_decoder.*\.(q_proj|k_proj|v_proj|out_proj)")
    ap.add_argument("--rslora", action="store_true")
    ap.add_argument("--all-outputs", action="store_true")
    ap.add_argument("--attn", choices=["eager", "sdpa"], default="eager")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()

    torch.manual_seed(a.seed)
    cfg = make_config(a)
    model = SamModel(cfg).eval()
    randomize(model)
    gen = torch.Generator().manual_seed(a.seed + 1000)
    pix, boxes = make_inputs(a.batch, a.boxes, a.image_size, gen)

    tensors = {"weights." + k: v for k, v in contiguous(model.state_dict()).items()}
    tensors["inputs.pixel_values"] = pix
    tensors["inputs.input_boxes"] = boxes
    meta = {
        "kind": a.kind,
        "config": json.dumps(cfg.to_dict()),
        "tolerances": json.dumps(TOLERANCES),
    }
    notes = (
        "pixel_values are already normalized (SAM pixel mean/std on 0..255, zero padding "
        "bottom/right); input_boxes are xyxy in pixel_values coordinates. outputs.pred_masks are "
        "low-res logits (B, boxes, 3, 4*S/patch, 4*S/patch) with multimask_output=True; outputs.single.* with "
        "multimask_output=False. float32, model.eval(), attn_implementation=" + a.attn + "."
    )

    if a.kind == "sam":
        outs = run(model, pix, boxes)
        meta["reference"] = f"transformers {transformers.__version__} SamModel"
        meta["notes"] = notes
    else:
        import peft
        from peft import LoraConfig, PeftModel, get_peft_model

        alpha = int(a.lora_alpha) if float(a.lora_alpha).is_integer() else a.lora_alpha  # 8, not 8.0, like PEFT's default
        lcfg = LoraConfig(r=a.lora_r, lora_alpha=alpha, target_modules=parse_targets(a.lora_targets),
                          lora_dropout=0.0, use_rslora=a.rslora)
        pm = get_peft_model(model, lcfg)
        with torch.no_grad():
            for n, p in pm.named_parameters():
                if "lora_B" in n:
                    p.copy_(0.2 * torch.randn_like(p))
        pm.eval()
        outs = run(pm, pix, boxes)
        with tempfile.TemporaryDirectory() as d:
            pm.save_pretrained(d)
            with safe_open(os.path.join(d, "adapter_model.safetensors"), "pt") as f:
                for k in f.keys():
                    tensors["adapter." + k] = f.get_tensor(k)
            with open(os.path.join(d, "adapter_config.json")) as f:
                meta["adapter_config"] = json.dumps(json.load(f))
            # the saved files alone must give the outputs: reload onto a fresh base model
            torch.manual_seed(a.seed)
            fresh = SamModel(make_config(a)).eval()
            fresh.load_state_dict({k[len("weights."):]: v for k, v in tensors.items() if k.startswith("weights.")})
            again = run(PeftModel.from_pretrained(fresh, d).eval(), pix, boxes)
            for k in outs:
                dmax = (outs[k] - again[k]).abs().max().item()
                print(f"reload check {k}: max |d| {dmax:.3g}")
                assert dmax <= 1e-5, f"reloaded adapter differs on {k}"  # rounding only
        n_adapted = sum(1 for k in tensors if k.startswith("adapter.") and "lora_A" in k)
        print(f"LoRA on {n_adapted} Linear layers")
        if not a.all_outputs:
            outs = {k: outs[k] for k in ("outputs.iou_scores", "outputs.pred_masks")}
        meta["reference"] = f"peft {peft.__version__}"
        scaling = "lora_alpha / sqrt(r), use_rslora" if a.rslora else "lora_alpha / r"
        meta["notes"] = (
            "adapter.* are the tensors of adapter_model.safetensors exactly as PEFT saved them; "
            "adapter_config is its adapter_config.json. Outputs are base + adapter (scaling "
            f"{scaling}), multimask_output=True" + ("; outputs.single.* multimask_output=False" if a.all_outputs else "")
            + f". transformers {transformers.__version__} SamModel base. " + notes
        )
    tensors.update(contiguous(outs))
    for k, v in outs.items():
        assert torch.isfinite(v).all(), k
        print(f"{k:28s} {tuple(v.shape)} mean {v.mean():+.4f} absmax {v.abs().max():.4f}")
    save_file(tensors, a.out, metadata=meta)
    print(f"wrote {a.out} ({os.path.getsize(a.out)} bytes, {len(tensors)} tensors)")


if __name__ == "__main__":
    main()
