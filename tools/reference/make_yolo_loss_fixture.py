"""Reference data for src/loss/yolo: ultralytics 8.4.190 v8DetectionLoss / v8SegmentationLoss
run on head outputs, with the TAL assigner's outputs and the gradients of loss_sum.

Writes two files under tests/fixtures/:
  yolo_loss_cases.safetensors  -- random cases. The head outputs are NOT stored: they are a
      deterministic function of (seed, index) (`gen` below, splitmix64, values exact in f32)
      that tests/yolov8_loss.rs reproduces; targets, masks, assigner outputs, loss items and
      the non-zero gradient entries are stored.
  yolo_loss_shared_head.safetensors -- the train-mode head outputs (cat(cv2, cv3) per level)
      of the shared yolov8n-seg fixture, recomputed from its weights and neck features, checked
      here to reproduce that fixture's loss_items.
Run: /work/pyref/bin/python tools/reference/make_yolo_loss_fixture.py
"""

import json
import os
import sys
from types import SimpleNamespace

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from ultralytics.utils.loss import v8DetectionLoss, v8SegmentationLoss

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "fixtures")
M64 = (1 << 64) - 1
REG_MAX = 16
STRIDES = [8.0, 16.0, 32.0]


def splitmix64(x):
    """Vectorised splitmix64 on uint64 arrays (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def gen(seed, n, lo, hi):
    """n values lo + (hi-lo)*k/65536, k = top 16 bits of splitmix64((seed << 32) + i); exact in f32."""
    i = np.arange(n, dtype=np.uint64) + (np.uint64(seed) << np.uint64(32))
    k = (splitmix64(i) >> np.uint64(48)).astype(np.float64)
    return (lo + (hi - lo) * k / 65536.0).astype(np.float32)


class _Head(torch.nn.Module):
    def __init__(self, nc):
        super().__init__()
        self.stride = torch.tensor(STRIDES)
        self.nc, self.reg_max = nc, REG_MAX


class _Model(torch.nn.Module):
    """The parts of a model the loss classes read: args, model[-1], a parameter for the device."""

    def __init__(self, nc):
        super().__init__()
        self.model = torch.nn.ModuleList([_Head(nc)])
        self.args = SimpleNamespace(box=7.5, cls=0.5, dfl=1.5, overlap_mask=False)
        self.p = torch.nn.Parameter(torch.zeros(1))


def run_loss(seg, nc, feats, batch, pm=None, proto=None):
    """Loss items, loss_sum and the assigner's outputs (captured from its forward)."""
    crit = (v8SegmentationLoss if seg else v8DetectionLoss)(_Model(nc))
    captured = {}
    fwd = crit.assigner.forward

    def spy(*a, **k):
        out = fwd(*a, **k)
        captured["out"] = out
        return out

    crit.assigner.forward = spy
    b = feats[0].shape[0]
    no = feats[0].shape[1]
    boxes = torch.cat([f[:, : 4 * REG_MAX].reshape(b, 4 * REG_MAX, -1) for f in feats], 2)
    scores = torch.cat([f[:, 4 * REG_MAX :].reshape(b, no - 4 * REG_MAX, -1) for f in feats], 2)
    preds = {"boxes": boxes, "scores": scores, "feats": feats}
    if seg:
        preds["mask_coefficient"], preds["proto"] = pm, proto
    loss, items = crit.loss(preds, batch)
    items = torch.stack(list(items.values()))
    return loss, items, captured["out"]


