#!/usr/bin/env python3
"""Write the `preprocess` parity fixture (shared/FIXTURES.md layout) for
src/data/preprocess: ultralytics LetterBox, transformers SamImageProcessor and
GroundingDinoImageProcessor run on small seeded noise images.

Noise is the hardest input for a resampler: every pixel exercises the rounding.

Tensors
  inputs.<image>                 u8 [H, W, 3] RGB, the exact pixels both sides use
  inputs.<case>.boxes            f32 [N, 4] boxes given to the reference's box mapping
  outputs.<case>.placement       i64 [8] orig_w, orig_h, new_w, new_h, left, top, input_w, input_h
  outputs.<case>.u8_rows         u8 [R, W, 3] rows 0, s, 2s, ... of the u8 image before /255 or
                                 normalisation (letterbox: padded; SAM/GDINO: resized, unpadded)
  outputs.<case>.u8_checksum     i64 [3, 2] per channel over the whole u8 image:
                                 sum(v) and sum(v * ((y*W + x) % 65521 + 1))
  outputs.<case>.pixel_values_rows  f32 [3, R2, W] rows 0, s2, ... of the model input tensor
  outputs.<case>.pixel_values_sums  f64 [3, 2] per channel sum and sum of squares of the input
  outputs.<case>.pixel_mask_sum  i64 [1] (Grounding DINO only)
  outputs.<case>.boxes           f32 [N, 4] the reference's mapping of inputs.<case>.boxes

Why rows and checksums: a 1024x1024x3 f32 SAM input is 12 MB; the fixture must stay small.
Cases with small configs (`size` 64, `longest_edge` 96, ...) store every u8 row and every third
f32 row; the
default-size cases store strided rows plus whole-image checksums, which change if any u8 pixel
differs (the position weight catches swapped pixels too).

Usage: make_preprocess_fixture.py OUT.safetensors
"""
import argparse
import json
import os

import numpy as np
import torch
import transformers
import ultralytics
from safetensors.numpy import save_file
from transformers import GroundingDinoImageProcessor, SamImageProcessor, SamProcessor
from ultralytics.data.augment import LetterBox
from ultralytics.utils.ops import scale_boxes

# (name, height, width)
IMAGES = [
    ("w37h53", 53, 37),
    ("w200h120", 120, 200),
    ("w120h200", 200, 120),
    ("w5h1", 1, 5),
    ("w1h5", 5, 1),
    ("w128h96", 96, 128),  # letterbox 64 halves it exactly: OpenCV's INTER_AREA fast path
    ("w5h8", 8, 5),  # letterbox 4 / GDINO (3, 4) hit Python's round-half-to-even (2.5 -> 2)
]

# (model, image, params, u8 row stride, f32 row stride)
CASES = [
    ("letterbox", "w37h53", {"size": 640}, 23, 97),
    ("letterbox", "w200h120", {"size": 640}, 23, 97),
    ("letterbox", "w5h1", {"size": 640}, 23, 97),
    ("letterbox", "w37h53", {"size": 48}, 1, 3),
    ("letterbox", "w200h120", {"size": 96}, 1, 3),
    ("letterbox", "w120h200", {"size": 100}, 1, 3),
    ("letterbox", "w1h5", {"size": 32}, 1, 3),
    ("letterbox", "w128h96", {"size": 64}, 1, 3),
    ("letterbox", "w37h53", {"size": 53}, 1, 3),  # no resize, only padding
    ("letterbox", "w5h8", {"size": 4}, 1, 3),
    ("letterbox", "w200h120", {"size": 64}, 1, 3),  # 3.1x down: rows skipped
    ("letterbox", "w128h96", {"size": 32}, 1, 3),  # exact 4x: stays INTER_LINEAR (only 2x is AREA)
    ("sam", "w37h53", {"longest_edge": 1024, "pad_size": 1024}, 41, 199),
    ("sam", "w200h120", {"longest_edge": 1024, "pad_size": 1024}, 41, 199),
    ("sam", "w5h1", {"longest_edge": 1024, "pad_size": 1024}, 41, 199),
    ("sam", "w37h53", {"longest_edge": 96, "pad_size": 96}, 1, 3),
    ("sam", "w200h120", {"longest_edge": 64, "pad_size": 80}, 1, 3),
    ("sam", "w120h200", {"longest_edge": 100, "pad_size": 112}, 1, 3),
    ("sam", "w1h5", {"longest_edge": 12, "pad_size": 12}, 1, 3),
    ("grounding_dino", "w37h53", {"shortest_edge": 800, "longest_edge": 1333}, 41, 199),
    ("grounding_dino", "w200h120", {"shortest_edge": 800, "longest_edge": 1333}, 41, 199),
    ("grounding_dino", "w5h1", {"shortest_edge": 800, "longest_edge": 1333}, 41, 199),
    ("grounding_dino", "w37h53", {"shortest_edge": 40, "longest_edge": 64}, 1, 3),
    ("grounding_dino", "w200h120", {"shortest_edge": 60, "longest_edge": 90}, 1, 3),
    ("grounding_dino", "w120h200", {"shortest_edge": 60, "longest_edge": 100}, 1, 3),
    ("grounding_dino", "w1h5", {"shortest_edge": 3, "longest_edge": 9}, 1, 3),
    ("grounding_dino", "w5h8", {"shortest_edge": 3, "longest_edge": 4}, 1, 3),
]


