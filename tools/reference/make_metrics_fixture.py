#!/usr/bin/env python3
"""Write tests/fixtures/metrics-ultralytics.safetensors: ultralytics 8.4.190's own validation
metrics on seeded random detections, which tests/eval_metrics.rs must reproduce
(src/eval/metrics).

Each dataset `d{k}` is a list of images with ground truth (xyxy boxes, class, mask) and
predictions (xyxy box, class, float32 confidence, mask). The data has several classes, a
class with ground truth but no predictions, a class with predictions but no ground truth,
images with no ground truth, no predictions or neither, duplicated boxes (IoU ties),
quantised confidences (score ties, within and across images) and empty masks. d2 has
predictions but no ground truth at all, d3 ground truth but no predictions.

What ultralytics computes, and how it is called here:
  * box tp [D,10]: DetectionValidator._process_batch (box_iou in float32 + match_predictions,
    greedy, scipy off), called per image on predictions sorted by descending confidence
    with a *stable* sort (NMS hands the validator sorted predictions); stored back in the
    original prediction order.
  * mask tp_m [D,10]: match_predictions on pycocotools' maskUtils.iou (float64, the mask IoU
    src/eval uses) instead of ultralytics' float32 mask_iou with eps.
  * ap_per_class + Metric (p, r, f1 at the max-F1 confidence, tp/fp counts, AP [nc,10],
    mp, mr, mAP50, mAP75, mAP50-95, maps, fitness, PR / P / R / F1 curves), box and mask.
    ap_per_class sorts with np.argsort(-conf), which is not stable: tied confidences end
    up in an order that depends on numpy's SIMD sort. The reference is therefore computed
    on the concatenated stats pre-sorted with a *stable* sort (asserted: numpy's argsort
    then leaves them as they are), which is the order src/eval uses; the result of
    SegmentMetrics.process on the raw concatenation is compared and the largest
    difference recorded in the metadata (`raw_order_maxdiff_*`).
  * per-image metrics: Metric.update_image_metrics (precision, recall, f1, tp, fp, fn).
  * ConfusionMatrix.process_batch per image, with its defaults (conf 0.25, iou 0.45) and
    with the validator's conf 0.001.
  * pycocotools maskUtils.iou on xywh boxes with crowd flags (`cocobox.*`).

Curves are stored at every 10th confidence/recall point plus the last (`curve_idx`) to keep
the file small; the smoothed mean F1 curve's argmax (`best`) is stored as an index.

Usage: make_metrics_fixture.py OUT.safetensors [--seed N]
"""
import argparse

import numpy as np
import torch
import ultralytics
from pycocotools import mask as mu
from safetensors.numpy import save_file
from ultralytics.models.yolo.detect.val import DetectionValidator
from ultralytics.utils.metrics import ConfusionMatrix, Metric, SegmentMetrics, ap_per_class, box_iou, smooth

CURVE_IDX = np.array(list(range(0, 1000, 10)) + [999], dtype=np.int64)


def make_validator():
    """A DetectionValidator with only what _process_batch / match_predictions use."""
    v = object.__new__(DetectionValidator)
    v.iouv = torch.linspace(0.5, 0.95, 10)
    v.niou = v.iouv.numel()
    return v


def raster(box, h, w, rng):
    """An ellipse or a rectangle inside an xyxy box, clipped to the h×w image."""
    x0, y0, x1, y1 = box
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64) + 0.5
    if rng.random() < 0.5:
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        rx, ry = max((x1 - x0) / 2, 0.3), max((y1 - y0) / 2, 0.3)
        m = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1.0
    else:
        m = (xx >= x0) & (xx < x1) & (yy >= y0) & (yy < y1)
    return m.astype(np.uint8)


def rand_box(rng, h, w):
    x0, y0 = rng.uniform(-3, w - 2), rng.uniform(-3, h - 2)
    bw, bh = rng.uniform(1, w / 2), rng.uniform(1, h / 2)
    return [x0, y0, x0 + bw, y0 + bh]


