#!/usr/bin/env python3
"""Write tests/fixtures/masks-pycocotools.safetensors: pycocotools' answers for the mask
module (src/data/masks), which tests/data_masks.rs must reproduce exactly.

Tables (all flat; `*_off` are offsets into the flat array that follows, i64; strings are
u8 bytes of the compressed RLE `counts`):
  poly.*   random polygon segmentations, in groups of one image size each
           size [N,2] (h, w); part_off [N+1] into parts; coord_off [P+1] into coords (f64);
           part_str/_off: frPyObjects([part], h, w) per part;
           str/_off: merge(frPyObjects(parts, h, w)) (what COCO.annToRLE does);
           area [N], bbox [N,4] (toBbox), extent [N,4] (min/max of the coordinates);
           dsum [N], dwsum [N]: decode(rle).sum() and sum of mask[y,x]·(y·w + x) (row-major
           index, so a transposed decode fails); group_off [G+1] into cases.
  merge.*  pairs [M,2] of cases of one group: union/inter strings (+ _off) and areas.
  iou.*    per group, maskUtils.iou(all cases, all cases, crowd) flattened row-major
           [dt, gt] in group order (values [sum K^2]); crowd [N] (flag of case as gt).
  ucrle.*  uncompressed RLEs (some with zero-length runs): size, counts/_off (i64),
           str/_off (frPyObjects), area, bbox.
  dense.*  row-major 0/1 masks: size, pix/_off (u8), str/_off (encode).
  gt.*     every annotation of the shared fixture coco-eval-visible.safetensors `gt`:
           ann_id, coords/coord_off/part_off (as Python's json parsed them: correctly
           rounded), str/_off (annToRLE), area, bbox, extent.
  dt.*     every result of its `dt` (compressed RLE): area, bbox (toBbox).

Usage: make_masks_fixture.py OUT.safetensors SHARED/coco-eval-visible.safetensors [--seed N]
"""
import argparse
import json

import numpy as np
import pycocotools
from pycocotools import mask as mu
from safetensors import safe_open
from safetensors.numpy import save_file

try:
    from importlib.metadata import version
    PYCOCOTOOLS_VERSION = version("pycocotools")
except Exception:  # pragma: no cover
    PYCOCOTOOLS_VERSION = getattr(pycocotools, "__version__", "unknown")


def ann_to_rle(parts, h, w):
    """COCO.annToRLE for a polygon list."""
    return mu.merge(mu.frPyObjects(parts, h, w))


def extent(parts):
    xs = np.concatenate([np.asarray(p[0::2], dtype=np.float64) for p in parts])
    ys = np.concatenate([np.asarray(p[1::2], dtype=np.float64) for p in parts])
    return [xs.min(), ys.min(), xs.max() - xs.min(), ys.max() - ys.min()]


class Strings:
    def __init__(self):
        self.data, self.off = bytearray(), [0]

    def add(self, s):
        s = s if isinstance(s, bytes) else s.encode()
        self.data += s
        self.off.append(len(self.data))

    def put(self, t, name):
        t[name] = np.frombuffer(bytes(self.data), dtype=np.uint8).copy()
        t[name + "_off"] = np.array(self.off, dtype=np.int64)


