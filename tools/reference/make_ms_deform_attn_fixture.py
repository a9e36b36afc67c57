#!/usr/bin/env python3
"""Write tests/fixtures/ms-deform-attn.safetensors: transformers' MultiScaleDeformableAttention
(the pure-PyTorch path: per-level grid_sample, then the weighted sum) on small inputs, with
its output and the gradients of sum(out * gout) w.r.t. value, locations and weights.

Inputs are made in float32 and run twice, in float32 and upcast to float64, so both runs see
the same numbers:
  value [B, S, H, D], sampling_locations [B, Q, H, L, P, 2], attention_weights [B, Q, H, L, P],
  gout [B, Q, H*D], spatial_shapes [L, 2] (int64, (height, width))
  out.{f32,f64}, grad_value.{f32,f64}, grad_loc.{f32,f64}, grad_attn.{f32,f64}
Some locations sit outside [0, 1] (zero padding, partly and wholly outside) and some on exact
pixel boundaries (integer sample coordinates: the bilinear kinks).

Usage: make_ms_deform_attn_fixture.py OUT.safetensors [--seed N]
"""
import argparse

import torch
import transformers
from safetensors.torch import save_file
from transformers.models.grounding_dino.modeling_grounding_dino import MultiScaleDeformableAttention

B, H, D, Q, P = 2, 2, 4, 6, 3
LEVELS = [(5, 7), (3, 4), (1, 2)]  # (height, width)

# (level, x, y) with exactly representable coordinates whose sample position
# ((2x - 1 + 1)·W - 1) / 2 is an integer (a kink) or an edge, or is far outside.
SPECIAL = [
    (0, 0.5, 0.5),     # centre pixel of 5x7: ix = 3, iy = 2
    (0, 0.0, 0.0),     # top-left outer corner: ix = iy = -0.5
    (0, 1.0, 1.0),     # bottom-right outer corner
    (1, 0.375, 0.5),   # 3x4: ix = 1, iy = 1
    (1, 0.875, 0.5),   # ix = 3 = W - 1: right tap outside
    (1, 0.125, 0.0),   # ix = 0, iy = -0.5
    (2, 0.25, 0.5),    # 1x2: ix = 0, iy = 0
    (2, 0.75, 0.5),    # ix = 1, iy = 0
    (2, -0.25, 0.5),   # ix = -1: only the right tap (x = 0) is inside
    (2, 1.25, 0.5),    # ix = 2: wholly outside on the right
    (0, -0.6, 0.3),    # far outside
    (1, 0.4, 1.7),     # far below
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    g = torch.Generator().manual_seed(a.seed)
    L = len(LEVELS)
    S = sum(h * w for h, w in LEVELS)
    value = torch.randn(B, S, H, D, generator=g)
    loc = torch.rand(B, Q, H, L, P, 2, generator=g) * 1.3 - 0.15
    # Place the special points on a spread of (b, q, h, p).
    for i, (lvl, x, y) in enumerate(SPECIAL):
        b, q, h, p = i % B, (i * 5) % Q, (i // 2) % H, i % P
        loc[b, q, h, lvl, p] = torch.tensor([x, y])
    logits = torch.randn(B, Q, H, L * P, generator=g)
    attn = logits.softmax(-1).view(B, Q, H, L, P)
    gout = torch.randn(B, Q, H * D, generator=g)

    shapes = torch.tensor(LEVELS, dtype=torch.int64)
    starts = torch.cat([shapes.new_zeros(1), (shapes[:, 0] * shapes[:, 1]).cumsum(0)[:-1]])
    msda = MultiScaleDeformableAttention()
    out = {
        "value": value,
        "sampling_locations": loc,
        "attention_weights": attn,
        "gout": gout,
        "spatial_shapes": shapes,
    }
    for dt, tag in [(torch.float32, "f32"), (torch.float64, "f64")]:
        v, l, w = (t.to(dt).clone().requires_grad_(True) for t in (value, loc, attn))
        y = msda(v, shapes, LEVELS, starts, l, w, im2col_step=64)
        (y * gout.to(dt)).sum().backward()
        out[f"out.{tag}"] = y.detach()
        out[f"grad_value.{tag}"] = v.grad
        out[f"grad_loc.{tag}"] = l.grad
        out[f"grad_attn.{tag}"] = w.grad
    meta = {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "seed": str(a.seed),
        "levels": str(LEVELS),
    }
    save_file({k: t.contiguous() for k, t in out.items()}, a.out, metadata=meta)


if __name__ == "__main__":
    main()