def make_dataset(rng, n_img, nc, h, w, gt_classes, pred_classes, no_gt=False, no_pred=False):
    images = []
    for i in range(n_img):
        kind = rng.random()
        n_gt = 0 if (no_gt or kind < 0.12) else int(rng.integers(1, 7))
        gt_b, gt_c = [], []
        for _ in range(n_gt):
            if gt_b and rng.random() < 0.15:  # an exact duplicate: IoU ties
                gt_b.append(list(gt_b[-1]))
                gt_c.append(gt_c[-1])
                continue
            gt_b.append(rand_box(rng, h, w))
            gt_c.append(int(rng.choice(gt_classes)))
        dt_b, dt_c = [], []
        if not no_pred and not (0.12 <= kind < 0.22):
            for b, c in zip(gt_b, gt_c):  # noisy copies of the ground truth
                for _ in range(int(rng.integers(0, 3))):
                    s = rng.uniform(0.0, 0.3) * np.array([b[2] - b[0], b[3] - b[1]] * 2)
                    nb = list(np.array(b) + rng.normal(0, 1, 4) * s)
                    nb = [min(nb[0], nb[2]), min(nb[1], nb[3]), max(nb[0], nb[2]), max(nb[1], nb[3])]
                    cc = c if rng.random() < 0.8 else int(rng.choice(pred_classes))
                    if cc not in pred_classes:
                        cc = int(rng.choice(pred_classes))
                    dt_b.append(nb)
                    dt_c.append(cc)
            for _ in range(int(rng.integers(0, 4))):  # false positives
                dt_b.append(rand_box(rng, h, w))
                dt_c.append(int(rng.choice(pred_classes)))
            if dt_b and rng.random() < 0.2:  # a duplicated prediction
                dt_b.append(list(dt_b[0]))
                dt_c.append(dt_c[0])
        n_dt = len(dt_b)
        conf = rng.uniform(0.001, 1.0, n_dt)
        tie = rng.random(n_dt) < 0.35
        conf[tie] = np.round(conf[tie] * 8) / 8 + 0.01  # ties within and across images
        conf = conf.astype(np.float32)
        gt_m = [raster(b, h, w, rng) for b in gt_b]
        dt_m = [raster(b, h, w, rng) for b in dt_b]
        for m in gt_m + dt_m:  # some empty masks
            if rng.random() < 0.04:
                m[:] = 0
        images.append(dict(gt_b=gt_b, gt_c=gt_c, gt_m=gt_m, dt_b=dt_b, dt_c=dt_c, conf=conf, dt_m=dt_m))
    return images


def rles(masks, h, w):
    if not masks:
        return []
    return mu.encode(np.asfortranarray(np.stack(masks).transpose(1, 2, 0)))


def metric_tables(prefix, results, nc, out):
    """results: ap_per_class(...) output; stores what Metric derives from it."""
    tp, fp, p, r, f1, ap, classes, p_curve, r_curve, f1_curve, px, prec_values = results
    m = Metric()
    m.nc = nc
    m.update(results[2:])
    out[f"{prefix}.classes"] = classes.astype(np.int64)
    out[f"{prefix}.tp"] = tp.astype(np.float64)
    out[f"{prefix}.fp"] = fp.astype(np.float64)
    out[f"{prefix}.p"] = p.astype(np.float64)
    out[f"{prefix}.r"] = r.astype(np.float64)
    out[f"{prefix}.f1"] = f1.astype(np.float64)
    out[f"{prefix}.ap"] = ap.astype(np.float64).reshape(-1, 10)
    out[f"{prefix}.ap50"] = np.asarray(m.ap50, dtype=np.float64)
    out[f"{prefix}.ap5095"] = np.asarray(m.ap, dtype=np.float64)
    out[f"{prefix}.means"] = np.array([m.mp, m.mr, m.map50, m.map75, m.map, m.fitness()], dtype=np.float64)
    out[f"{prefix}.maps"] = m.maps.astype(np.float64)
    out[f"{prefix}.px"] = px[CURVE_IDX]
    for name, c in [("p_curve", p_curve), ("r_curve", r_curve), ("f1_curve", f1_curve), ("prec", prec_values)]:
        out[f"{prefix}.{name}"] = np.ascontiguousarray(c[:, CURVE_IDX]).astype(np.float64)
    nu = len(classes)
    if nu:
        mean = f1_curve.mean(0)
        out[f"{prefix}.f1_mean"] = mean[CURVE_IDX]
        out[f"{prefix}.f1_smooth"] = smooth(mean, 0.1)[CURVE_IDX]
        out[f"{prefix}.best"] = np.array([smooth(mean, 0.1).argmax()], dtype=np.int64)
    else:
        out[f"{prefix}.best"] = np.array([0], dtype=np.int64)


