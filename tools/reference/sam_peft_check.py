"""Check that PEFT loads a LoRA adapter our Rust code saved, and gives our outputs.

Dev-time only. Loads base SAM weights (transformers SamModel names) and a config into
transformers' SamModel, applies the adapter with `PeftModel.from_pretrained(model, ADAPTER_DIR)`,
runs the inputs, and compares with the outputs our code wrote:

    /work/venv/bin/python tools/reference/sam_peft_check.py \
        --weights BASE.safetensors [--config CONFIG.json] --adapter ADAPTER_DIR \
        --inputs INPUTS.safetensors --outputs OURS.safetensors [--tol 1e-4] [--attn eager|sdpa]

Arguments:
  --weights  safetensors with the base model's state dict under transformers names:
             a model.safetensors, or a fixture (its `weights.` prefix is stripped when
             present). The Gaussian matrix may appear under either tied name.
  --config   the SamConfig as JSON: a transformers config.json. Optional when the
             --weights file carries a `config` metadata entry (fixtures do).
  --adapter  directory holding adapter_config.json + adapter_model.safetensors (what our
             code saved in PEFT's format).
  --inputs   safetensors with pixel_values (B,3,S,S, normalized) and input_boxes (B,nb,4,
             xyxy pixels), named `inputs.pixel_values`/`inputs.input_boxes` or without the
             `inputs.` prefix.
  --outputs  safetensors with our outputs: iou_scores and pred_masks (multimask_output=True)
             required; single.iou_scores, single.pred_masks (multimask_output=False) and
             image_embeddings compared when present. Names with or without `outputs.`.
  --tol      max |ours - PEFT| allowed for every compared tensor (default 1e-4).
  --attn     transformers attention implementation (default eager).

Prints max |delta| per compared output; exit status 0 when all are within --tol, 1 when
any is not (or a required output is missing), 2 on a loading error.
"""
import argparse
import json
import os
import sys

import torch
from safetensors import safe_open
from safetensors.torch import load_file


def strip(d, prefix):
    if any(k.startswith(prefix) for k in d):
        return {k[len(prefix):]: v for k, v in d.items() if k.startswith(prefix)}
    return d


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--weights", required=True)
    ap.add_argument("--config")
    ap.add_argument("--adapter", required=True)
    ap.add_argument("--inputs", required=True)
    ap.add_argument("--outputs", required=True)
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("--attn", choices=["eager", "sdpa"], default="eager")
    a = ap.parse_args()

    from peft import PeftModel
    from transformers import SamConfig, SamModel

    try:
        if a.config:
            with open(a.config) as f:
                cfg = json.load(f)
        else:
            with safe_open(a.weights, "pt") as f:
                meta = f.metadata() or {}
            if "config" not in meta:
                raise ValueError(f"{a.weights} has no `config` metadata; pass --config")
            cfg = json.loads(meta["config"])
        config = SamConfig(**cfg)
        config._attn_implementation = a.attn
        model = SamModel(config).eval()

        sd = strip(load_file(a.weights), "weights.")
        pe = ("shared_image_embedding.positional_embedding", "prompt_encoder.shared_embedding.positional_embedding")
        for x, y in (pe, pe[::-1]):
            if x not in sd and y in sd:
                sd[x] = sd[y]
        missing, unexpected = model.load_state_dict(sd, strict=False)
        if missing or unexpected:
            raise ValueError(f"base weights: missing {missing}, unexpected {unexpected}")

        for f in ("adapter_config.json", "adapter_model.safetensors"):
            if not os.path.exists(os.path.join(a.adapter, f)):
                raise FileNotFoundError(os.path.join(a.adapter, f))
        peft_model = PeftModel.from_pretrained(model, a.adapter).eval()
        n_lora = sum(1 for n, _ in peft_model.named_modules() if n.endswith("lora_A.default"))
        print(f"adapter {a.adapter}: LoRA on {n_lora} modules")

        inputs = strip(load_file(a.inputs), "inputs.")
        pix, boxes = inputs["pixel_values"].float(), inputs["input_boxes"].float()
        ours = strip(load_file(a.outputs), "outputs.")
    except Exception as e:  # noqa: BLE001 - a dev tool: say what failed and stop
        print(f"error: {type(e).__name__}: {e}", file=sys.stderr)
        return 2

    with torch.no_grad():
        multi = peft_model(pixel_values=pix, input_boxes=boxes, multimask_output=True)
        ref = {"iou_scores": multi.iou_scores, "pred_masks": multi.pred_masks}
        if "single.iou_scores" in ours or "single.pred_masks" in ours:
            single = peft_model(pixel_values=pix, input_boxes=boxes, multimask_output=False)
            ref["single.iou_scores"] = single.iou_scores
            ref["single.pred_masks"] = single.pred_masks
        if "image_embeddings" in ours:
            ref["image_embeddings"] = peft_model.get_base_model().get_image_embeddings(pix)

    failed = 0
    for name, r in ref.items():
        if name not in ours:
            print(f"{name:24s} MISSING from {a.outputs}")
            failed += 1
            continue
        o = ours[name].float()
        if o.shape != r.shape:
            print(f"{name:24s} shape ours {tuple(o.shape)} vs PEFT {tuple(r.shape)}  FAIL")
            failed += 1
            continue
        d = (o - r).abs().max().item()
        ok = d <= a.tol
        failed += not ok
        print(f"{name:24s} {str(tuple(o.shape)):22s} max|d| {d:.3e}  {'ok' if ok else 'FAIL'}")
    print(f"{len(ref) - failed} passed, {failed} failed (tol {a.tol:g})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
