"""YOLO -> COCO conversion benchmark: `ed-convert --from yolo` against a straightforward
Python conversion (PIL reads the header only: `Image.open(p).size` + EXIF orientation,
lines parsed with str.split, json.dump), on the same generated data in the same run.

    python convert_bench.py gen --out DIR [--n 10000] [--seed 0]
    python convert_bench.py convert --images D --labels D --classes F --out coco.json
    python convert_bench.py bench --ed target/release/ed-convert [--n 10000] [--runs 5]
                                  [--cpus 0,1] [--dir DIR]

`bench` generates the data (unless DIR already holds it), runs each side once to warm
the page cache, then alternates timed runs of both, pinned to the same CPUs
(`taskset -c`, and `--threads` = number of CPUs for ed-convert), and prints the medians,
their ratio and a check that both outputs agree (sizes, boxes, polygons).

Dev-time only (tests never run Python). Needs pillow.
"""
import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time

from PIL import Image

EXTS = (".jpg", ".jpeg", ".png", ".bmp")


def gen(out, n, seed):
    """n small labelled images (64x48, 3/4 jpg, 1/4 png; every 50th jpg carries EXIF
    orientation 6), 1-5 label lines each, about a third of them polygons."""
    rng = random.Random(seed)
    os.makedirs(f"{out}/images", exist_ok=True)
    os.makedirs(f"{out}/labels", exist_ok=True)
    names = ["person", "car", "dog", "cat", "bicycle"]
    with open(f"{out}/names.txt", "w") as f:
        f.write("".join(n + "\n" for n in names))
    base = Image.new("RGB", (64, 48))
    base.putdata([(x * 4, y * 5, (x * y) % 256) for y in range(48) for x in range(64)])
    exif = Image.Exif()
    exif[274] = 6
    for i in range(n):
        stem = f"img_{i:06d}"
        if i % 4 == 3:
            base.save(f"{out}/images/{stem}.png")
        elif i % 50 == 0:
            base.save(f"{out}/images/{stem}.jpg", quality=80, exif=exif.tobytes())
        else:
            base.save(f"{out}/images/{stem}.jpg", quality=80)
        lines = []
        for _ in range(rng.randint(1, 5)):
            c = rng.randrange(len(names))
            if rng.random() < 0.35:
                k = rng.randint(3, 12)
                pts = " ".join(f"{rng.random():.6f} {rng.random():.6f}" for _ in range(k))
                lines.append(f"{c} {pts}")
            else:
                w, h = rng.uniform(0.05, 0.5), rng.uniform(0.05, 0.5)
                cx, cy = rng.uniform(w / 2, 1 - w / 2), rng.uniform(h / 2, 1 - h / 2)
                lines.append(f"{c} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}")
        with open(f"{out}/labels/{stem}.txt", "w") as f:
            f.write("\n".join(lines) + "\n")


def exif_size(im):
    """Displayed size: swap for orientations 5-8 (ultralytics' exif_size swaps for 6 and 8
    only; 5 and 7 are the mirrored quarter turns, displayed turned as well)."""
    w, h = im.size
    try:
        o = im.getexif().get(274, 1)
    except Exception:
        o = 1
    return (h, w) if o in (5, 6, 7, 8) else (w, h)


def convert(images, labels, classes, out):
    names = [l.strip() for l in open(classes) if l.strip()]
    files = sorted(
        os.path.relpath(os.path.join(d, f), images)
        for d, _, fs in os.walk(images)
        for f in fs
        if f.lower().endswith(EXTS)
    )
    coco = {"images": [], "annotations": [], "categories": []}
    skipped = 0
    for rel in files:
        with Image.open(os.path.join(images, rel)) as im:
            w, h = exif_size(im)
        img_id = len(coco["images"]) + 1
        coco["images"].append({"id": img_id, "file_name": rel, "width": w, "height": h})
        lbl = os.path.join(labels, os.path.splitext(rel)[0] + ".txt")
        if not os.path.exists(lbl):
            continue
        with open(lbl) as f:
            for line in f:
                t = line.split()
                if not t:
                    continue
                try:
                    c, v = int(t[0]), [float(x) for x in t[1:]]
                except ValueError:
                    skipped += 1
                    continue
                if c >= len(names) or not all(0 <= x <= 1 for x in v):
                    skipped += 1
                    continue
                ann = {"id": len(coco["annotations"]) + 1, "image_id": img_id,
                       "category_id": c + 1, "iscrowd": 0}
                if len(v) == 4:
                    cx, cy, bw, bh = v
                    ann["bbox"] = [(cx - bw / 2) * w, (cy - bh / 2) * h, bw * w, bh * h]
                    ann["area"] = bw * w * bh * h
                elif len(v) >= 6 and len(v) % 2 == 0:
                    xs, ys = v[0::2], v[1::2]
                    ann["bbox"] = [min(xs) * w, min(ys) * h,
                                   (max(xs) - min(xs)) * w, (max(ys) - min(ys)) * h]
                    ann["segmentation"] = [[p * (w if i % 2 == 0 else h) for i, p in enumerate(v)]]
                else:
                    skipped += 1
                    continue
                coco["annotations"].append(ann)
    coco["categories"] = [{"id": i + 1, "name": n} for i, n in enumerate(names)]
    with open(out, "w") as f:
        json.dump(coco, f)
    print(f"images {len(coco['images'])} annotations {len(coco['annotations'])} skipped {skipped}")


