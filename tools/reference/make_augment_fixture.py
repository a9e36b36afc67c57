#!/usr/bin/env python3
"""Write tests/fixtures/augment-cv2.safetensors: what OpenCV and ultralytics do on the pixel
level, for tests/data_augment.rs to compare our augmentation with.

  hsv.rgb / hsv.hsv            u8 [N, 3]: random RGB and cv2.COLOR_RGB2HSV of it
  hsv2rgb.hsv / hsv2rgb.rgb    u8 [N, 3]: random 8-bit HSV (hue < 180) and COLOR_HSV2RGB
  jitter.<i>.img / .out        u8 [H, W, 3]: an RGB image before/after ultralytics RandomHSV
  jitter.<i>.r                 f64 [3]: the gains RandomHSV drew (np.random, seeded)
  warp.<i>.img / .out          u8: image and cv2.warpAffine(img, M, size, borderValue 114)
  warp.<i>.mask / .mask_out    u8: a 0/1 mask and warpAffine(INTER_NEAREST, border 0)
  warp.<i>.m                   f64 [2, 3]: M as ultralytics RandomPerspective builds it (f32)

Rows are 64 pixels wide (HSV) and widths are multiples of 32 (warp) so every pixel goes
through cv2's SIMD loop; its scalar row tail rounds differently (see color.rs / affine.rs).
Before writing, the full-domain check is run: our model of both HSV conversions against
cv2 on all 2^24 RGB and all 180*2^16 HSV triples (printed, not stored).

Usage: make_augment_fixture.py OUT.safetensors
"""
import json
import random
import sys

import cv2
import numpy as np
from safetensors.numpy import save_file
from ultralytics.data.augment import RandomHSV, RandomPerspective


def full_domain_check():
    v = np.arange(256, dtype=np.int64)
    r, g, b = (x.reshape(-1) for x in np.meshgrid(v, v, v, indexing="ij"))
    img = np.stack([r, g, b], -1).reshape(-1, 256, 3).astype(np.uint8)
    ref = cv2.cvtColor(img, cv2.COLOR_RGB2HSV).reshape(-1, 3).astype(np.int64)
    sdiv = np.array([0] + [round((255 << 12) / i) for i in range(1, 256)], np.int64)
    hdiv = np.array([0] + [round((180 << 12) / (6 * i)) for i in range(1, 256)], np.int64)
    vv = np.maximum(np.maximum(r, g), b)
    d = vv - np.minimum(np.minimum(r, g), b)
    s = (d * sdiv[vv] + 2048) >> 12
    h = np.where(vv == r, g - b, np.where(vv == g, b - r + 2 * d, r - g + 4 * d))
    h = (h * hdiv[d] + 2048) >> 12
    h = np.where(h < 0, h + 180, h)
    bad = (np.stack([h, s, vv], -1) != ref).any(1).sum()
    print(f"RGB->HSV: {bad} of {len(ref)} differ")

    hh, ss, vv = (x.reshape(-1) for x in np.meshgrid(np.arange(180), v, v, indexing="ij"))
    img = np.stack([hh, ss, vv], -1).reshape(-1, 256, 3).astype(np.uint8)
    ref = cv2.cvtColor(img, cv2.COLOR_HSV2RGB).reshape(-1, 3).astype(np.int64)
    f32 = np.float32
    H = hh.astype(f32) * f32(6.0 / 180)
    S = ss.astype(f32) * f32(1 / 255.0)
    V = vv.astype(f32) * f32(1 / 255.0)
    pre = np.trunc(H).astype(f32)
    f = (H - pre).astype(f32)
    fm = lambda a, c: (1.0 - a.astype(np.float64) * c.astype(np.float64)).astype(f32)
    tab = np.stack([V, V * (f32(1) - S), V * fm(S, f), V * fm(S, (f32(1) - f).astype(f32))], -1).astype(f32)
    sector = np.array([[1, 3, 0], [1, 0, 2], [3, 0, 1], [0, 2, 1], [0, 1, 3], [2, 1, 0]])[pre.astype(np.int64) % 6]
    bgr = np.take_along_axis(tab, sector, 1)
    out = np.clip(np.trunc((bgr * f32(255)).astype(f32)), 0, 255).astype(np.int64)[:, ::-1]
    bad = (out != ref).any(1).sum()
    print(f"HSV->RGB: {bad} of {len(ref)} differ")


def main():
    out = sys.argv[1]
    full_domain_check()
    rng = np.random.default_rng(7)
    t, cases = {}, []

    rgb = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    rgb[0, :8] = [[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 255, 0], [0, 0, 255], [128, 128, 128], [1, 0, 0], [255, 254, 253]]
    t["hsv.rgb"] = rgb.reshape(-1, 3)
    t["hsv.hsv"] = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV).reshape(-1, 3)
    hsv = np.stack([rng.integers(0, 180, (64, 64)), rng.integers(0, 256, (64, 64)), rng.integers(0, 256, (64, 64))], -1).astype(np.uint8)
    t["hsv2rgb.hsv"] = hsv.reshape(-1, 3)
    t["hsv2rgb.rgb"] = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB).reshape(-1, 3)

    for i, gains in enumerate([(0.015, 0.7, 0.4), (0.5, 0.9, 0.9), (0.0, 0.0, 0.3)]):
        img = rng.integers(0, 256, (16, 64, 3), dtype=np.uint8)
        np.random.seed(100 + i)
        r = np.random.uniform(-1, 1, 3) * list(gains)
        np.random.seed(100 + i)
        bgr = np.ascontiguousarray(img[..., ::-1])
        RandomHSV(*gains).apply_image({"img": bgr})  # in place, BGR as ultralytics holds it
        t[f"jitter.{i}.img"] = img
        t[f"jitter.{i}.out"] = np.ascontiguousarray(bgr[..., ::-1])
        t[f"jitter.{i}.r"] = r.astype(np.float64)
        cases.append({"name": f"jitter.{i}", "gains": gains})

    # (in h, in w, out h, out w, degrees, translate, scale, shear)
    for i, (h, w, oh, ow, deg, tr, sc, sh) in enumerate(
        [(48, 64, 48, 64, 30, 0.1, 0.5, 0), (40, 64, 64, 96, 10, 0.2, 0.3, 10), (64, 32, 64, 64, 90, 0.0, 0.0, 20)]
    ):
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        mask = np.zeros((h, w), np.uint8)
        cv2.circle(mask, (w // 2, h // 2), min(h, w) // 3, 1, -1)
        random.seed(i)
        rp = RandomPerspective(degrees=deg, translate=tr, scale=sc, shear=sh)
        M, _ = rp._compute_affine_matrix(img, (ow, oh))
        t[f"warp.{i}.img"] = img
        t[f"warp.{i}.out"] = cv2.warpAffine(img, M[:2], dsize=(ow, oh), borderValue=(114, 114, 114, 114))
        t[f"warp.{i}.mask"] = mask
        t[f"warp.{i}.mask_out"] = cv2.warpAffine(mask, M[:2], dsize=(ow, oh), flags=cv2.INTER_NEAREST, borderValue=0)
        t[f"warp.{i}.m"] = M[:2].astype(np.float64)
        cases.append({"name": f"warp.{i}", "out_size": [ow, oh]})

    meta = {"cases": json.dumps(cases), "cv2": cv2.__version__, "made_by": "tools/reference/make_augment_fixture.py"}
    save_file({k: np.ascontiguousarray(v) for k, v in t.items()}, out, metadata=meta)
    print(f"wrote {out}: {len(t)} tensors")


if __name__ == "__main__":
    main()
