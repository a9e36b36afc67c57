"""Make tests/fixtures/yolov8_detect_tiny.safetensors: an ultralytics 8.4.190 YOLOv8
*detect* model (yolov8.yaml layers, nc 2, reg_max 8, a narrow custom scale so the file stays small)
with random weights and non-trivial BN statistics, run on a batch of 2 images at 128x96 (h x w).

Tensors: weights.* (state dict), inputs.images, outputs.pred (eval, [B, 4+nc, A]),
outputs.train.{boxes,scores,feats.0..2} (train mode, batch-statistics BN, run after eval).
Metadata: kind, reference, config (yaml dict), tolerances, notes, param_count.

Run: /work/pyref/bin/python tools/reference/make_yolov8_detect_fixture.py
"""
import copy
import json
import sys

import torch
from safetensors.torch import save_file
from ultralytics.nn.tasks import DetectionModel, yaml_model_load

OUT = sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/yolov8_detect_tiny.safetensors"

torch.manual_seed(0)
cfg = yaml_model_load("yolov8n.yaml")
cfg = copy.deepcopy(cfg)
cfg.pop("yaml_file", None)
cfg["nc"] = 2
cfg["scales"] = {"t": [0.33, 0.03125, 1024]}  # width 1/32: channels 8..32
cfg["scale"] = "t"
cfg["channels"] = 3
cfg["reg_max"] = 8  # non-default DFL bins; also keeps the head (and the file) small
cfg_json = json.loads(json.dumps(cfg))  # the dict before parse_model touches it

model = DetectionModel(copy.deepcopy(cfg), ch=3, nc=2, verbose=False)
with torch.no_grad():
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.weight.uniform_(0.5, 1.5)
            m.bias.uniform_(-0.2, 0.2)
            m.running_mean.uniform_(-0.3, 0.3)
            m.running_var.uniform_(0.5, 2.0)

x = torch.rand(2, 3, 128, 96)  # non-square
sd = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
tensors = {f"weights.{k}": v for k, v in sd.items()}
tensors["inputs.images"] = x

model.eval()
with torch.no_grad():
    y, _ = model(x)
tensors["outputs.pred"] = y.contiguous()

model.train()
preds = model(x)
tensors["outputs.train.boxes"] = preds["boxes"].detach().contiguous()
tensors["outputs.train.scores"] = preds["scores"].detach().contiguous()
for i, f in enumerate(preds["feats"]):
    tensors[f"outputs.train.feats.{i}"] = f.detach().contiguous()

meta = {
    "kind": "yolov8-detect",
    "reference": f"ultralytics 8.4.190, torch {torch.__version__}",
    "config": json.dumps(cfg_json),
    "tolerances": json.dumps({"outputs.*": {"atol": 2e-4, "rtol": 2e-3}}),
    "param_count": str(sum(p.numel() for p in model.parameters())),
    "notes": "eval outputs use weights.* running stats; train outputs use batch statistics "
    "(eps 1e-3) and were computed after the eval pass.",
}
save_file(tensors, OUT, metadata=meta)
print(OUT, meta["param_count"], "params", {k: tuple(v.shape) for k, v in tensors.items() if not k.startswith("weights.")})
