"""Make a parity fixture of kind `yolov8-seg` (shared/FIXTURES.md) with ultralytics.

Dev-time only. Same layout as shared/fixtures/yolov8n-seg-visible.safetensors, for any
scale (including custom ones, e.g. a tiny width for committed test fixtures), class count,
image size, batch and seed:

    /work/pyref/bin/python tools/reference/make_yolov8_seg_fixture.py \
        --scale n --nc 3 --imgsz 256 --batch 2 --seed 0 --out /tmp/y.safetensors
    # a tiny custom scale: --scale t --width 0.0625 --depth 0.33

Weights are random (ultralytics init, then random BN affine/running stats so eval and
train BN differ); targets are random boxes with per-instance masks at proto resolution
(overlap_mask False). grads.* are d(loss_sum)/d(weights.*) for every trainable tensor
(or --grads-every K to keep every K-th, smaller files).
"""
import argparse
import copy
import json
from types import SimpleNamespace

import torch
from safetensors.torch import save_file
import ultralytics
from ultralytics.nn.tasks import SegmentationModel, DetectionModel
from ultralytics.utils.loss import v8SegmentationLoss, v8DetectionLoss

BACKBONE = [[-1, 1, "Conv", [64, 3, 2]], [-1, 1, "Conv", [128, 3, 2]], [-1, 3, "C2f", [128, True]],
            [-1, 1, "Conv", [256, 3, 2]], [-1, 6, "C2f", [256, True]], [-1, 1, "Conv", [512, 3, 2]],
            [-1, 6, "C2f", [512, True]], [-1, 1, "Conv", [1024, 3, 2]], [-1, 3, "C2f", [1024, True]],
            [-1, 1, "SPPF", [1024, 5]]]
HEAD = [[-1, 1, "nn.Upsample", ["None", 2, "nearest"]], [[-1, 6], 1, "Concat", [1]], [-1, 3, "C2f", [512]],
        [-1, 1, "nn.Upsample", ["None", 2, "nearest"]], [[-1, 4], 1, "Concat", [1]], [-1, 3, "C2f", [256]],
        [-1, 1, "Conv", [256, 3, 2]], [[-1, 12], 1, "Concat", [1]], [-1, 3, "C2f", [512]],
        [-1, 1, "Conv", [512, 3, 2]], [[-1, 9], 1, "Concat", [1]], [-1, 3, "C2f", [1024]]]
