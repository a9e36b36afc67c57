#!/usr/bin/env python3
"""Write tests/fixtures/cocoeval-table.json: random ground-truth / detection sets and what
pycocotools' COCOeval answers for them, for tests/eval_cocoeval.rs (dev-time only).

Each case is {"name", "gt": COCO dict, "dt": results list, "bbox": answer, "segm": answer
or null}; an answer is {"stats": the 12 COCOeval.stats, "per_class": [[category_id, ap,
ap50], ...] (precision[:, :, k, 0, -1] without -1 cells, -1 when empty; ap50 at IoU .5),
"summary": the 12 lines summarize() prints}. The top level also holds iou_thrs and
rec_thrs (Params' linspace values).

The cases vary on purpose: crowd regions (polygon, compressed and uncompressed RLE), tiny
/ medium / large objects and areas exactly on the range limits, images without ground
truth or without detections, categories without ground truth or without detections,
more than 100 detections on one image, tied scores, duplicated ground truth, empty
masks, a ground truth with id 0 (pycocotools reads a match to it as no match), both
loadRes modes (first result with a bbox: area = w*h; without: area = mask area) and
detection masks as compressed RLE, uncompressed RLE and polygons (bbox mode only, as
pycocotools' segm mode reads compressed RLE only).

Usage: make_cocoeval_table.py OUT.json [--cases N] [--seed S]
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


def shape_poly(rng, cx, cy, rx, ry):
    """A convex-ish polygon (ellipse with 5..10 jittered vertices) around (cx, cy)."""
    n = int(rng.integers(5, 11))
    a = np.sort(rng.uniform(0, 2 * np.pi, n))
    r = rng.uniform(0.75, 1.0, n)
    xs = cx + rx * r * np.cos(a)
    ys = cy + ry * r * np.sin(a)
    return [round(float(v), 2) for xy in zip(xs, ys) for v in xy]


def rect_poly(x, y, w, h):
    return [x, y, x + w, y, x + w, y + h, x, y + h]


def uncompressed(mask):
    """Column-major run counts of a 0/1 mask (COCO's uncompressed RLE)."""
    flat = mask.flatten(order="F")
    counts, prev, run = [], 0, 0
    for v in flat:
        if v != prev:
            counts.append(run)
            run, prev = 0, v
        run += 1
    counts.append(run)
    return counts


def compressed(mask):
    r = mu.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in r["size"]], "counts": r["counts"].decode()}


def poly_rle(parts, h, w):
    return mu.merge(mu.frPyObjects(parts, h, w))