def checksum(u8):  # u8: [H, W, 3]
    h, w, _ = u8.shape
    v = u8.astype(np.int64).reshape(h * w, 3)
    wt = (np.arange(h * w, dtype=np.int64) % 65521 + 1)[:, None]
    return np.stack([v.sum(0), (v * wt).sum(0)], axis=1)  # [3, 2]


def f32_sums(chw):
    x = chw.astype(np.float64).reshape(3, -1)
    return np.stack([x.sum(1), (x * x).sum(1)], axis=1)


def boxes_for(w, h, n=4, seed=0):
    g = np.random.default_rng(seed)
    xy0 = g.uniform(-0.1, 0.9, (n, 2)) * [w, h]
    wh = g.uniform(0.05, 0.6, (n, 2)) * [w, h]
    return np.concatenate([xy0, xy0 + wh], 1).astype(np.float32)


def run_letterbox(img, p):
    s = p["size"]
    lb = LetterBox((s, s), auto=False, scale_fill=False, scaleup=True, center=True, stride=32)
    params = lb.get_params({"img": img})
    bgr = np.ascontiguousarray(img[..., ::-1])  # the predictor hands LetterBox cv2's BGR
    out = lb(image=bgr)
    u8 = np.ascontiguousarray(out[..., ::-1])
    # ultralytics predictor.preprocess: HWC->CHW, BGR->RGB, float, /255
    t = torch.from_numpy(out).unsqueeze(0).permute(0, 3, 1, 2).contiguous().flip(1).float().div_(255)
    chw = t[0].numpy()
    nw, nh = params["new_unpad"]
    h, w = img.shape[:2]
    placement = [w, h, nw, nh, params["left"], params["top"], s, s]
    boxes_in = boxes_for(s, s)
    boxes_out = scale_boxes((s, s), torch.from_numpy(boxes_in.copy()), (h, w)).numpy()
    return u8, chw, placement, boxes_in, boxes_out, None


def run_sam(img, p):
    L, P = p["longest_edge"], p["pad_size"]
    ip = SamImageProcessor(size={"longest_edge": L}, pad_size={"height": P, "width": P})
    assert ip.backend == "torchvision"
    fmt = dict(input_data_format="channels_last", return_tensors="pt")
    u8 = ip(img, do_rescale=False, do_normalize=False, do_pad=False, **fmt)["pixel_values"][0]
    assert u8.dtype == torch.uint8
    u8 = u8.permute(1, 2, 0).contiguous().numpy()
    h, w = img.shape[:2]
    boxes_in = boxes_for(w, h, seed=1)
    proc = SamProcessor(image_processor=ip)
    enc = proc(images=img, input_boxes=[boxes_in.tolist()], **fmt)
    chw = enc["pixel_values"][0].numpy()
    rh, rw = [int(x) for x in enc["reshaped_input_sizes"][0]]
    placement = [w, h, rw, rh, 0, 0, P, P]
    return u8, chw, placement, boxes_in, enc["input_boxes"][0].numpy().astype(np.float32), None