def make_targets(rng, b, h, w, mh, mw, per_image, nc, small=True):
    """Random gt boxes (normalised xywh) incl. tiny and overlapping ones, and per-instance masks."""
    bi, cls, boxes, masks = [], [], [], []
    for i in range(b):
        for j in range(per_image[i]):
            if small and j == 0:
                bw, bh = rng.uniform(4, 14) / w, rng.uniform(4, 14) / h  # enlarged by the assigner
            else:
                bw, bh = rng.uniform(0.1, 0.6), rng.uniform(0.1, 0.7)
            cx = rng.uniform(bw / 2, 1 - bw / 2)
            cy = rng.uniform(bh / 2, 1 - bh / 2)
            if j == 2 and boxes:  # overlap the previous box
                cx, cy = boxes[-1][0] + 0.03, boxes[-1][1] - 0.02
            bi.append(i)
            cls.append(int(rng.integers(0, nc)))
            boxes.append([cx, cy, bw, bh])
            yy, xx = np.mgrid[0:mh, 0:mw]
            ex = ((xx + 0.5) / mw - cx) / (bw / 2 + 1e-6)
            ey = ((yy + 0.5) / mh - cy) / (bh / 2 + 1e-6)
            m = (ex**2 + ey**2 < 1.0).astype(np.float32)
            m[rng.random((mh, mw)) < 0.05] = 1.0  # some noise outside
            masks.append(m)
    n = len(bi)
    return {
        "batch_idx": torch.tensor(bi, dtype=torch.float32),
        "cls": torch.tensor(cls, dtype=torch.float32).view(n, 1),
        "bboxes": torch.tensor(np.array(boxes, dtype=np.float32).reshape(n, 4)),
        "masks": torch.tensor(np.array(masks, dtype=np.float32).reshape(n, mh, mw)),
    }


def sparse(prefix, t, out):
    """Store a gradient as its non-zero entries (flat index i32, value f32) plus its shape."""
    flat = t.detach().reshape(-1)
    idx = torch.nonzero(flat != 0).reshape(-1)
    out[prefix + ".idx"] = idx.to(torch.int32)
    out[prefix + ".val"] = flat[idx].contiguous()
    out[prefix + ".shape"] = torch.tensor(list(t.shape), dtype=torch.int32)


