#!/usr/bin/env python3
"""Write a `coco-eval` parity fixture (the layout of shared/fixtures/coco-eval-visible):
a random COCO ground truth and results list in the metadata (`gt`, `dt`) and what
pycocotools answers for them: outputs.bbox_stats, outputs.segm_stats (the 12
COCOeval.stats) and outputs.mask_iou (maskUtils.iou(dets, gts, iscrowd) on the image
`config.mask_iou_image_id`, detections in results order x ground truth in annotation
order). `ed-check FILE` must pass it to 1e-9. Dev-time only.

Ground truth: polygons, multi-part polygons and crowd regions as compressed RLE; area and
bbox are annToRLE's area and toBbox. Results: bbox + compressed RLE segmentation, jittered
copies of the ground truth and random false positives, scores rounded to 4 decimals.

Usage: make_cocoeval_fixture.py OUT.safetensors [--seed S] [--images N] [--classes K]
"""
import argparse
import contextlib
import io
import json
from importlib.metadata import version

import numpy as np
from pycocotools import mask as mu
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from safetensors.numpy import save_file


def poly(rng, cx, cy, rx, ry):
    n = int(rng.integers(5, 12))
    a = np.sort(rng.uniform(0, 2 * np.pi, n))
    r = rng.uniform(0.7, 1.0, n)
    return [float(v) for xy in zip(cx + rx * r * np.cos(a), cy + ry * r * np.sin(a)) for v in xy]


def make(seed, n_images, n_classes):
    rng = np.random.default_rng(seed)
    images, anns, dts = [], [], []
    cats = [{"id": k + 1, "name": f"class{k}"} for k in range(n_classes)]
    for i in range(n_images):
        w, h = int(rng.integers(96, 400)), int(rng.integers(96, 300))
        iid = i + 1
        images.append({"id": iid, "file_name": f"img{i:03d}.jpg", "width": w, "height": h})
        for _ in range(int(rng.integers(0, 5))):
            cat = int(rng.integers(1, n_classes + 1))
            s = float(rng.choice([rng.uniform(6, 28), rng.uniform(35, 90), rng.uniform(100, 140)]))
            s = min(s, min(w, h) - 4)
            cx, cy = rng.uniform(s / 2, w - s / 2), rng.uniform(s / 2, h - s / 2)
            parts = [poly(rng, cx, cy, s / 2, s / 2 * rng.uniform(0.6, 1.0))]
            if rng.uniform() < 0.25:
                parts.append(poly(rng, rng.uniform(0, w), rng.uniform(0, h), s / 5 + 2, s / 5 + 2))
            crowd = rng.uniform() < 0.12
            rle = mu.merge(mu.frPyObjects(parts, h, w))
            seg = {"size": [h, w], "counts": rle["counts"].decode()} if crowd else parts
            anns.append({"id": len(anns) + 1, "image_id": iid, "category_id": cat, "segmentation": seg,
                         "area": float(mu.area(rle)), "bbox": [float(v) for v in mu.toBbox(rle)],
                         "iscrowd": int(crowd)})
            for _ in range(int(rng.choice([0, 1, 1, 2]))):
                k = rng.uniform(0.85, 1.15)
                dx, dy = rng.normal(0, 4), rng.normal(0, 4)
                jp = [[(v - (cx if j % 2 == 0 else cy)) * k + (cx + dx if j % 2 == 0 else cy + dy)
                       for j, v in enumerate(p)] for p in parts[:1]]
                dcat = cat if rng.uniform() < 0.9 else int(rng.integers(1, n_classes + 1))
                dts.append((iid, dcat, jp, h, w))
        for _ in range(int(rng.integers(0, 3))):  # false positives anywhere
            s = rng.uniform(8, min(w, h) / 2)
            jp = [poly(rng, rng.uniform(0, w), rng.uniform(0, h), s, s * rng.uniform(0.3, 1.5))]
            dts.append((iid, int(rng.integers(1, n_classes + 1)), jp, h, w))
    order = rng.permutation(len(dts))
    results = []
    for j in order:
        iid, cat, parts, h, w = dts[j]
        rle = mu.merge(mu.frPyObjects(parts, h, w))
        bb = [float(v) for v in mu.toBbox(rle)]
        if rng.uniform() < 0.3:
            bb = [float(v + rng.normal(0, 3)) for v in bb]
        results.append({"image_id": iid, "category_id": cat, "bbox": bb,
                        "segmentation": {"size": [h, w], "counts": rle["counts"].decode()},
                        "score": round(float(rng.uniform(0.05, 0.95)), 4)})
    return {"images": images, "annotations": anns, "categories": cats}, results


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--images", type=int, default=10)
    ap.add_argument("--classes", type=int, default=4)
    a = ap.parse_args()
    gt, dt = make(a.seed, a.images, a.classes)
    coco = COCO()
    coco.dataset = json.loads(json.dumps(gt))
    out = {}
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
        res = coco.loadRes(json.loads(json.dumps(dt)))
        for t in ("bbox", "segm"):
            E = COCOeval(coco, res, t)
            E.evaluate()
            E.accumulate()
            E.summarize()
            out[f"outputs.{t}_stats"] = np.asarray(E.stats, dtype=np.float64)
    # The image with the most detection x ground-truth pairs (crowd first) for mask_iou.
    def pairs(img):
        g = [x for x in gt["annotations"] if x["image_id"] == img["id"]]
        d = [x for x in dt if x["image_id"] == img["id"]]
        return (any(x["iscrowd"] for x in g) and len(d) > 0, len(g) * len(d))
    img = max(gt["images"], key=pairs)
    gts = [x for x in gt["annotations"] if x["image_id"] == img["id"]]
    dets = [x for x in dt if x["image_id"] == img["id"]]
    iou = mu.iou([d["segmentation"] for d in dets], [coco.annToRLE(g) for g in gts],
                 [g["iscrowd"] for g in gts])
    out["outputs.mask_iou"] = np.ascontiguousarray(np.asarray(iou, dtype=np.float64))
    meta = {
        "kind": "coco-eval",
        "reference": f"pycocotools {version('pycocotools')}",
        "config": json.dumps({"mask_iou_image_id": img["id"]}),
        "tolerances": json.dumps({"outputs.*": {"atol": 1e-9, "rtol": 0}}),
        "notes": "gt is a COCO dataset (polygons, multi-part polygons, compressed-RLE crowd regions); "
                 "dt is a COCO results list with compressed RLE segmentation. *_stats are the 12 "
                 "COCOeval.stats for iouType bbox and segm. mask_iou is maskUtils.iou(dets, gts, "
                 "iscrowd) on image mask_iou_image_id, dets and gts in file order. Made by "
                 f"tools/reference/make_cocoeval_fixture.py --seed {a.seed} --images {a.images} "
                 f"--classes {a.classes}.",
        "gt": json.dumps(gt),
        "dt": json.dumps(dt),
    }
    save_file(out, a.out, metadata=meta)
    print(f"{a.out}: {len(gt['annotations'])} gt ({sum(x['iscrowd'] for x in gt['annotations'])} crowd), "
          f"{len(dt)} dt, mask_iou {out['outputs.mask_iou'].shape} on image {img['id']}; "
          f"bbox AP {out['outputs.bbox_stats'][0]:.4f}, segm AP {out['outputs.segm_stats'][0]:.4f}")


if __name__ == "__main__":
    main()
