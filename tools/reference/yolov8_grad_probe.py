"""Locate where f32 gradient error grows in a yolov8-seg fixture (dev-time only).

Runs the fixture's train-mode forward + v8 loss + backward with ultralytics in float64
(the truth) and float32 (what the fixture's reference did), recording every layer's
output (model.model[i]) and d(loss_sum)/d(that output), plus d(loss_sum)/d(head outputs)
(`preds` entries). Optionally compares a third run (ours) dumped with the same names:

    /work/pyref/bin/python tools/reference/yolov8_grad_probe.py FIXTURE [--ours OURS.safetensors]
    /work/pyref/bin/python tools/reference/yolov8_grad_probe.py FIXTURE --against-fixture

--against-fixture checks the reference itself against the fixture's stored `grads.*` with
the fixture's own tolerances (`atol + rtol·|ref|`, the first matching pattern, as ed-check):
ultralytics in float64 and in float32 on this machine, each line with the elements that
miss. Where the reference fails its own fixture, the tolerance is below the f32 rounding
of the machine that made it.

Names: `y.{i}` layer outputs, `g.{i}` their gradients, `grads.{param}` weight grads.
For each name it prints the max abs error of torch-f32 (and ours) vs the f64 truth and
the max |truth|, so the first row where ours grows past torch-f32 points at the culprit.
"""
import argparse
import json
from types import SimpleNamespace

import torch
from safetensors import safe_open
from ultralytics.nn.tasks import SegmentationModel
from ultralytics.utils.loss import v8SegmentationLoss


def run(fx, dtype):
    with safe_open(fx, "pt") as s:
        meta = s.metadata()
        t = {k: s.get_tensor(k) for k in s.keys()}
    cfg = json.loads(meta["config"])
    hyp = cfg.pop("hyp")
    m = SegmentationModel(cfg, ch=3, nc=cfg["nc"], verbose=False)
    m.load_state_dict({k[8:]: v for k, v in t.items() if k.startswith("weights.")}, strict=False)
    m = m.to(dtype)
    m.args = SimpleNamespace(**hyp)
    m.train()
    rec = {}
    hooks = []
    for i, layer in enumerate(m.model):
        def hook(_mod, _inp, out, i=i):
            if torch.is_tensor(out):
                out.retain_grad()
                rec[f"{i}"] = out
        hooks.append(layer.register_forward_hook(hook))
    preds = m(t["inputs.images"].to(dtype))
    for k in ("mask_coefficient", "proto"):
        preds[k].retain_grad()
    batch = {k: t["inputs." + k] for k in ("batch_idx", "cls", "bboxes", "masks")}
    loss, _ = v8SegmentationLoss(m, tal_topk=hyp["tal_topk"])(preds, batch)
    loss.sum().backward()
    out = {}
    for k, v in rec.items():
        out[f"y.{k}"] = v.detach().double()
        if v.grad is not None:
            out[f"g.{k}"] = v.grad.double()
    for k in ("mask_coefficient", "proto"):
        out[f"g.head.{k}"] = preds[k].grad.double()
    for k, p in m.named_parameters():
        if p.grad is not None:
            out[f"grads.{k}"] = p.grad.double()
    return out


def tolerance(tols, name):
    """The fixture's tolerance for `name`: the first pattern that matches, `*` a wildcard."""
    import fnmatch

    for pat, t in tols.items():
        if fnmatch.fnmatchcase(name, pat):
            return t["atol"], t["rtol"]
    return 0.0, 0.0


def against_fixture(fx, only):
    with safe_open(fx, "pt") as s:
        tols = json.loads(s.metadata().get("tolerances", "{}"))
        stored = {k: s.get_tensor(k).double() for k in s.keys() if k.startswith("grads.")}
    runs = {"float64": run(fx, torch.float64), "float32": run(fx, torch.float32)}
    print(f"torch {torch.__version__}; tolerances {tols}")
    failing = {r: 0 for r in runs}
    for name, ref in stored.items():
        if only not in name:
            continue
        atol, rtol = tolerance(tols, name)
        line = f"{name:44s} max|ref| {ref.abs().max().item():9.3e}"
        for label, out in runs.items():
            d = (out[name] - ref).abs()
            miss = int((~(d <= atol + rtol * ref.abs())).sum().item())
            failing[label] += miss > 0
            line += f"  {label}: max|d| {d.max().item():9.3e} miss {miss}/{ref.numel()}"
        print(line)
    print("tensors failing the fixture's tolerance: " + ", ".join(f"{k} {v}" for k, v in failing.items()))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("fixture")
    ap.add_argument("--ours", action="append", default=[], help="our dump (repeatable)")
    ap.add_argument("--only", default="", help="substring filter on names")
    ap.add_argument("--against-fixture", action="store_true",
                    help="check ultralytics f64 and f32 against the fixture's own grads and tolerances")
    a = ap.parse_args()
    if a.against_fixture:
        return against_fixture(a.fixture, a.only)
    t64 = run(a.fixture, torch.float64)
    t32 = run(a.fixture, torch.float32)
    runs = []
    for path in a.ours:
        with safe_open(path, "pt") as s:
            runs.append({k: s.get_tensor(k).double() for k in s.keys()})
    print(f"{'name':40s} {'max|truth|':>10s} {'torch32':>10s}" + " ours/torch32 per --ours")
    for k, v in t64.items():
        if a.only not in k:
            continue
        e32 = (t32[k] - v).abs().max().item()
        cols = ""
        for r in runs:
            eo = (r[k] - v).abs().max().item() if k in r else float("nan")
            cols += f" {eo:10.3e} {eo / max(e32, 1e-30):5.2f}"
        print(f"{k:40s} {v.abs().max().item():10.3e} {e32:10.3e}{cols}")


if __name__ == "__main__":
    main()
