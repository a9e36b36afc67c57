#!/usr/bin/env python3
"""Write an `ops` parity fixture (shared/FIXTURES.md contract) from PyTorch.

Each case runs one torch op on seeded random inputs and stores:
  inputs.<case>.<arg>   the op's tensor arguments (plus `gout`, the upstream gradient)
  outputs.<case>        torch's result
  grads.<case>.<arg>    d(sum(out * gout))/d(arg) for every float argument
The metadata `config` is the list of cases: {"name", "op", "args": [tensor arg names],
"params": {...}}. `ed-check` replays each case with our ops.

Usage: make_ops_fixture.py OUT.safetensors [--seed N]
"""
import argparse
import json

import torch
import torch.nn.functional as F
from safetensors.torch import save_file


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    g = torch.Generator().manual_seed(a.seed)
    r = lambda *s: torch.randn(*s, generator=g, dtype=torch.float64)
    cases, tensors = [], {}

    def case(name, op, fn, args, params=None, no_grad=()):
        ins = {k: v.clone().requires_grad_(v.is_floating_point() and k not in no_grad) for k, v in args.items()}
        out = fn(**ins)
        gout = r(*out.shape)
        (out * gout).sum().backward()
        for k, v in ins.items():
            tensors[f"inputs.{name}.{k}"] = v.detach()
            if v.grad is not None:
                tensors[f"grads.{name}.{k}"] = v.grad
        tensors[f"inputs.{name}.gout"] = gout
        tensors[f"outputs.{name}"] = out.detach()
        cases.append({"name": name, "op": op, "args": list(args), "params": params or {}})

    # elementwise / activations
    for act in ["relu", "silu", "gelu", "gelu_tanh", "sigmoid", "tanh", "softplus"]:
        fn = (lambda x: F.gelu(x, approximate="tanh")) if act == "gelu_tanh" else (getattr(F, act, None) or getattr(torch, act))
        case(act, act, lambda x, fn=fn: fn(x), {"x": r(3, 17) * 3})
    case("add_bcast", "add", lambda x, y: x + y, {"x": r(2, 3, 4), "y": r(3, 1)})
    case("div", "div", lambda x, y: x / y, {"x": r(4, 5), "y": r(5).abs() + 0.5})
    case("softmax", "softmax", lambda x: torch.softmax(x, -1), {"x": r(3, 4, 7)}, {"dim": -1})
    case("log_softmax", "log_softmax", lambda x: torch.log_softmax(x, 1), {"x": r(3, 4, 7)}, {"dim": 1})
    case("matmul_batched", "matmul", lambda x, y: x @ y, {"x": r(2, 1, 5, 6), "y": r(3, 6, 4)})
    case("linear", "linear", lambda x, w, b: F.linear(x, w, b), {"x": r(2, 3, 8), "w": r(5, 8), "b": r(5)})
    case("sum_dims", "sum", lambda x: x.sum((0, 2), keepdim=True), {"x": r(3, 4, 5)}, {"dims": [0, 2], "keepdim": True})
    case("var", "var", lambda x: x.var(-1), {"x": r(4, 9)}, {"dims": [-1], "unbiased": True})
    # spatial
    case("conv2d", "conv2d", lambda x, w, b: F.conv2d(x, w, b, stride=(2, 1), padding=(1, 2), dilation=(1, 2), groups=2),
         {"x": r(2, 4, 9, 8), "w": r(6, 2, 3, 3), "b": r(6)}, {"stride": [2, 1], "padding": [1, 2], "dilation": [1, 2], "groups": 2})
    case("conv2d_1x1", "conv2d", lambda x, w, b: F.conv2d(x, w, b), {"x": r(1, 5, 6, 7), "w": r(3, 5, 1, 1), "b": r(3)},
         {"stride": [1, 1], "padding": [0, 0], "dilation": [1, 1], "groups": 1})
    case("conv_transpose2d", "conv_transpose2d",
         lambda x, w, b: F.conv_transpose2d(x, w, b, stride=2, padding=1, output_padding=1),
         {"x": r(1, 4, 5, 6), "w": r(4, 3, 3, 3), "b": r(3)},
         {"stride": [2, 2], "padding": [1, 1], "output_padding": [1, 1], "dilation": [1, 1], "groups": 1})
    case("max_pool2d", "max_pool2d", lambda x: F.max_pool2d(x, 5, 1, 2), {"x": r(1, 3, 8, 9)},
         {"kernel": [5, 5], "stride": [1, 1], "padding": [2, 2]})
    case("adaptive_avg_pool2d", "adaptive_avg_pool2d", lambda x: F.adaptive_avg_pool2d(x, (3, 4)), {"x": r(2, 3, 7, 9)},
         {"out": [3, 4]})
    case("upsample_nearest", "upsample_nearest2d", lambda x: F.interpolate(x, size=(10, 9), mode="nearest"),
         {"x": r(1, 2, 5, 4)}, {"out": [10, 9]})
    for ac in (False, True):
        case(f"upsample_bilinear_ac{int(ac)}", "upsample_bilinear2d",
             lambda x, ac=ac: F.interpolate(x, size=(7, 11), mode="bilinear", align_corners=ac),
             {"x": r(1, 2, 4, 5)}, {"out": [7, 11], "align_corners": ac})
        case(f"grid_sample_ac{int(ac)}", "grid_sample",
             lambda x, grid, ac=ac: F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=ac),
             {"x": r(2, 3, 5, 6), "grid": r(2, 4, 3, 2) * 0.7}, {"align_corners": ac})
    # norms
    case("layer_norm", "layer_norm", lambda x, w, b: F.layer_norm(x, (4, 5), w, b, 1e-5),
         {"x": r(3, 4, 5), "w": r(4, 5), "b": r(4, 5)}, {"normalized_ndim": 2, "eps": 1e-5})
    case("group_norm", "group_norm", lambda x, w, b: F.group_norm(x, 2, w, b, 1e-5),
         {"x": r(2, 4, 3, 3), "w": r(4), "b": r(4)}, {"num_groups": 2, "eps": 1e-5})
    case("batch_norm_train", "batch_norm", lambda x, w, b: F.batch_norm(x, None, None, w, b, True, 0.03, 1e-3),
         {"x": r(4, 3, 5, 5), "w": r(3), "b": r(3)}, {"training": True, "momentum": 0.03, "eps": 1e-3})
    case("batch_norm_eval", "batch_norm",
         lambda x, rm, rv, w, b: F.batch_norm(x, rm, rv, w, b, False, 0.03, 1e-3),
         {"x": r(2, 3, 4, 4), "rm": r(3), "rv": r(3).abs() + 0.5, "w": r(3), "b": r(3)},
         {"training": False, "momentum": 0.03, "eps": 1e-3}, no_grad=("rm", "rv"))
    # indexing
    case("gather", "gather", lambda x, index: torch.gather(x, 1, index),
         {"x": r(3, 5), "index": torch.randint(0, 5, (3, 4), generator=g)}, {"dim": 1})
    case("index_select", "index_select", lambda x, index: torch.index_select(x, 0, index),
         {"x": r(5, 3), "index": torch.tensor([4, 0, 0, 2])}, {"dim": 0})
    case("cumsum", "cumsum", lambda x: torch.cumsum(x, 1), {"x": r(3, 6)}, {"dim": 1})
    case("cat", "cat", lambda x, y: torch.cat([x, y], 1), {"x": r(2, 3, 2), "y": r(2, 1, 2)}, {"dim": 1})
    # attention with an additive bias (broadcast over batch) and a key padding mask
    pad = torch.tensor([[0, 0, 0, 0, 1], [0, 0, 1, 1, 0]], dtype=torch.uint8)
    case("attention", "attention",
         lambda q, k, v, bias, pad: F.scaled_dot_product_attention(
             q, k, v, attn_mask=bias + torch.where(pad.bool(), float("-inf"), 0.0).to(q.dtype)[:, None, None, :]),
         {"q": r(2, 3, 4, 8), "k": r(2, 3, 5, 8), "v": r(2, 3, 5, 6), "bias": r(1, 3, 4, 5), "pad": pad})
    # LoRA linear as PEFT computes it (dropout 0): base(x) + scale * lora_B(lora_A(x))
    case("lora_linear", "lora_linear",
         lambda x, w, b, a, bm: F.linear(x, w, b) + 0.5 * F.linear(F.linear(x, a), bm),
         {"x": r(2, 3, 8), "w": r(6, 8), "b": r(6), "a": r(4, 8), "bm": r(6, 4)}, {"scale": 0.5})

    meta = {
        "kind": "ops",
        "reference": f"torch {torch.__version__}",
        "config": json.dumps(cases),
        "tolerances": json.dumps({"outputs.*": {"atol": 1e-10, "rtol": 1e-9}, "grads.*": {"atol": 1e-10, "rtol": 1e-9}}),
        "notes": "float64 inputs; outputs.<case> = torch op on inputs.<case>.*; grads.<case>.<arg> = "
                 "d(sum(outputs.<case> * inputs.<case>.gout))/d(inputs.<case>.<arg>). config lists the cases.",
    }
    save_file({k: v.contiguous() for k, v in tensors.items()}, a.out, metadata=meta)
    print(f"wrote {a.out}: {len(cases)} cases, {len(tensors)} tensors")


if __name__ == "__main__":
    main()