def run_dataset(key, images, nc, h, w, out, meta):
    v = make_validator()
    names = {i: f"c{i}" for i in range(nc)}
    pre = f"d{key}"
    # inputs
    out[f"{pre}.nc"] = np.array([nc], dtype=np.int64)
    out[f"{pre}.hw"] = np.array([h, w], dtype=np.int64)
    out[f"{pre}.gt.off"] = np.cumsum([0] + [len(im["gt_b"]) for im in images]).astype(np.int64)
    out[f"{pre}.dt.off"] = np.cumsum([0] + [len(im["dt_b"]) for im in images]).astype(np.int64)
    cat = lambda k, shape, dt: (
        np.concatenate([np.asarray(im[k], dtype=dt).reshape(shape) for im in images]).astype(dt)
    )
    out[f"{pre}.gt.boxes"] = cat("gt_b", (-1, 4), np.float64)
    out[f"{pre}.gt.cls"] = cat("gt_c", (-1,), np.int64)
    out[f"{pre}.dt.boxes"] = cat("dt_b", (-1, 4), np.float64)
    out[f"{pre}.dt.cls"] = cat("dt_c", (-1,), np.int64)
    out[f"{pre}.dt.conf"] = cat("conf", (-1,), np.float32)
    pack = lambda ms: np.stack([np.packbits(m.reshape(-1)) for m in ms]) if ms else np.zeros((0, (h * w + 7) // 8), np.uint8)
    out[f"{pre}.gt.masks"] = pack([m for im in images for m in im["gt_m"]])
    out[f"{pre}.dt.masks"] = pack([m for im in images for m in im["dt_m"]])

    seg = SegmentMetrics(names)
    stats = {k: [] for k in ("tp", "tp_m", "conf", "pred_cls", "target_cls", "target_img")}
    cm_default, cm_val = ConfusionMatrix(names), ConfusionMatrix(names)
    ious, tp_orig, tpm_orig, img_box, img_mask = [], [], [], [], []
    for i, im in enumerate(images):
        order = np.argsort(-im["conf"], kind="stable")  # NMS output order
        dt_b = torch.tensor(np.asarray(im["dt_b"], dtype=np.float64).reshape(-1, 4)[order]).float()
        dt_c = torch.tensor(np.asarray(im["dt_c"], dtype=np.float64).reshape(-1)[order]).float()
        conf = torch.from_numpy(im["conf"][order].copy())
        gt_b = torch.tensor(np.asarray(im["gt_b"], dtype=np.float64).reshape(-1, 4)).float()
        gt_c = torch.tensor(np.asarray(im["gt_c"], dtype=np.float64).reshape(-1)).float()
        preds = {"bboxes": dt_b, "cls": dt_c, "conf": conf}
        batch = {"bboxes": gt_b, "cls": gt_c}
        ious.append(box_iou(gt_b, dt_b).numpy().reshape(-1))
        tp = DetectionValidator._process_batch(v, preds, batch)["tp"]
        # mask tp: pycocotools IoU [dt, gt] transposed to ultralytics' [gt, dt]
        dr = rles([im["dt_m"][j] for j in order], h, w)
        gr = rles(im["gt_m"], h, w)
        if len(gr) and len(dr):
            miou = torch.from_numpy(np.asarray(mu.iou(dr, gr, [0] * len(gr)), dtype=np.float64).T.copy())
            tp_m = v.match_predictions(dt_c, gt_c, miou).numpy()
        else:
            tp_m = np.zeros((len(dr), 10), dtype=bool)
        inv = np.argsort(order)
        tp_orig.append(tp[inv])
        tpm_orig.append(tp_m[inv])
        st = {
            "tp": tp,
            "tp_m": tp_m,
            "target_cls": gt_c.numpy(),
            "target_img": np.unique(gt_c.numpy()),
            "conf": np.zeros(0) if len(conf) == 0 else conf.numpy(),
            "pred_cls": np.zeros(0) if len(conf) == 0 else dt_c.numpy(),
            "im_name": f"img{i}",
        }
        seg.update_stats(st)
        for k in stats:
            stats[k].append(st[k])
        cm_default.process_batch(preds, batch)
        cm_val.process_batch(preds, batch, conf=0.001)
        for src, dst in ((seg.box, img_box), (seg.seg, img_mask)):
            r = src.image_metrics[f"img{i}"]
            dst.append([r["precision"], r["recall"], r["f1"], r["tp"], r["fp"], r["fn"]])

    out[f"{pre}.box_iou"] = np.concatenate(ious).astype(np.float32) if ious else np.zeros(0, np.float32)
    out[f"{pre}.tp"] = np.concatenate(tp_orig).astype(np.uint8).reshape(-1, 10)
    out[f"{pre}.tp_m"] = np.concatenate(tpm_orig).astype(np.uint8).reshape(-1, 10)
    out[f"{pre}.img.box"] = np.asarray(img_box, dtype=np.float64)
    out[f"{pre}.img.mask"] = np.asarray(img_mask, dtype=np.float64)
    out[f"{pre}.cm.default"] = cm_default.matrix.astype(np.int64)
    out[f"{pre}.cm.val"] = cm_val.matrix.astype(np.int64)

    # ap_per_class on stably pre-sorted stats (the order src/eval uses)
    cat2 = {k: np.concatenate(v, 0) for k, v in stats.items()}
    s = np.argsort(-cat2["conf"], kind="stable")
    assert np.array_equal(np.argsort(-cat2["conf"][s]), np.arange(len(s))), "numpy reorders sorted ties"
    for name, tpk in (("box", "tp"), ("mask", "tp_m")):
        res = ap_per_class(cat2[tpk][s], cat2["conf"][s], cat2["pred_cls"][s], cat2["target_cls"])
        metric_tables(f"{pre}.{name}", res, nc, out)
    # the same through SegmentMetrics on the raw concatenation (numpy's own tie order)
    seg.process()
    for name, m in (("box", seg.box), ("mask", seg.seg)):
        ref = out[f"{pre}.{name}.ap"]
        d = float(np.abs(np.asarray(m.all_ap).reshape(-1, 10) - ref).max()) if ref.size else 0.0
        d = max(d, float(np.abs(np.array([m.mp, m.mr, m.map50, m.map]) - out[f"{pre}.{name}.means"][[0, 1, 2, 4]]).max()))
        meta[f"raw_order_maxdiff_{pre}_{name}"] = repr(d)
    out[f"{pre}.nt_per_class"] = seg.nt_per_class.astype(np.int64)
    out[f"{pre}.nt_per_image"] = seg.nt_per_image.astype(np.int64)


def coco_boxes(rng, out):
    """pycocotools' bbox IoU (xywh) with crowd flags, including touching and empty boxes."""
    n, m = 17, 13
    dt = np.column_stack([rng.uniform(0, 50, (n, 2)), rng.uniform(0, 25, (n, 2))])
    gt = np.column_stack([rng.uniform(0, 50, (m, 2)), rng.uniform(0, 25, (m, 2))])
    gt[0] = [10, 10, 5, 5]
    dt[0] = [15, 10, 5, 5]  # touches gt 0: IoU 0
    dt[1] = [10, 10, 0, 5]  # zero width
    dt[2] = gt[3]  # identical
    crowd = (rng.random(m) < 0.3).astype(np.uint8)
    out["cocobox.dt"] = dt
    out["cocobox.gt"] = gt
    out["cocobox.crowd"] = crowd
    out["cocobox.iou"] = np.asarray(mu.iou(dt.tolist(), gt.tolist(), crowd.tolist()), dtype=np.float64)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    out, meta = {}, {}
    specs = [
        # key, images, nc, h, w, gt classes, pred classes, no_gt, no_pred
        (0, 30, 6, 40, 56, [0, 1, 2, 3, 4], [0, 1, 2, 3, 5], False, False),
        (1, 22, 3, 30, 70, [0, 1, 2], [0, 1, 2], False, False),
        (2, 5, 2, 16, 20, [0, 1], [0, 1], True, False),
        (3, 5, 2, 16, 20, [0, 1], [0, 1], False, True),
    ]
    for key, n_img, nc, h, w, gc, pc, no_gt, no_pred in specs:
        images = make_dataset(rng, n_img, nc, h, w, gc, pc, no_gt, no_pred)
        run_dataset(key, images, nc, h, w, out, meta)
    coco_boxes(rng, out)
    out["curve_idx"] = CURVE_IDX
    meta.update(
        ultralytics=ultralytics.__version__,
        numpy=np.__version__,
        torch=torch.__version__,
        seed=str(a.seed),
        datasets=str(len(specs)),
        script="tools/reference/make_metrics_fixture.py",
    )
    save_file({k: np.ascontiguousarray(v) for k, v in out.items()}, a.out, metadata=meta)
    print(a.out, {k: v for k, v in meta.items() if k.startswith("raw")})


if __name__ == "__main__":
    main()