class Case:
    def __init__(self, rng, name):
        self.rng, self.name = rng, name
        self.images, self.anns, self.dts = [], [], []
        self.next_ann = 1

    def image(self, w, h):
        iid = len(self.images) * 3 + 1  # non-contiguous image ids
        self.images.append({"id": iid, "file_name": f"{iid}.jpg", "width": w, "height": h})
        return iid, w, h

    def gt(self, iid, w, h, cat, size, crowd=False, kind="poly", area=None):
        """One ground-truth object of about `size` pixels across; returns (parts, rle)."""
        rng = self.rng
        rx = max(1.0, size / 2 * rng.uniform(0.7, 1.0))
        ry = max(1.0, size / 2 * rng.uniform(0.7, 1.0))
        cx, cy = rng.uniform(rx * 0.5, w - rx * 0.5), rng.uniform(ry * 0.5, h - ry * 0.5)
        parts = [shape_poly(rng, cx, cy, rx, ry)]
        if kind == "multi":
            parts.append(shape_poly(rng, rng.uniform(0, w), rng.uniform(0, h), rx / 2 + 1, ry / 2 + 1))
        rle = poly_rle(parts, h, w)
        if kind in ("rle", "ucrle"):
            m = mu.decode(rle)
            seg = compressed(m) if kind == "rle" else {"size": [h, w], "counts": uncompressed(m)}
        else:
            seg = parts
        a = float(mu.area(rle)) if area is None else area
        bb = [float(v) for v in mu.toBbox(rle)]
        self.anns.append({"id": self.next_ann, "image_id": iid, "category_id": cat, "segmentation": seg,
                          "area": a, "bbox": bb, "iscrowd": int(crowd)})
        self.next_ann += 1
        return parts, rle

    def det(self, iid, w, h, cat, score, parts=None, seg_kind="rle", with_bbox=True, jitter=3.0, empty=False):
        """A detection near `parts` (a jittered copy) or, without parts, anywhere."""
        rng = self.rng
        if parts is None:
            s = rng.uniform(2, min(w, h) * 0.6)
            parts = [shape_poly(rng, rng.uniform(0, w), rng.uniform(0, h), s / 2, s / 2 * rng.uniform(0.5, 1.5))]
        else:
            dx, dy, k = rng.normal(0, jitter), rng.normal(0, jitter), rng.uniform(0.85, 1.15)
            parts = [[round(float((v - p[i % 2::2].mean()) * k + p[i % 2::2].mean() + (dx if i % 2 == 0 else dy)), 2)
                      for i, v in enumerate(p)] for p in (np.asarray(q) for q in parts)]
        rle = poly_rle(parts, h, w)
        if empty:
            rle = mu.encode(np.zeros((h, w), dtype=np.uint8, order="F"))
        d = {"image_id": iid, "category_id": cat, "score": score}
        if with_bbox:
            bb = [float(v) for v in mu.toBbox(rle)]
            if rng.uniform() < 0.3:  # a box that is not the mask's (models predict both)
                bb = [round(float(v + rng.normal(0, 2)), 3) for v in bb]
            d["bbox"] = bb
        if seg_kind == "rle":
            d["segmentation"] = {"size": [h, w], "counts": rle["counts"].decode()}
        elif seg_kind == "ucrle":
            d["segmentation"] = {"size": [h, w], "counts": uncompressed(mu.decode(rle))}
        elif seg_kind == "poly" and not empty:
            d["segmentation"] = parts
        elif seg_kind == "poly":
            d["segmentation"] = {"size": [h, w], "counts": rle["counts"].decode()}
        self.dts.append(d)


def make_case(seed, idx):
    rng = np.random.default_rng(seed)
    flavor = idx % 6
    c = Case(rng, f"case{idx:02d}-seed{seed}")
    cats = sorted(rng.choice(np.arange(1, 20), int(rng.integers(1, 5)), replace=False).tolist())
    # Every third case: a category no annotation uses, and one no detection uses.
    cat_list = [{"id": int(k), "name": f"c{k}"} for k in cats]
    if idx % 3 == 0:
        cat_list.append({"id": 40, "name": "unused"})
    segm_mode = flavor == 1  # results without bbox: loadRes' segm mode (compressed RLE only)
    seg_kinds = ["rle"] if segm_mode else ["rle", "ucrle", "poly"]
    box_only = flavor == 5  # boxes only: bbox evaluation only
    scores_round = 1 if flavor in (2, 4) else 4  # ties when rounded to one decimal
    n_img = int(rng.integers(1, 8))
    big = idx % 5 == 2  # >100 detections on one image
    for ii in range(n_img):
        w, h = int(rng.integers(30, 200)), int(rng.integers(30, 170))
        if big and ii == 0:
            w, h = 48, 40
        iid, w, h = c.image(w, h)
        if rng.uniform() < 0.15 and n_img > 1:
            # An image with detections but no ground truth.
            for _ in range(int(rng.integers(1, 4))):
                c.det(iid, w, h, int(rng.choice(cats)), round(float(rng.uniform()), scores_round),
                      seg_kind=str(rng.choice(seg_kinds)), with_bbox=not segm_mode)
            continue
        objs = []
        for _ in range(int(rng.integers(0, 6))):
            cat = int(rng.choice(cats))
            size = float(rng.choice([rng.uniform(2, 20), rng.uniform(25, 60), rng.uniform(80, 160)]))
            size = min(size, min(w, h) - 2)
            crowd = rng.uniform() < 0.15
            kind = str(rng.choice(["poly", "multi", "rle", "ucrle"] if crowd else ["poly", "poly", "multi"]))
            area = None
            r = rng.uniform()
            if r < 0.08:
                area = float(rng.choice([1024.0, 9216.0, 0.0]))  # exactly on a range limit
            elif r < 0.12:
                area = float(rng.uniform(0, 20000))  # an area field that is not the mask's
            parts, _ = c.gt(iid, w, h, cat, size, crowd=crowd, kind=kind, area=area)
            objs.append((cat, parts))
            if rng.uniform() < 0.1:  # a duplicated ground truth
                a = dict(c.anns[-1])
                a["id"] = c.next_ann
                c.next_ann += 1
                c.anns.append(a)
        if rng.uniform() < 0.15 and objs:
            continue  # ground truth without detections
        n_det = 120 if (big and ii == 0) else int(rng.integers(0, 8))
        for j in range(n_det):
            if objs and rng.uniform() < 0.7:
                cat, parts = objs[int(rng.integers(len(objs)))]
                if rng.uniform() < 0.1:
                    cat = int(rng.choice(cats))  # right place, wrong class
            else:
                cat, parts = int(rng.choice(cats)), None
            score = round(float(rng.uniform(-0.05 if flavor == 3 else 0, 1)), scores_round)
            c.det(iid, w, h, cat, score, parts=parts, seg_kind=str(rng.choice(seg_kinds)),
                  with_bbox=not segm_mode, jitter=float(rng.choice([0.5, 2.0, 6.0])),
                  empty=rng.uniform() < 0.02)
    if not c.dts:
        iid, w, h = c.images[0]["id"], c.images[0]["width"], c.images[0]["height"]
        c.det(iid, w, h, cats[0], 0.5, seg_kind="rle", with_bbox=not segm_mode)
    if box_only:
        for d in c.dts:
            d.pop("segmentation", None)
    # A ground truth with id 0 (every sixth case): pycocotools counts a match to it as none.
    if idx % 6 == 4 and c.anns:
        c.anns[0]["id"] = 0
    if flavor == 0 and len(c.dts) > 1:
        # Exact box on a range limit: 32 x 32 = 1024 and 96 x 96 = 9216.
        c.dts[0]["bbox"] = [1.0, 1.0, 32.0, 32.0]
        c.dts[-1]["bbox"] = [0.0, 0.0, 96.0, 96.0]
    gt = {"images": c.images, "annotations": c.anns, "categories": cat_list}
    return c.name, gt, c.dts, not box_only