def compare(ours, ref):
    a, b = json.load(open(ours)), json.load(open(ref))
    assert len(a["images"]) == len(b["images"]), "image counts differ"
    assert len(a["annotations"]) == len(b["annotations"]), "annotation counts differ"
    for x, y in zip(a["images"], b["images"]):
        assert (x["file_name"], x["width"], x["height"]) == (y["file_name"], y["width"], y["height"]), (x, y)
    worst = 0.0
    for x, y in zip(a["annotations"], b["annotations"]):
        assert (x["image_id"], x["category_id"]) == (y["image_id"], y["category_id"]), (x, y)
        vals = list(zip(x["bbox"], y["bbox"]))
        if "segmentation" in y:
            vals += list(zip(x["segmentation"][0], y["segmentation"][0]))
        for p, q in vals:
            worst = max(worst, abs(p - q) / max(abs(q), 1e-9))
    return len(a["images"]), len(a["annotations"]), worst


def bench(a):
    d = a.dir or f"/tmp/ed-convert-bench-{a.n}"
    if not os.path.exists(f"{d}/names.txt"):
        t = time.time()
        gen(d, a.n, 0)
        print(f"generated {a.n} images in {time.time() - t:.1f} s under {d}")
    ncpu = len(a.cpus.split(","))
    pin = ["taskset", "-c", a.cpus]
    io = ["--images", f"{d}/images", "--labels", f"{d}/labels", "--classes", f"{d}/names.txt"]
    ours = pin + [a.ed, "--from", "yolo"] + io + ["--out", f"{d}/ours.json", "--threads", str(ncpu), "--quiet"]
    ref = pin + [sys.executable, os.path.abspath(__file__), "convert"] + io + ["--out", f"{d}/ref.json"]
    env = dict(os.environ, RAYON_NUM_THREADS=str(ncpu))

    def timed(cmd):
        t = time.perf_counter()
        subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
        return time.perf_counter() - t

    timed(ours), timed(ref)  # warm the page cache
    to, tr = [], []
    for _ in range(a.runs):
        to.append(timed(ours))
        tr.append(timed(ref))
    n_img, n_ann, worst = compare(f"{d}/ours.json", f"{d}/ref.json")
    mo, mr = statistics.median(to), statistics.median(tr)
    print(f"data: {n_img} images, {n_ann} annotations; outputs agree (max rel diff {worst:.1e})")
    print(f"cpus {a.cpus}, {a.runs} runs each, wall time of the whole process")
    print(f"ed-convert : median {mo:.3f} s  min {min(to):.3f} s  runs {[round(t, 3) for t in to]}")
    print(f"python/PIL : median {mr:.3f} s  min {min(tr):.3f} s  runs {[round(t, 3) for t in tr]}")
    print(f"ratio (ours/python): {mo / mr:.3f}  ({mr / mo:.1f}x faster)")


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("gen")
    g.add_argument("--out", required=True)
    g.add_argument("--n", type=int, default=10000)
    g.add_argument("--seed", type=int, default=0)
    c = sub.add_parser("convert")
    for k in ("images", "labels", "classes", "out"):
        c.add_argument(f"--{k}", required=True)
    b = sub.add_parser("bench")
    b.add_argument("--ed", required=True)
    b.add_argument("--n", type=int, default=10000)
    b.add_argument("--runs", type=int, default=5)
    b.add_argument("--cpus", default="0,1")
    b.add_argument("--dir")
    a = p.parse_args()
    if a.cmd == "gen":
        gen(a.out, a.n, a.seed)
    elif a.cmd == "convert":
        convert(a.images, a.labels, a.classes, a.out)
    else:
        bench(a)


if __name__ == "__main__":
    main()
