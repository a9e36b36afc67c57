"""Reference numbers for the training machinery (tests/optim_groups.rs, tests/train_schedule.rs).

1. torch.optim.SGD (nesterov) and AdamW with three parameter groups (ultralytics'
   build_optimizer layout: g0 weights with decay, g1 norm weights, g2 biases), float64,
   with the group lrs/momenta changed between steps as the scheduler does.
2. The ultralytics 8.4.190 lr / momentum / accumulate schedule, run through the real
   BaseTrainer._get_warmup_iterations, one_cycle and a torch LambdaLR, with the warmup
   block of _do_train copied verbatim.

Run: /work/pyref/bin/python tools/reference/make_train_fixture.py
"""
import json
import math
from types import SimpleNamespace

import numpy as np
import torch
from safetensors.torch import save_file
from ultralytics.engine.trainer import BaseTrainer
from ultralytics.utils.torch_utils import one_cycle

torch.manual_seed(0)
out = {}
shapes = {"w": (3, 4), "bn": (4,), "b": (4,)}
init = {k: torch.randn(s, dtype=torch.float64) for k, s in shapes.items()}
steps = 4
grads = {k: torch.randn((steps, *s), dtype=torch.float64) for k, s in shapes.items()}
lrs = torch.tensor([[0.01, 0.02, 0.1], [0.02, 0.03, 0.08], [0.03, 0.03, 0.05], [0.01, 0.01, 0.01]], dtype=torch.float64)
moms = torch.tensor([0.8, 0.85, 0.9, 0.937], dtype=torch.float64)
for k in init:
    out[f"init.{k}"] = init[k]
    out[f"grads.{k}"] = grads[k]
out["lrs"] = lrs
out["moms"] = moms
decay = 5e-4
for name in ["sgd", "adamw"]:
    p = {k: torch.nn.Parameter(v.clone()) for k, v in init.items()}
    if name == "sgd":
        mk = lambda g, wd: {"params": g, "lr": 0.01, "momentum": 0.9, "nesterov": True, "weight_decay": wd}
        opt = torch.optim.SGD([mk([p["w"]], decay), mk([p["bn"]], 0.0), mk([p["b"]], 0.0)])
    else:
        mk = lambda g, wd: {"params": g, "lr": 0.01, "betas": (0.9, 0.999), "weight_decay": wd}
        opt = torch.optim.AdamW([mk([p["w"]], decay), mk([p["bn"]], 0.0), mk([p["b"]], 0.0)])
    for s in range(steps):
        for i, grp in enumerate(opt.param_groups):
            grp["lr"] = float(lrs[s, i])
            if name == "sgd":
                grp["momentum"] = float(moms[s])
            else:
                grp["betas"] = (float(moms[s]), 0.999)
        for k in p:
            p[k].grad = grads[k][s].clone()
        opt.step()
    for k in p:
        out[f"{name}.{k}"] = p[k].detach().clone()
save_file({k: v.contiguous() for k, v in out.items()}, "tests/fixtures/optim-groups-torch.safetensors")


def schedule(epochs, nb, warmup_epochs, cos_lr, batch, nbs=64, lr0=0.01, lrf=0.01):
    args = SimpleNamespace(warmup_epochs=warmup_epochs, cos_lr=cos_lr, lrf=lrf, momentum=0.937,
                           warmup_momentum=0.8, warmup_bias_lr=0.1, nbs=nbs)
    fake = SimpleNamespace(args=args, epochs=epochs)
    nw = BaseTrainer._get_warmup_iterations(fake, nb)
    accumulate = max(round(nbs / batch), 1)
    weight_decay = 5e-4 * batch * accumulate / nbs
    accumulate = min(accumulate, nb * epochs)
    ps = [torch.nn.Parameter(torch.zeros(1)) for _ in range(3)]
    opt = torch.optim.SGD([{"params": [ps[0]], "param_group": "weight"}, {"params": [ps[1]], "param_group": "bn"},
                           {"params": [ps[2]], "param_group": "bias"}], lr=lr0, momentum=0.937, nesterov=True)
    lf = one_cycle(1, lrf, epochs) if cos_lr else (lambda x: max(1 - x / epochs, 0) * (1.0 - lrf) + lrf)
    sch = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda=lf)
    sch.last_epoch = -1
    acc0 = accumulate
    last_opt_step = -1
    rows = []
    for epoch in range(epochs):
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sch.step()
        for i in range(nb):
            ni = i + nb * epoch
            if nw and ni <= nw:  # copied from ultralytics 8.4.190 BaseTrainer._do_train
                xi = [0, nw]
                accumulate = max(1, int(np.interp(ni, xi, [1, acc0]).round()))
                for x in opt.param_groups:
                    x["lr"] = float(np.interp(ni, xi, [args.warmup_bias_lr if x.get("param_group") == "bias" else 0.0,
                                                       x["initial_lr"] * lf(epoch)]))
                    if "momentum" in x:
                        x["momentum"] = float(np.interp(ni, xi, [args.warmup_momentum, args.momentum]))
            stepped = ni - last_opt_step >= accumulate
            if stepped:
                last_opt_step = ni
            rows.append([ni] + [g["lr"] for g in opt.param_groups] + [opt.param_groups[0]["momentum"], accumulate, int(stepped)])
    return {"epochs": epochs, "nb": nb, "warmup_epochs": warmup_epochs, "cos_lr": cos_lr, "batch": batch,
            "nw": nw, "acc0": acc0, "weight_decay": weight_decay, "rows": rows}


cases = [schedule(5, 7, 1.5, False, 16), schedule(4, 9, 3.0, True, 8), schedule(3, 5, 0.0, False, 64),
         schedule(6, 3, 2.5, True, 30)]
with open("tests/fixtures/train-schedule-ultralytics.json", "w") as f:
    json.dump(cases, f, indent=0)
print("ok", [c["nw"] for c in cases], [c["acc0"] for c in cases])
