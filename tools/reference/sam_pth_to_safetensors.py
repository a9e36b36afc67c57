"""Convert an official segment-anything checkpoint (.pth) to safetensors, names unchanged.

Dev-time, one-time. The official checkpoints (sam_vit_b_01ec64.pth, sam_vit_l_0b3195.pth,
sam_vit_h_4b8939.pth) are plain state dicts; this writes the same tensors under their
ORIGINAL names ("image_encoder.blocks.0.attn.qkv.weight", ..., also the pixel_mean /
pixel_std buffers), contiguous, float tensors as float32 (use --keep-dtype to keep fp16/bf16
as stored), with metadata {"format": "pt", "source": "segment-anything"}. Our loader maps
the names to transformers' SamModel names (src/models/sam/official_names.rs).

    /work/venv/bin/python tools/reference/sam_pth_to_safetensors.py sam_vit_b_01ec64.pth \
        [--out sam_vit_b_01ec64.safetensors] [--keep-dtype]

torch.load runs with weights_only=True: a checkpoint that needs arbitrary unpickling is
refused, not executed.
"""
import argparse
import os
import sys

import torch
from safetensors.torch import save_file


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("pth")
    ap.add_argument("--out", help="default: the .pth path with .safetensors")
    ap.add_argument("--keep-dtype", action="store_true", help="keep fp16/bf16 tensors as stored")
    a = ap.parse_args()
    out = a.out or os.path.splitext(a.pth)[0] + ".safetensors"

    sd = torch.load(a.pth, map_location="cpu", weights_only=True)
    if isinstance(sd, dict) and "model" in sd and isinstance(sd["model"], dict):
        sd = sd["model"]  # some fine-tuned SAM checkpoints wrap the state dict
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        sys.exit(f"{a.pth}: not a plain state dict of tensors")

    tensors = {}
    for name, t in sd.items():
        if t.is_floating_point() and not a.keep_dtype:
            t = t.to(torch.float32)
        tensors[name] = t.contiguous().clone()  # clone: no shared storage between entries
    if not any(k.startswith("image_encoder.") for k in tensors):
        print(f"warning: {a.pth} has no image_encoder.* tensors; is it a segment-anything checkpoint?",
              file=sys.stderr)
    save_file(tensors, out, metadata={"format": "pt", "source": "segment-anything"})
    n = sum(t.numel() for t in tensors.values())
    print(f"wrote {out}: {len(tensors)} tensors, {n / 1e6:.1f} M values")


if __name__ == "__main__":
    main()
