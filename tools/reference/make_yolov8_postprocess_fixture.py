"""Write a `yolov8-postprocess` parity fixture from ultralytics 8.4.190.

Random head outputs (boxes clustered so NMS has work, scores optionally quantised so many
tie, smooth prototypes so masks are blobs) go through ultralytics' own
`non_max_suppression` and `process_mask(upsample=True)`, as its segment predictor calls
them. Layout (as /work/shared/fixtures/yolov8-postprocess-visible.safetensors):
  inputs.pred [1, 4+nc+nm, A] f32, inputs.proto [1, nm, h/4, w/4] f32
  outputs.boxes [n, 4] f32, outputs.scores [n] f32, outputs.classes [n] f32,
  outputs.masks [n, h, w] u8;
metadata kind, config (nc, nm, conf_thres, iou_thres, max_det, agnostic, imgsz [h, w],
and classes / max_nms / orig_shape when given), tolerances, reference, notes.
With --orig H0 W0 (square imgsz only: our letterbox is square) also the mapping back to
an H0×W0 original through the letterbox, as the segment validator does it:
  outputs.orig_boxes [n, 4] (scale_boxes, clipped),
  outputs.orig_masks [n, H0, W0] u8 (scale_masks(masks[None], (H0, W0))[0].byte()),
  outputs.orig_masks_half [n, H0, W0] u8 (the same resize, > 0.5).

Usage (reference env):
  /work/pyref/bin/python tools/reference/make_yolov8_postprocess_fixture.py OUT.safetensors \
      --seed 1 --nc 3 --nm 32 --anchors 300 --imgsz 256 256 [--agnostic] [--ties] \
      [--max-det 50] [--classes 0 2] [--max-nms N] [--orig H0 W0]
"""

import argparse
import json

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from ultralytics.utils.nms import non_max_suppression
from ultralytics.utils.ops import process_mask, scale_boxes, scale_masks


def make_inputs(g, nc, nm, a, h, w, ties):
    # Box centres around a few cluster points so overlapping boxes compete.
    k = max(2, a // 20)
    centres = torch.rand(k, 2, generator=g) * torch.tensor([w, h])
    pick = torch.randint(0, k, (a,), generator=g)
    xy = centres[pick] + torch.randn(a, 2, generator=g) * 6.0
    wh = (0.1 + 0.3 * torch.rand(a, 2, generator=g)) * torch.tensor([w, h])
    logits = torch.randn(nc, a, generator=g) * 2.0 - 0.5
    scores = logits.sigmoid()
    if ties:
        scores = (scores * 16).round() / 16  # many exact ties, some exactly at conf
    coefs = torch.randn(nm, a, generator=g)
    pred = torch.cat([xy.T, wh.T, scores, coefs], 0)[None].float().contiguous()
    low = torch.randn(1, nm, max(2, h // 32), max(2, w // 32), generator=g)
    proto = F.interpolate(low, (h // 4, w // 4), mode="bilinear") + 0.1 * torch.randn(
        1, nm, h // 4, w // 4, generator=g
    )
    return pred, proto.float().contiguous()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--nc", type=int, default=3)
    ap.add_argument("--nm", type=int, default=32)
    ap.add_argument("--anchors", type=int, default=300)
    ap.add_argument("--imgsz", type=int, nargs=2, default=[256, 256], metavar=("H", "W"))
    ap.add_argument("--conf", type=float, default=0.25)
    ap.add_argument("--iou", type=float, default=0.7)
    ap.add_argument("--max-det", type=int, default=50)
    ap.add_argument("--agnostic", action="store_true")
    ap.add_argument("--ties", action="store_true")
    ap.add_argument("--classes", type=int, nargs="*")
    ap.add_argument("--max-nms", type=int)
    ap.add_argument("--orig", type=int, nargs=2, metavar=("H0", "W0"))
    args = ap.parse_args()
    h, w = args.imgsz
    g = torch.Generator().manual_seed(args.seed)
    pred, proto = make_inputs(g, args.nc, args.nm, args.anchors, h, w, args.ties)

    kw = {}
    if args.max_nms is not None:
        kw["max_nms"] = args.max_nms
    det = non_max_suppression(
        pred.clone(),
        conf_thres=args.conf,
        iou_thres=args.iou,
        classes=args.classes,
        agnostic=args.agnostic,
        max_det=args.max_det,
        nc=args.nc,
        **kw,
    )[0]
    masks = process_mask(proto[0], det[:, 6:], det[:, :4], (h, w), upsample=True)

    config = {
        "nc": args.nc,
        "nm": args.nm,
        "conf_thres": args.conf,
        "iou_thres": args.iou,
        "max_det": args.max_det,
        "agnostic": args.agnostic,
        "imgsz": [h, w],
    }
    if args.classes is not None:
        config["classes"] = args.classes
    if args.max_nms is not None:
        config["max_nms"] = args.max_nms
    tensors = {
        "inputs.pred": pred,
        "inputs.proto": proto,
        "outputs.boxes": det[:, :4].contiguous(),
        "outputs.scores": det[:, 4].contiguous(),
        "outputs.classes": det[:, 5].contiguous(),
        "outputs.masks": masks.to(torch.uint8).contiguous(),
    }
    if args.orig is not None:
        assert h == w, "--orig needs a square imgsz"
        config["orig_shape"] = list(args.orig)
        scaled = scale_masks(masks[None].float(), tuple(args.orig))[0]
        tensors["outputs.orig_boxes"] = scale_boxes((h, w), det[:, :4].clone(), tuple(args.orig)).contiguous()
        tensors["outputs.orig_masks"] = scaled.byte().contiguous()
        tensors["outputs.orig_masks_half"] = (scaled > 0.5).to(torch.uint8).contiguous()
    meta = {
        "kind": "yolov8-postprocess",
        "config": json.dumps(config),
        "tolerances": json.dumps({"outputs.*": {"atol": 1e-4, "rtol": 1e-4}}),
        "reference": "ultralytics 8.4.190",
        "notes": "boxes are xyxy in input pixels; masks are binary (B=1 image) at input size, "
        "from ops.process_mask(upsample=True); rows are in output order of ultralytics NMS "
        f"(score descending). seed={args.seed} ties={args.ties}",
    }
    save_file(tensors, args.out, metadata=meta)
    print(args.out, "detections:", det.shape[0], "mask pixels:", int(masks.sum()))


if __name__ == "__main__":
    main()