SCALES = {"n": [0.33, 0.25, 1024], "s": [0.33, 0.5, 1024], "m": [0.67, 0.75, 768],
          "l": [1.0, 1.0, 512], "x": [1.0, 1.25, 512]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", default="n")
    ap.add_argument("--width", type=float, help="custom width multiple (adds the scale)")
    ap.add_argument("--depth", type=float, default=0.33)
    ap.add_argument("--nc", type=int, default=3)
    ap.add_argument("--imgsz", type=int, default=256)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--instances", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--detect", action="store_true", help="detection-only model (kind yolov8-detect)")
    ap.add_argument("--nm", type=int, default=32, help="mask coefficients (Segment arg)")
    ap.add_argument("--npr", type=int, default=256, help="prototype channels before width (Segment arg)")
    ap.add_argument("--grads-every", type=int, default=1)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    scales = dict(SCALES)
    if a.width is not None:
        scales[a.scale] = [a.depth, a.width, 1024]
    head = copy.deepcopy(HEAD)
    hyp = {"box": 7.5, "cls": 0.5, "dfl": 1.5, "overlap_mask": False, "tal_topk": 10}
    if a.detect:
        head.append([[15, 18, 21], 1, "Detect", ["nc"]])
    else:
        head.append([[15, 18, 21], 1, "Segment", ["nc", a.nm, a.npr]])
    cfg = {"nc": a.nc, "scales": scales, "backbone": BACKBONE, "head": head, "scale": a.scale,
           "channels": 3, "reg_max": 16}
    if not a.detect:
        cfg.update({"nm": a.nm, "npr": a.npr})
    cfg["hyp"] = hyp
    model_cfg = copy.deepcopy({k: v for k, v in cfg.items() if k != "hyp"})
    Model = DetectionModel if a.detect else SegmentationModel
    model = Model(model_cfg, ch=3, nc=a.nc, verbose=False).float()
    g = torch.Generator().manual_seed(a.seed + 1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) * 0.8 + 0.6)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
    model.args = SimpleNamespace(**hyp)
    weights = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()
               if not k.endswith("num_batches_tracked")}

    B, S = a.batch, a.imgsz
    images = torch.rand(B, 3, S, S, generator=g)
    n = a.instances
    batch_idx = torch.tensor([i * B // n for i in range(n)], dtype=torch.float32)
    cls = torch.randint(0, a.nc, (n, 1), generator=g).float()
    wh = torch.rand(n, 2, generator=g) * 0.4 + 0.1
    xy = wh / 2 + torch.rand(n, 2, generator=g) * (1 - wh)
    bboxes = torch.cat([xy, wh], 1)
    mh = S // 4
    yy, xx = torch.meshgrid(torch.arange(mh) + 0.5, torch.arange(mh) + 0.5, indexing="ij")
    masks = torch.zeros(n, mh, mh)
    for i in range(n):  # an ellipse inside each box
        cx, cy, w, h = (bboxes[i] * mh).tolist()
        masks[i] = ((((xx - cx) / (w / 2)) ** 2 + ((yy - cy) / (h / 2)) ** 2) <= 1).float()

    out = {}
    model.eval()
    with torch.no_grad():
        y = model(images)
    if a.detect:
        out["outputs.pred"] = y[0]
    else:
        (pred, proto), _ = y
        out["outputs.pred"], out["outputs.proto"] = pred, proto

    model.train()
    preds = model(images)
    for i, f in enumerate(preds["feats"]):
        out[f"outputs.train.feats.{i}"] = f
    if not a.detect:
        out["outputs.train.mask_coefficient"] = preds["mask_coefficient"]
        out["outputs.train.proto"] = preds["proto"]
    batch = {"batch_idx": batch_idx, "cls": cls, "bboxes": bboxes}
    if not a.detect:
        batch["masks"] = masks
    crit = (v8DetectionLoss if a.detect else v8SegmentationLoss)(model, tal_topk=hyp["tal_topk"])
    loss, items = crit(preds, batch)
    loss_sum = loss.sum()
    loss_sum.backward()
    out["outputs.loss_items"] = torch.stack(list(items.values())) if isinstance(items, dict) else items
    out["outputs.loss_sum"] = loss_sum.reshape(1)
    named = [(k, p) for k, p in model.named_parameters() if p.grad is not None]
    for j, (k, p) in enumerate(named):
        if j % a.grads_every == 0:
            out[f"grads.{k}"] = p.grad
    tensors = {f"weights.{k}": v for k, v in weights.items()}
    tensors.update({"inputs.images": images, "inputs.batch_idx": batch_idx, "inputs.cls": cls,
                    "inputs.bboxes": bboxes})
    if not a.detect:
        tensors["inputs.masks"] = masks
    tensors.update({k: v.detach().float().contiguous() for k, v in out.items()})
    names = "(box, cls, dfl)" if a.detect else "(box, seg, cls, dfl, semantic)"
    meta = {
        "kind": "yolov8-detect" if a.detect else "yolov8-seg",
        "reference": f"ultralytics {ultralytics.__version__}, torch {torch.__version__}",
        "config": json.dumps(cfg),
        "tolerances": json.dumps({"outputs.*": {"atol": 2e-4, "rtol": 2e-3},
                                  "grads.*": {"atol": 1e-4, "rtol": 5e-3},
                                  "outputs.loss*": {"atol": 1e-4, "rtol": 1e-4}}),
        "notes": "made by tools/reference/make_yolov8_seg_fixture.py; weights hold the BN running stats used "
                 "by the eval-mode outputs; the train-mode outputs use batch statistics (BatchNorm2d eps=1e-3, "
                 f"momentum=0.03). outputs.loss_items = {names} before the batch-size factor; "
                 "outputs.loss_sum = sum(items) * batch. masks are per instance at proto resolution "
                 "(overlap_mask False); the loss is computed on the train-mode outputs.",
    }
    save_file(tensors, a.out, metadata=meta)
    print(a.out, {k: tuple(v.shape) for k, v in out.items() if not k.startswith("grads")},
          "loss_items", out["outputs.loss_items"].tolist())


if __name__ == "__main__":
    main()