def run_gdino(img, p):
    ip = GroundingDinoImageProcessor(size={"shortest_edge": p["shortest_edge"], "longest_edge": p["longest_edge"]})
    assert ip.backend == "torchvision"
    fmt = dict(input_data_format="channels_last", return_tensors="pt")
    u8 = ip(img, do_rescale=False, do_normalize=False, **fmt)["pixel_values"][0]
    assert u8.dtype == torch.uint8
    u8 = u8.permute(1, 2, 0).contiguous().numpy()
    enc = ip(img, **fmt)
    chw = enc["pixel_values"][0].numpy()
    ih, iw = chw.shape[1:]
    h, w = img.shape[:2]
    placement = [w, h, u8.shape[1], u8.shape[0], 0, 0, iw, ih]
    # post_process_object_detection maps normalised cxcywh to original-image xyxy
    g = np.random.default_rng(2)
    pred = np.concatenate([g.uniform(0.2, 0.8, (4, 2)), g.uniform(0.05, 0.4, (4, 2))], 1).astype(np.float32)

    class Out:
        logits = torch.full((1, 4, 3), 5.0)
        pred_boxes = torch.from_numpy(pred)[None]

    res = ip.post_process_object_detection(Out, threshold=0.0, target_sizes=[(h, w)])[0]
    mask_sum = np.array([int(enc["pixel_mask"].sum())], np.int64)
    return u8, chw, placement, pred, res["boxes"].numpy().astype(np.float32), mask_sum


RUN = {"letterbox": run_letterbox, "sam": run_sam, "grounding_dino": run_gdino}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    a = ap.parse_args()
    g = np.random.default_rng(0)
    images = {name: g.integers(0, 256, (h, w, 3), dtype=np.uint8) for name, h, w in IMAGES}
    tensors = {f"inputs.{k}": v for k, v in images.items()}
    cases = []
    for model, image, params, s1, s2 in CASES:
        name = f"{model}.{image}." + "_".join(str(v) for v in params.values())
        u8, chw, placement, boxes_in, boxes_out, mask_sum = RUN[model](images[image], params)
        o = f"outputs.{name}"
        tensors[f"inputs.{name}.boxes"] = boxes_in
        tensors[f"{o}.placement"] = np.array(placement, np.int64)
        tensors[f"{o}.u8_rows"] = np.ascontiguousarray(u8[::s1])
        tensors[f"{o}.u8_checksum"] = checksum(u8)
        tensors[f"{o}.pixel_values_rows"] = np.ascontiguousarray(chw[:, ::s2].astype(np.float32))
        tensors[f"{o}.pixel_values_sums"] = f32_sums(chw)
        tensors[f"{o}.boxes"] = boxes_out
        if mask_sum is not None:
            tensors[f"{o}.pixel_mask_sum"] = mask_sum
        cases.append({"name": name, "model": model, "image": image, "params": params,
                      "u8_row_stride": s1, "f32_row_stride": s2})
    meta = {
        "kind": "preprocess",
        "reference": f"ultralytics {ultralytics.__version__}, transformers {transformers.__version__} "
        f"(torchvision backend), torch {torch.__version__}, opencv {__import__('cv2').__version__}",
        "config": json.dumps(cases),
        "tolerances": json.dumps({
            "outputs.*.placement": {"atol": 0, "rtol": 0},
            "outputs.*.u8_rows": {"atol": 0, "rtol": 0},
            "outputs.*.u8_checksum": {"atol": 0, "rtol": 0},
            "outputs.*.pixel_values_rows": {"atol": 0, "rtol": 0},
            "outputs.*.pixel_values_sums": {"atol": 1e-6, "rtol": 1e-9},
            "outputs.*.pixel_mask_sum": {"atol": 0, "rtol": 0},
            "outputs.*.boxes": {"atol": 1e-3, "rtol": 1e-6},
        }),
        "notes": __doc__,
    }
    save_file(tensors, a.out, metadata=meta)
    size = os.path.getsize(a.out)
    print(f"{a.out}: {len(tensors)} tensors, {len(cases)} cases, {size / 1e6:.2f} MB")
    assert size < 2_000_000, "fixture too big"


if __name__ == "__main__":
    main()
