"""Reference for ed-validate's filled fields: a COCO file with masks (polygons, several
parts, compressed and plain RLE, crowd) but no bbox/area, and what pycocotools says they
are: polygon extent (COCO's bbox convention for polygons), toBbox for RLE, area of the
rasterised mask (annToRLE + area). Writes tests/fixtures/validate-fill.json.

    /work/pyref/bin/python tools/reference/make_validate_fixture.py
"""
import json
import pathlib

import numpy as np
from importlib.metadata import version
from pycocotools import mask as mu

rng = np.random.default_rng(7)
images, anns, expect = [], [], {}
aid = 1
for iid, (h, w) in enumerate([(480, 640), (37, 53), (200, 120), (1, 9)], start=1):
    images.append({"id": iid, "file_name": f"im{iid}.jpg", "width": w, "height": h})
    for k in range(12):
        kind = k % 4
        if kind in (0, 1):  # polygon, one or two parts, float coords, some outside
            parts = []
            for _ in range(1 + kind):
                n = int(rng.integers(3, 9))
                cx, cy = rng.uniform(0, w), rng.uniform(0, h)
                r = rng.uniform(0.3, max(w, h) / 3)
                ang = np.sort(rng.uniform(0, 2 * np.pi, n))
                xs = cx + r * np.cos(ang) * rng.uniform(0.5, 1.2, n)
                ys = cy + r * np.sin(ang) * rng.uniform(0.5, 1.2, n)
                xs = np.clip(xs, -2, w + 2)
                ys = np.clip(ys, -2, h + 2)
                parts.append([round(float(v), 3) for xy in zip(xs, ys) for v in xy])
            seg = parts
            rle = mu.merge(mu.frPyObjects(parts, h, w))
            xs = [v for p in parts for v in p[0::2]]
            ys = [v for p in parts for v in p[1::2]]
            bbox = [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)]
        else:  # RLE of a random blob, compressed (2) or plain counts (3)
            m = np.zeros((h, w), dtype=np.uint8, order="F")
            y0, x0 = int(rng.integers(0, h)), int(rng.integers(0, w))
            m[y0 : y0 + int(rng.integers(1, h + 1)), x0 : x0 + int(rng.integers(1, w + 1))] = 1
            m[rng.random((h, w)) < 0.003] ^= 1
            rle = mu.encode(np.asfortranarray(m))
            if kind == 2:
                seg = {"size": [h, w], "counts": rle["counts"].decode()}
            else:
                flat = m.flatten(order="F")
                counts, cur, run = [], 0, 0
                for v in flat:
                    if v != cur:
                        counts.append(run)
                        cur, run = v, 0
                    run += 1
                counts.append(run)
                seg = {"size": [h, w], "counts": counts}
                rle = mu.frPyObjects(seg, h, w)
            bbox = [float(v) for v in mu.toBbox(rle)]
        area = float(mu.area(rle))
        if bbox[2] <= 0 or bbox[3] <= 0 or area == 0:
            continue  # degenerate or empty: validation rejects it (tested separately)
        anns.append({"id": aid, "image_id": iid, "category_id": 1 + k % 3,
                     "segmentation": seg, "iscrowd": int(kind == 3)})
        expect[str(aid)] = {"bbox": bbox, "area": area}
        aid += 1

out = {
    "reference": f"pycocotools {version('pycocotools')}",
    "input": {"images": images, "annotations": anns,
              "categories": [{"id": i, "name": f"c{i}"} for i in (1, 2, 3)]},
    "expect": expect,
}
path = pathlib.Path(__file__).resolve().parents[2] / "tests/fixtures/validate-fill.json"
path.write_text(json.dumps(out))
print(f"wrote {path}: {len(anns)} annotations")
