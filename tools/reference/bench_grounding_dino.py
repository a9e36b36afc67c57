#!/usr/bin/env python3
"""Reference side of `ed-bench grounding-dino` (dev-time only).

Builds transformers' GroundingDinoForObjectDetection with the default config (the
IDEA-Research/grounding-dino-tiny shape: Swin-T, BERT-base, d_model 256, 900 queries, 6+6
layers) and random weights (seeded), writes them with the inputs to DIR (so ed-bench runs
the same weights), then times the eval forward on an 800x1333 image with a 9-token prompt,
pinned to --threads. Prints one JSON object {"transformers": {"median_ms", "min_ms"}, ...}.
Usage: bench_grounding_dino.py --dir DIR [--threads 2] [--iters 3]
"""
import argparse
import json
import os
import time

import torch
import transformers
from safetensors.torch import save_file
from transformers import GroundingDinoConfig, GroundingDinoForObjectDetection


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=3)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    cfg = GroundingDinoConfig(disable_custom_kernels=True)
    model = GroundingDinoForObjectDetection(cfg).eval()
    os.makedirs(a.dir, exist_ok=True)
    sd = {k: v.contiguous().clone() for k, v in model.state_dict().items()}
    save_file(sd, os.path.join(a.dir, "model.safetensors"))
    with open(os.path.join(a.dir, "config.json"), "w") as f:
        f.write(cfg.to_json_string())
    g = torch.Generator().manual_seed(1)
    pixel_values = torch.randn(1, 3, 800, 1333, generator=g)
    input_ids = torch.tensor([[101, 1037, 4937, 1012, 1037, 6556, 2491, 1012, 102]])
    save_file({"pixel_values": pixel_values, "input_ids": input_ids}, os.path.join(a.dir, "inputs.safetensors"))

    def fwd():
        with torch.no_grad():
            model(pixel_values=pixel_values, input_ids=input_ids)

    fwd()  # warm-up
    ts = []
    for _ in range(a.iters):
        t0 = time.perf_counter()
        fwd()
        ts.append((time.perf_counter() - t0) * 1e3)
    ts.sort()
    print(json.dumps({
        "transformers": {"median_ms": ts[len(ts) // 2], "min_ms": ts[0], "iters": a.iters},
        "torch_version": torch.__version__,
        "transformers_version": transformers.__version__,
    }))


if __name__ == "__main__":
    main()