def polygon(rng, kind, h, w):
    """One polygon part (flat list) of the given kind."""
    def ring(cx, cy, r, k, jitter=0.0, star=False):
        ang = np.sort(rng.uniform(0, 2 * np.pi, k))
        rad = r * (1 + jitter * rng.uniform(-1, 1, k))
        if star:
            rad = rad * np.where(np.arange(k) % 2 == 0, 1.0, rng.uniform(0.2, 0.6))
        return np.stack([cx + rad * np.cos(ang), cy + rad * np.sin(ang)], 1).ravel()

    cx, cy = rng.uniform(0, w), rng.uniform(0, h)
    m = max(min(h, w), 1)
    if kind == "convex":
        p = ring(cx, cy, rng.uniform(0.5, m / 2 + 1), int(rng.integers(3, 13)))
    elif kind == "star":
        p = ring(cx, cy, rng.uniform(1, m / 2 + 2), 2 * int(rng.integers(3, 9)), 0.2, star=True)
    elif kind == "selfx":  # random order: bow ties and worse
        k = int(rng.integers(4, 10))
        p = np.stack([rng.uniform(-2, w + 2, k), rng.uniform(-2, h + 2, k)], 1).ravel()
    elif kind == "edge":  # partly outside
        ex, ey = rng.choice([-0.3 * w, 0.0, w, 1.3 * w]), rng.choice([-0.3 * h, 0.0, h, 1.3 * h])
        p = ring(ex, ey, rng.uniform(1, m + 2), int(rng.integers(3, 10)), 0.3)
    elif kind == "outside":  # fully outside, often on the negative side
        ox = rng.choice([-3 * w - 5, 2 * w + 5, cx])
        oy = rng.choice([-3 * h - 5, 2 * h + 5]) if ox == cx else rng.uniform(-h, 2 * h)
        p = ring(ox, oy, rng.uniform(0.5, m), int(rng.integers(3, 8)))
    elif kind == "tiny":  # sub-pixel
        p = ring(cx, cy, rng.uniform(0.03, 0.7), int(rng.integers(3, 7)))
    elif kind == "thin":  # long and thinner than a pixel
        a, L, t = rng.uniform(0, np.pi), rng.uniform(2, 2 * m + 4), rng.uniform(0.02, 0.9)
        d, n = np.array([np.cos(a), np.sin(a)]), np.array([-np.sin(a), np.cos(a)])
        c = np.array([cx, cy])
        q = [c - d * L / 2, c + d * L / 2, c + d * L / 2 + n * t, c - d * L / 2 + n * t]
        p = np.array(q).ravel()
    elif kind == "grid":  # coordinates on the 0.1 / 0.5 / integer grid: rounding ties
        step = rng.choice([0.1, 0.5, 1.0])
        p = np.round(ring(cx, cy, rng.uniform(1, m / 2 + 1), int(rng.integers(3, 9))) / step) * step
    elif kind == "rect":
        x0, y0 = rng.uniform(-1, w), rng.uniform(-1, h)
        x1, y1 = x0 + rng.uniform(0.1, w / 2 + 1), y0 + rng.uniform(0.1, h / 2 + 1)
        p = np.array([x0, y0, x0, y1, x1, y1, x1, y0])
    elif kind == "degenerate":  # repeated vertices, collinear, a single point
        sub = rng.integers(0, 3)
        if sub == 0:
            p = ring(cx, cy, rng.uniform(1, m / 2 + 1), 5)
            p = np.concatenate([p[:2], p[:2], p[2:6], p[4:6], p[6:]])
        elif sub == 1:
            t = np.sort(rng.uniform(0, 1, 4))
            p = np.stack([cx + t * rng.uniform(-w, w), cy + t * rng.uniform(-h, h)], 1).ravel()
        else:
            p = np.array([cx, cy] * 3)
    elif kind == "many":  # many vertices
        p = ring(cx, cy, rng.uniform(1, m / 2 + 1), int(rng.integers(50, 200)), 0.05)
    elif kind == "far":  # vertices far outside the image (large walks in the C code)
        s = rng.choice([1e3, 1e4, 1e5, 1e6])
        p = np.array([cx, cy, cx + rng.uniform(-s, s), cy + s, cx - s, cy + rng.uniform(-s, s)])
    else:
        raise ValueError(kind)
    return [float(v) for v in p]


