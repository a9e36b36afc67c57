"""Check that PEFT loads a LoRA adapter our Rust code saved onto Grounding DINO, and gives our outputs.

Dev-time only. Loads base weights (transformers names) and a config into transformers'
GroundingDinoForObjectDetection, applies the adapter with
`PeftModel.from_pretrained(model, ADAPTER_DIR)`, runs the inputs, and compares with the
outputs our code wrote:

    /work/venv/bin/python tools/reference/gd_peft_check.py \
        --weights BASE.safetensors [--config CONFIG.json] --adapter ADAPTER_DIR \
        --inputs INPUTS.safetensors --outputs OURS.safetensors [--tol 1e-4]

Arguments:
  --weights  safetensors with the base state dict under transformers names: a
             model.safetensors, or a fixture (its `weights.` prefix is stripped when present).
             Tied copies (model.decoder.bbox_embed.*, shared box heads) and the keys transformers
             ignores when missing (the unused swin.layernorm) may be left out.
  --config   the GroundingDinoConfig as JSON (a config.json). Optional when the --weights
             file carries a `config` metadata entry (fixtures do).
  --adapter  directory with adapter_config.json + adapter_model.safetensors.
  --inputs   safetensors with pixel_values, input_ids, and optionally attention_mask,
             token_type_ids, pixel_mask (with or without an `inputs.` prefix).
  --outputs  safetensors with our logits, pred_boxes, last_hidden_state (with or without
             `outputs.`). Logits are -inf past the prompt: equal infinities count as equal.
  --tol      max |ours - PEFT| allowed for every compared tensor (default 1e-4).

GroundingDinoModel lacks get_input_embeddings, which peft 0.21.2 calls on any model with
dict-style tied weights; see patch_input_embeddings.

Prints max |delta| per output; exit status 0 when all are within --tol, 1 when any is not
(or is missing, or the -inf positions differ), 2 on a loading error.
"""
import argparse
import json
import os
import re
import sys

import torch
from safetensors import safe_open
from safetensors.torch import load_file

OUTPUTS = ("logits", "pred_boxes", "last_hidden_state")


def strip(d, prefix):
    if any(k.startswith(prefix) for k in d):
        return {k[len(prefix):]: v for k, v in d.items() if k.startswith(prefix)}
    return d


def load_base(model, sd):
    """load_state_dict(strict=False), then allow only missing keys whose tensor is shared with
    a loaded key (transformers ties bbox_embed and model.decoder.bbox_embed) or that
    transformers itself ignores when missing. Returns (tied, ignored) counts."""
    missing, unexpected = model.load_state_dict(sd, strict=False)
    if unexpected:
        raise ValueError(f"base weights: unexpected {unexpected}")
    state = model.state_dict()
    loaded = {state[k].data_ptr() for k in sd}
    tied = [k for k in missing if state[k].data_ptr() in loaded]
    # transformers' own allowance: the Swin backbone's final norm, which no output uses.
    ignore = [re.compile(p) for p in model._keys_to_ignore_on_load_missing or []]
    unused = [k for k in missing if k not in tied and any(p.search(k) for p in ignore)]
    absent = [k for k in missing if k not in tied and k not in unused]
    if absent:
        raise ValueError(f"base weights: missing {absent}")
    return len(tied), len(unused)


def patch_input_embeddings(model):
    """peft 0.21.2 asks get_input_embeddings() for the embedding-tied weights whenever
    _tied_weights_keys is a dict (GroundingDino's bbox_embed ties), and transformers 5.23's
    GroundingDinoModel raises NotImplementedError, so injection fails before any LoRA layer is
    made. Point it at BERT's word embeddings: nothing LoRA touches is tied to them, so the
    adapter math is unchanged. Returns whether the patch was needed."""
    try:
        model.get_input_embeddings()
        return False
    except NotImplementedError:
        emb = model.model.text_backbone.embeddings.word_embeddings
        model.model.get_input_embeddings = lambda: emb
        return True


def max_delta(o, r):
    """max |o - r| over finite entries; None unless the non-finite entries are equal
    (the -inf of masked logits; NaN never is)."""
    inf = ~torch.isfinite(o) | ~torch.isfinite(r)
    if not torch.equal(o[inf], r[inf]):
        return None
    d = (o - r)[~inf].abs()
    return d.max().item() if d.numel() else 0.0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--weights", required=True)
    ap.add_argument("--config")
    ap.add_argument("--adapter", required=True)
    ap.add_argument("--inputs", required=True)
    ap.add_argument("--outputs", required=True)
    ap.add_argument("--tol", type=float, default=1e-4)
    a = ap.parse_args()

    from peft import PeftModel
    from transformers import GroundingDinoConfig, GroundingDinoForObjectDetection

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
        model = GroundingDinoForObjectDetection(GroundingDinoConfig.from_dict(cfg)).eval()
        n_tied, n_unused = load_base(model, strip(load_file(a.weights), "weights."))

        for f in ("adapter_config.json", "adapter_model.safetensors"):
            if not os.path.exists(os.path.join(a.adapter, f)):
                raise FileNotFoundError(os.path.join(a.adapter, f))
        if patch_input_embeddings(model):
            print("patched GroundingDinoModel.get_input_embeddings (peft needs it, transformers lacks it)")
        peft_model = PeftModel.from_pretrained(model, a.adapter).eval()
        wrapped = [n for n, _ in peft_model.named_modules() if n.endswith(".lora_A.default")]
        n_saved = len(load_file(os.path.join(a.adapter, "adapter_model.safetensors"))) // 2
        print(f"base weights loaded ({n_tied} tied copies filled by their twins, "
              f"{n_unused} unused keys transformers ignores when missing); "
              f"adapter {a.adapter}: LoRA on {len(wrapped)} modules, {n_saved} in the file")
        if len(wrapped) != n_saved:
            raise ValueError(f"PEFT wrapped {len(wrapped)} modules, the adapter holds {n_saved}")

        inputs = strip(load_file(a.inputs), "inputs.")
        ours = strip(load_file(a.outputs), "outputs.")
    except Exception as e:  # noqa: BLE001 - a dev tool: say what failed and stop
        print(f"error: {type(e).__name__}: {e}", file=sys.stderr)
        return 2

    with torch.no_grad():
        kw = {k: inputs[k] for k in ("input_ids", "attention_mask", "token_type_ids", "pixel_mask")
              if k in inputs}
        out = peft_model(pixel_values=inputs["pixel_values"].float(), **kw)

    failed = 0
    for name in OUTPUTS:
        r = getattr(out, name)
        if name not in ours:
            print(f"{name:20s} MISSING from {a.outputs}")
            failed += 1
            continue
        o = ours[name].float()
        if o.shape != r.shape:
            print(f"{name:20s} shape ours {tuple(o.shape)} vs PEFT {tuple(r.shape)}  FAIL")
            failed += 1
            continue
        d = max_delta(o, r)
        ok = d is not None and d <= a.tol
        failed += not ok
        shown = "inf positions differ" if d is None else f"{d:.3e}"
        print(f"{name:20s} {str(tuple(o.shape)):16s} max|d| {shown}  {'ok' if ok else 'FAIL'}")
    print(f"{len(OUTPUTS) - failed} passed, {failed} failed (tol {a.tol:g})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