def run_eval(gt, dt, iou_type):
    coco = COCO()
    coco.dataset = json.loads(json.dumps(gt))
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
        res = coco.loadRes(json.loads(json.dumps(dt)))
        E = COCOeval(coco, res, iou_type)
        E.evaluate()
        E.accumulate()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        E.summarize()
    prec = E.eval["precision"]
    per_class = []
    for k, cat in enumerate(E.params.catIds):
        p = prec[:, :, k, 0, -1]
        p50 = prec[0, :, k, 0, -1]
        v, v50 = p[p > -1], p50[p50 > -1]
        per_class.append([int(cat), float(np.mean(v)) if v.size else -1.0,
                          float(np.mean(v50)) if v50.size else -1.0])
    return {"stats": [float(v) for v in E.stats], "per_class": per_class, "summary": out.getvalue()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--cases", type=int, default=36)
    ap.add_argument("--seed", type=int, default=2024)
    a = ap.parse_args()
    cases = []
    for i in range(a.cases):
        name, gt, dt, has_segm = make_case(a.seed * 1000 + i, i)
        case = {"name": name, "gt": gt, "dt": dt, "bbox": run_eval(gt, dt, "bbox"),
                "segm": run_eval(gt, dt, "segm") if has_segm else None}
        cases.append(case)
    p = COCOeval(iouType="bbox").params
    table = {
        "reference": f"pycocotools {version('pycocotools')}, numpy {np.__version__}",
        "generator": f"tools/reference/make_cocoeval_table.py --cases {a.cases} --seed {a.seed}",
        "iou_thrs": [float(v) for v in p.iouThrs],
        "rec_thrs": [float(v) for v in p.recThrs],
        "cases": cases,
    }
    with open(a.out, "w") as f:
        json.dump(table, f, separators=(",", ":"))
    n_dt = sum(len(c["dt"]) for c in cases)
    n_gt = sum(len(c["gt"]["annotations"]) for c in cases)
    print(f"{len(cases)} cases, {n_gt} gt, {n_dt} dt -> {a.out}")


if __name__ == "__main__":
    main()