KINDS = ["convex", "star", "selfx", "edge", "outside", "tiny", "thin", "grid", "rect",
         "degenerate", "many", "far"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("shared_coco_eval")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    t = {}

    # ---- polygon groups ----
    sizes = [(1, 1), (1, 23), (19, 1), (2, 3), (5, 7), (64, 64), (117, 347), (300, 41)]
    sizes += [(int(rng.integers(2, 130)), int(rng.integers(2, 130))) for _ in range(24)]
    size, part_off, coord_off, coords = [], [0], [0], []
    part_str, full_str = Strings(), Strings()
    area, bbox, ext, dsum, dwsum, group_off, rles = [], [], [], [], [], [0], []
    for h, w in sizes:
        for _ in range(int(rng.integers(6, 12))):
            nparts = 1 if rng.uniform() < 0.7 else int(rng.integers(2, 5))
            parts = [polygon(rng, KINDS[int(rng.integers(len(KINDS)))], h, w) for _ in range(nparts)]
            for p in parts:
                coords += p
                coord_off.append(len(coords))
                part_str.add(mu.frPyObjects([p], h, w)[0]["counts"])
            part_off.append(len(coord_off) - 1)
            r = ann_to_rle(parts, h, w)
            m = mu.decode(r)
            yy, xx = np.nonzero(m)
            size.append([h, w])
            full_str.add(r["counts"])
            area.append(int(mu.area(r)))
            bbox.append(mu.toBbox(r).tolist())
            ext.append(extent(parts))
            dsum.append(int(m.sum()))
            dwsum.append(int((yy.astype(np.int64) * w + xx).sum()))
            rles.append(r)
        group_off.append(len(rles))
    n = len(rles)
    t["poly.size"] = np.array(size, dtype=np.int64)
    t["poly.part_off"] = np.array(part_off, dtype=np.int64)
    t["poly.coord_off"] = np.array(coord_off, dtype=np.int64)
    t["poly.coords"] = np.array(coords, dtype=np.float64)
    part_str.put(t, "poly.part_str")
    full_str.put(t, "poly.str")
    t["poly.area"] = np.array(area, dtype=np.int64)
    t["poly.bbox"] = np.array(bbox, dtype=np.float64)
    t["poly.extent"] = np.array(ext, dtype=np.float64)
    t["poly.dsum"] = np.array(dsum, dtype=np.int64)
    t["poly.dwsum"] = np.array(dwsum, dtype=np.int64)
    t["poly.group_off"] = np.array(group_off, dtype=np.int64)

    # ---- merges of pairs within a group (and each case with itself) ----
    pairs, uni, inter, uarea, iarea = [], Strings(), Strings(), [], []
    for g in range(len(sizes)):
        lo, hi = group_off[g], group_off[g + 1]
        for i in range(lo, hi):
            j = i + 1 if i + 1 < hi else i
            for intersect, s, ar in ((0, uni, uarea), (1, inter, iarea)):
                r = mu.merge([rles[i], rles[j]], intersect=intersect)
                s.add(r["counts"])
                ar.append(int(mu.area(r)))
            pairs.append([i, j])
    t["merge.pairs"] = np.array(pairs, dtype=np.int64)
    uni.put(t, "merge.union")
    inter.put(t, "merge.inter")
    t["merge.union_area"] = np.array(uarea, dtype=np.int64)
    t["merge.inter_area"] = np.array(iarea, dtype=np.int64)

    # ---- IoU within each group, some references crowd ----
    crowd = (rng.uniform(size=n) < 0.25).astype(np.uint8)
    vals = []
    for g in range(len(sizes)):
        lo, hi = group_off[g], group_off[g + 1]
        o = mu.iou(rles[lo:hi], rles[lo:hi], crowd[lo:hi].tolist())
        vals += np.asarray(o, dtype=np.float64).ravel().tolist()
    t["iou.crowd"] = crowd.astype(np.int64)
    t["iou.values"] = np.array(vals, dtype=np.float64)

    # ---- uncompressed RLEs, with zero-length runs pycocotools keeps ----
    uc = [(4, 4, [5, 0, 3, 2, 6]), (4, 4, [16, 0]), (4, 4, [0, 16]), (4, 4, [3, 2, 0, 0, 11]),
          (4, 4, [2, 3, 0, 4, 7]), (4, 4, [16]), (3, 5, [0, 0, 0, 15]), (3, 5, [2, 7, 6]),
          (1, 9, [1, 1, 1, 1, 1, 1, 1, 1, 1]), (9, 1, [0, 9]), (2, 2, [1, 0, 0, 0, 3, 0])]
    for _ in range(40):
        h, w = int(rng.integers(1, 40)), int(rng.integers(1, 40))
        cuts = np.sort(rng.integers(0, h * w + 1, int(rng.integers(0, 12))))
        c = np.diff(np.concatenate([[0], cuts, [h * w]])).tolist()
        uc.append((h, w, c))
    usize, ucnt, ustr, uarea, ubox = [], [], Strings(), [], []
    uoff = [0]
    for h, w, c in uc:
        r = mu.frPyObjects({"size": [h, w], "counts": c}, h, w)
        usize.append([h, w])
        ucnt += c
        uoff.append(len(ucnt))
        ustr.add(r["counts"])
        uarea.append(int(mu.area(r)))
        ubox.append(mu.toBbox(r).tolist())
    t["ucrle.size"] = np.array(usize, dtype=np.int64)
    t["ucrle.counts"] = np.array(ucnt, dtype=np.int64)
    t["ucrle.counts_off"] = np.array(uoff, dtype=np.int64)
    ustr.put(t, "ucrle.str")
    t["ucrle.area"] = np.array(uarea, dtype=np.int64)
    t["ucrle.bbox"] = np.array(ubox, dtype=np.float64)

    # ---- dense masks through encode ----
    dsize, pix, doff, dstr = [], [], [0], Strings()
    for i in range(40):
        h, w = int(rng.integers(1, 33)), int(rng.integers(1, 33))
        p = [0.0, 0.05, 0.5, 0.95, 1.0][i % 5]
        m = (rng.uniform(size=(h, w)) < p).astype(np.uint8)
        if i % 7 == 3:  # blocky masks: long runs crossing columns
            m = np.zeros((h, w), np.uint8)
            m[rng.integers(0, h):, rng.integers(0, w):] = 1
        dsize.append([h, w])
        pix += m.ravel().tolist()  # row-major
        doff.append(len(pix))
        dstr.add(mu.encode(np.asfortranarray(m))["counts"])
    t["dense.size"] = np.array(dsize, dtype=np.int64)
    t["dense.pix"] = np.array(pix, dtype=np.uint8)
    t["dense.pix_off"] = np.array(doff, dtype=np.int64)
    dstr.put(t, "dense.str")

    # ---- the shared COCO fixture's annotations and results ----
    md = safe_open(a.shared_coco_eval, "np").metadata()
    gt, dt = json.loads(md["gt"]), json.loads(md["dt"])
    imgs = {im["id"]: im for im in gt["images"]}
    gid, gstr, garea, gbox, gext = [], Strings(), [], [], []
    gcoords, gcoord_off, gpart_off = [], [0], [0]
    for ann in gt["annotations"]:
        im = imgs[ann["image_id"]]
        h, w = im["height"], im["width"]
        seg = ann["segmentation"]
        assert isinstance(seg, list), "only polygon gt in the shared fixture (notes say RLE crowd too)"
        r = ann_to_rle(seg, h, w)
        for p in seg:  # the coordinates exactly as Python's json parsed them
            gcoords += [float(v) for v in p]
            gcoord_off.append(len(gcoords))
        gpart_off.append(len(gcoord_off) - 1)
        gid.append(ann["id"])
        gstr.add(r["counts"])
        garea.append(int(mu.area(r)))
        gbox.append(mu.toBbox(r).tolist())
        gext.append(extent(seg))
        # The file's own fields are pycocotools' values (checked here, asserted in Rust too).
        assert ann["area"] == garea[-1] and ann["bbox"] == gbox[-1], ann["id"]
    t["gt.ann_id"] = np.array(gid, dtype=np.int64)
    t["gt.coords"] = np.array(gcoords, dtype=np.float64)
    t["gt.coord_off"] = np.array(gcoord_off, dtype=np.int64)
    t["gt.part_off"] = np.array(gpart_off, dtype=np.int64)
    gstr.put(t, "gt.str")
    t["gt.area"] = np.array(garea, dtype=np.int64)
    t["gt.bbox"] = np.array(gbox, dtype=np.float64)
    t["gt.extent"] = np.array(gext, dtype=np.float64)
    t["dt.area"] = np.array([int(mu.area(d["segmentation"])) for d in dt], dtype=np.int64)
    t["dt.bbox"] = np.array([mu.toBbox(d["segmentation"]).tolist() for d in dt], dtype=np.float64)

    meta = {
        "kind": "masks",
        "reference": f"pycocotools {PYCOCOTOOLS_VERSION}, numpy {np.__version__}",
        "script": "tools/reference/make_masks_fixture.py",
        "seed": str(a.seed),
        "cases": json.dumps({"poly": n, "groups": len(sizes), "parts": len(coord_off) - 1,
                             "merge": len(pairs), "iou": len(vals), "ucrle": len(uc), "dense": len(dsize),
                             "gt": len(gid), "dt": len(dt)}),
    }
    save_file(t, a.out, metadata=meta)
    print(meta)


if __name__ == "__main__":
    main()