def case(name, seed, seg, b, nc, hw, per_image, nm=4, proto_hw=None, mask_hw=None, out=None, meta=None):
    h, w = hw
    sizes = [(h // int(s), w // int(s)) for s in STRIDES]
    no = 4 * REG_MAX + nc
    feats, spec = [], []
    for lvl, (fh, fw) in enumerate(sizes):
        n = b * no * fh * fw
        v = gen(seed * 16 + lvl, n, -4.0, 4.0).reshape(b, no, fh, fw).copy()
        # class logits mostly negative, as in training: shift them by -4
        v[:, 4 * REG_MAX :] -= 4.0
        feats.append(torch.tensor(v, requires_grad=True))
        spec.append({"seed": seed * 16 + lvl, "shape": [b, no, fh, fw], "lo": -4.0, "hi": 4.0, "cls_shift": -4.0})
    rng = np.random.default_rng(seed)
    ph, pw = proto_hw or (h // 4, w // 4)
    mh, mw = mask_hw or (ph, pw)
    batch = make_targets(rng, b, h, w, mh, mw, per_image, nc)
    a = sum(fh * fw for fh, fw in sizes)
    args = {}
    if seg:
        pm = torch.tensor(gen(seed * 16 + 8, b * nm * a, -2.0, 2.0).reshape(b, nm, a), requires_grad=True)
        proto = torch.tensor(gen(seed * 16 + 9, b * nm * ph * pw, -2.0, 2.0).reshape(b, nm, ph, pw), requires_grad=True)
        spec.append({"seed": seed * 16 + 8, "shape": [b, nm, a], "lo": -2.0, "hi": 2.0})
        spec.append({"seed": seed * 16 + 9, "shape": [b, nm, ph, pw], "lo": -2.0, "hi": 2.0})
        args = {"pm": pm, "proto": proto}
    loss, items, (_, tb, ts, fg, tgi) = run_loss(seg, nc, feats, batch, **args)
    total = loss.sum()
    total.backward()
    p = name + "."
    out[p + "batch_idx"] = batch["batch_idx"]
    out[p + "cls"] = batch["cls"].reshape(-1)
    out[p + "bboxes"] = batch["bboxes"]
    if seg:
        out[p + "masks"] = batch["masks"].to(torch.uint8)
    out[p + "loss_items"] = items.float()
    out[p + "loss_sum"] = total.detach().reshape(1)
    out[p + "fg_mask"] = fg.to(torch.uint8)
    out[p + "target_gt_idx"] = tgi.to(torch.int32)
    out[p + "target_bboxes"] = tb.float().contiguous()
    out[p + "target_scores"] = ts.float().contiguous()
    for lvl, f in enumerate(feats):
        sparse(f"{p}grad.feats.{lvl}", f.grad, out)
    if seg:
        sparse(p + "grad.pred_masks", args["pm"].grad, out)
        sparse(p + "grad.proto", args["proto"].grad, out)
    meta[name] = {"seg": seg, "nc": nc, "batch": b, "imgsz": [h, w], "inputs": spec}
    print(name, "items", items.tolist(), "fg", int(fg.sum()), "anchors", a, file=sys.stderr)


def topk_rows(out):
    """torch.topk(10) of sparse rows (A = 700 >= 64*10: torch's partial_sort path), with
    zero-valued candidates near the start, where its tie order decides which zeros win."""
    rng = np.random.default_rng(7)
    rows, cand = np.zeros((24, 700), np.float32), np.zeros((24, 700), np.uint8)
    for r in range(24):
        pos = np.concatenate([rng.choice(14, 6, replace=False), rng.choice(np.arange(14, 700), r % 9, replace=False)])
        cand[r, pos] = 1
        vals = rng.uniform(0.1, 1.0, len(pos)).astype(np.float32)
        vals[rng.random(len(pos)) < 0.5] = 0.0  # zero-metric candidates
        rows[r, pos] = vals
    idx = torch.topk(torch.tensor(rows), 10, dim=-1).indices
    out["topk.rows"] = torch.tensor(rows)
    out["topk.candidates"] = torch.tensor(cand)
    out["topk.indices"] = idx.to(torch.int32)


def shared_head():
    """Train-mode head outputs of the shared yolov8n-seg fixture, checked against its loss_items."""
    from ultralytics.nn.tasks import SegmentationModel

    path = os.path.join(ROOT, "..", "..", "shared", "fixtures", "yolov8n-seg-visible.safetensors")
    if not os.path.exists(path):
        path = "/work/shared/fixtures/yolov8n-seg-visible.safetensors"
    f = safe_open(path, "pt")
    cfg = json.loads(f.metadata()["config"])
    model = SegmentationModel(cfg, ch=3, nc=cfg["nc"], verbose=False)
    sd = {k[len("weights.") :]: f.get_tensor(k) for k in f.keys() if k.startswith("weights.")}
    model.load_state_dict(sd, strict=False)
    model.train()
    head = model.model[-1]
    x = [f.get_tensor(f"outputs.train.feats.{i}") for i in range(3)]
    with torch.no_grad():
        feats = [torch.cat((head.cv2[i](x[i]), head.cv3[i](x[i])), 1) for i in range(3)]
    batch = {
        "batch_idx": f.get_tensor("inputs.batch_idx"),
        "cls": f.get_tensor("inputs.cls"),
        "bboxes": f.get_tensor("inputs.bboxes"),
        "masks": f.get_tensor("inputs.masks"),
    }
    pm, proto = f.get_tensor("outputs.train.mask_coefficient"), f.get_tensor("outputs.train.proto")
    loss, items, _ = run_loss(True, cfg["nc"], feats, batch, pm=pm, proto=proto)
    want = f.get_tensor("outputs.loss_items")
    print("shared: ours", items.tolist(), "fixture", want.tolist(), file=sys.stderr)
    assert torch.allclose(items, want, atol=1e-6, rtol=1e-6), "head outputs do not reproduce loss_items"
    return {f"feats.{i}": t.contiguous() for i, t in enumerate(feats)}


def main():
    torch.manual_seed(0)
    out, meta = {}, {}
    case("seg_a", 1, True, 2, 3, (128, 320), [4, 3], out=out, meta=meta)
    case("seg_b", 2, True, 3, 5, (192, 192), [3, 0, 2], proto_hw=(24, 24), mask_hw=(48, 48), out=out, meta=meta)
    case("seg_empty", 3, True, 2, 2, (160, 256), [0, 0], out=out, meta=meta)
    case("det_a", 4, False, 2, 4, (160, 256), [5, 2], out=out, meta=meta)
    case("det_b", 5, False, 2, 1, (256, 160), [0, 3], out=out, meta=meta)
    topk_rows(out)
    save_file(out, os.path.join(OUT, "yolo_loss_cases.safetensors"), metadata={"cases": json.dumps(meta)})
    save_file(shared_head(), os.path.join(OUT, "yolo_loss_shared_head.safetensors"))


if __name__ == "__main__":
    main()
