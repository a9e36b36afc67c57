#!/usr/bin/env python3
"""Reference timings for `ed-bench` (dev-time only; never used at run time).

Times the same shapes as ed-bench with numpy (OpenBLAS) and PyTorch CPU, pinned to the
same thread count, and prints one JSON object: {"<case>": {"median_ms": .., "min_ms": ..}}.
Usage: bench_ref.py CASE [--threads N] [--iters N]; CASE is matmul, conv, conv-train, mask-iou, attention, lora
or cocoeval-segm (with --gt GT.json --dt RESULTS.json: pycocotools COCOeval, no warm-up, fresh COCO objects
each iteration because COCOeval rewrites the annotations it evaluates in place).
"""
import argparse
import json
import os
import sys
import time


def timeit(fn, iters, warmup=3):
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t0) * 1e3)
    ts.sort()
    return {"median_ms": ts[len(ts) // 2], "min_ms": ts[0], "iters": iters}


def load_ultralytics(a):
    """The ultralytics model of a.config (a yaml as JSON) with ed-bench's weights a.weights
    (every parameter and buffer but num_batches_tracked must load): (cfg, is_seg, model)."""
    from safetensors.torch import load_file
    from ultralytics.nn.tasks import SegmentationModel, DetectionModel

    cfg = json.load(open(a.config))
    seg = cfg["head"][-1][2] == "Segment"
    model = (SegmentationModel if seg else DetectionModel)(cfg, ch=3, nc=cfg["nc"], verbose=False).float()
    missing, unexpected = model.load_state_dict(load_file(a.weights), strict=False)
    assert not unexpected and all(k.endswith("num_batches_tracked") for k in missing), (missing, unexpected)
    return cfg, seg, model


def yolo_case(a):
    """ultralytics on the weights ed-bench wrote: fused eval forward (what predict runs) or one
    training step (train-mode forward, v8 loss on fixed random targets, backward, SGD step)."""
    import torch
    import ultralytics
    from types import SimpleNamespace
    from ultralytics.utils.loss import v8SegmentationLoss, v8DetectionLoss

    torch.set_num_threads(a.threads)
    cfg, seg, model = load_ultralytics(a)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(a.batch, 3, a.imgsz, a.imgsz, generator=g)
    res = {"ultralytics_version": ultralytics.__version__, "torch_version": torch.__version__}
    if a.case == "yolo-forward":
        model = model.fuse(verbose=False).eval()
        with torch.inference_mode():
            res["ultralytics_forward"] = timeit(lambda: model(x), a.iters)
        return res
    model.args = SimpleNamespace(box=7.5, cls=0.5, dfl=1.5, overlap_mask=False)
    crit = (v8SegmentationLoss if seg else v8DetectionLoss)(model)
    n = 4 * a.batch
    # batch_idx sorted by image, as ultralytics collates (its preprocess relies on it)
    batch = {"batch_idx": (torch.arange(n) // 4).float(), "cls": torch.randint(0, cfg["nc"], (n, 1), generator=g).float(),
             "bboxes": torch.cat([torch.rand(n, 2, generator=g) * 0.5 + 0.25, torch.rand(n, 2, generator=g) * 0.3 + 0.1], 1)}
    if seg:
        batch["masks"] = (torch.rand(n, a.imgsz // 4, a.imgsz // 4, generator=g) > 0.5).float()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.937, nesterov=True)
    model.train()

    def step():
        opt.zero_grad()
        loss, _ = crit(model(x), batch)
        loss.sum().backward()
        opt.step()

    res["ultralytics_train_step"] = timeit(step, a.iters, warmup=2)
    return res


def engine_gpu_case(a):
    """ultralytics eager PyTorch on the GPU on the weights ed-bench wrote, BN folded
    (`model.fuse()`, what its predictor runs), fp16 and fp32, batch 1. resident: input on
    the GPU, synchronised after the forward; end to end: f32 host image in, pred and proto
    back on the host as f32."""
    import copy
    import torch
    import ultralytics

    _, seg, model = load_ultralytics(a)
    assert seg, "engine-gpu times a segmentation model"
    model = model.fuse(verbose=False).eval().cuda()
    m16 = copy.deepcopy(model).half()
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 3, a.imgsz, a.imgsz, generator=g)
    res = {"ultralytics_version": ultralytics.__version__, "torch_version": torch.__version__,
           "gpu": torch.cuda.get_device_name()}
    sync = torch.cuda.synchronize
    with torch.inference_mode():
        x32, x16 = x.cuda(), x.cuda().half()

        def e2e():
            (pred, proto), _ = m16(x.cuda().half())  # eval output: ((pred, proto), raw)
            pred.float().cpu(), proto.float().cpu()

        res["torch_cuda_fp32_resident"] = timeit(lambda: (model(x32), sync()), a.iters, warmup=10)
        res["torch_cuda_fp16_resident"] = timeit(lambda: (m16(x16), sync()), a.iters, warmup=10)
        res["torch_cuda_fp16_end_to_end"] = timeit(e2e, a.iters, warmup=10)
    return res


def engine_case(a):
    """onnxruntime (CPU, a.threads intra-op threads, all graph optimisations) on our ONNX;
    saves its outputs so ed-bench can compare them with the engine's."""
    import numpy as np
    import onnxruntime as ort
    from safetensors.numpy import load_file, save_file

    so = ort.SessionOptions()
    so.intra_op_num_threads = a.threads
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(a.onnx, so, providers=["CPUExecutionProvider"])
    feeds = {"images": load_file(a.input)["images"]}
    names = [o.name for o in sess.get_outputs()]
    outs = sess.run(names, feeds)
    save_file({n: np.ascontiguousarray(o) for n, o in zip(names, outs)}, a.out)
    return {"ort_fp32_yolov8n_seg_640": timeit(lambda: sess.run(names, feeds), a.iters), "onnxruntime_version": ort.__version__}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("case", choices=["matmul", "conv", "conv-train", "mask-iou", "attention", "lora", "cocoeval-segm", "yolo-forward", "yolo-train", "engine", "engine-gpu"])
    ap.add_argument("--weights", help="yolo-*: safetensors state dict (ultralytics names) written by ed-bench")
    ap.add_argument("--config", help="yolo-*: the model config JSON (ultralytics yaml as a dict)")
    ap.add_argument("--imgsz", type=int, default=640)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--masks", help="mask-iou: safetensors file with u8 pred [N,H,W], gt [M,H,W], crowd [M]")
    ap.add_argument("--gt", help="cocoeval-segm: COCO ground-truth JSON")
    ap.add_argument("--dt", help="cocoeval-segm: COCO results JSON")
    ap.add_argument("--onnx", help="engine: our ONNX model")
    ap.add_argument("--input", help="engine: safetensors with the input `images`")
    ap.add_argument("--out", help="engine: where to save onnxruntime's outputs (safetensors)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=20)
    a = ap.parse_args()
    # Thread pools read these at import time.
    for v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[v] = str(a.threads)
    # stdout carries only the JSON object ed-bench parses: whatever a library prints
    # while a case runs (ultralytics' first-run settings notice, say) goes to stderr.
    real_stdout, sys.stdout = sys.stdout, sys.stderr
    out = {}
    if a.case == "matmul":
        import numpy as np

        rng = np.random.default_rng(0)
        x = rng.standard_normal((1024, 1024), dtype=np.float32)
        y = rng.standard_normal((1024, 1024), dtype=np.float32)
        out["numpy_matmul_1024"] = timeit(lambda: x @ y, a.iters)
        out["numpy_version"] = np.__version__
        try:
            import torch

            torch.set_num_threads(a.threads)
            tx, ty = torch.from_numpy(x), torch.from_numpy(y)
            out["torch_matmul_1024"] = timeit(lambda: tx @ ty, a.iters)
        except ImportError:
            pass
    elif a.case == "attention":
        import torch
        import torch.nn.functional as F

        assert torch.cuda.is_available(), "attention reference needs a GPU"
        g = torch.Generator(device="cuda").manual_seed(0)
        q, k, v = (torch.randn(1, 12, 4096, 64, device="cuda", generator=g) for _ in range(3))

        def sdpa(q, k, v):
            F.scaled_dot_product_attention(q, k, v)
            torch.cuda.synchronize()

        out["torch_sdpa_f32"] = timeit(lambda: sdpa(q, k, v), a.iters)
        qb, kb, vb = q.bfloat16(), k.bfloat16(), v.bfloat16()
        out["torch_sdpa_bf16_flash"] = timeit(lambda: sdpa(qb, kb, vb), a.iters)
        out["torch_version"] = torch.__version__
    elif a.case == "lora":
        import torch

        assert torch.cuda.is_available(), "lora reference needs a GPU"
        g = torch.Generator(device="cuda").manual_seed(0)
        x, w = torch.randn(8192, 768, device="cuda", generator=g), torch.randn(768, 768, device="cuda", generator=g)
        A, B = torch.randn(16, 768, device="cuda", generator=g), torch.randn(768, 16, device="cuda", generator=g)

        def lora(x, w, A, B):
            x @ w.T + 2.0 * (x @ A.T) @ B.T
            torch.cuda.synchronize()

        out["torch_lora_f32"] = timeit(lambda: lora(x, w, A, B), a.iters)
        h = [t.half() for t in (x, w, A, B)]
        out["torch_lora_f16"] = timeit(lambda: lora(*h), a.iters)
        out["torch_version"] = torch.__version__
    elif a.case in ("yolo-forward", "yolo-train"):
        out.update(yolo_case(a))
    elif a.case == "engine":
        out.update(engine_case(a))
    elif a.case == "engine-gpu":
        out.update(engine_gpu_case(a))
    elif a.case == "cocoeval-segm":
        import contextlib
        import io
        from importlib.metadata import version

        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval

        evals, totals, stats = [], [], None
        for _ in range(a.iters):
            with contextlib.redirect_stdout(io.StringIO()):
                t0 = time.perf_counter()
                gt = COCO(a.gt)
                dt = gt.loadRes(a.dt)
                t1 = time.perf_counter()
                E = COCOeval(gt, dt, "segm")
                E.evaluate()
                E.accumulate()
                E.summarize()
                t2 = time.perf_counter()
            evals.append((t2 - t1) * 1e3)
            totals.append((t2 - t0) * 1e3)
            stats = [float(v) for v in E.stats]
        for key, ts in (("pycocotools_cocoeval_segm", evals), ("pycocotools_load_and_cocoeval_segm", totals)):
            ts.sort()
            out[key] = {"median_ms": ts[len(ts) // 2], "min_ms": ts[0], "iters": a.iters}
        out["pycocotools_stats"] = stats
        out["pycocotools_version"] = version("pycocotools")
    elif a.case == "mask-iou":
        import numpy as np
        from safetensors.numpy import load_file

        t = load_file(a.masks)
        pred, gt, crowd = t["pred"], t["gt"], t["crowd"].astype(bool)
        try:
            from pycocotools import mask as mu

            # pycocotools works on column-major RLE; encoding is not timed, only iou.
            enc = lambda m: mu.encode(np.asfortranarray(m.transpose(1, 2, 0)))
            dr, gr = enc(pred), enc(gt)
            out["pycocotools_mask_iou"] = timeit(lambda: mu.iou(dr, gr, list(crowd)), a.iters)
        except ImportError:
            pass
        import torch

        torch.set_num_threads(a.threads)
        dev = "cuda" if torch.cuda.is_available() else "cpu"
        P = torch.from_numpy(pred).to(dev).flatten(1).float()
        G = torch.from_numpy(gt).to(dev).flatten(1).float()
        cr = torch.from_numpy(crowd).to(dev)

        def torch_iou():
            inter = P @ G.T
            ap, ag = P.sum(1, keepdim=True), G.sum(1)
            union = torch.where(cr, ap.expand_as(inter), ap + ag - inter)
            r = inter / union.clamp_min(1)
            if dev == "cuda":
                torch.cuda.synchronize()
            return r

        out[f"torch_{dev}_mask_iou_matmul"] = timeit(torch_iou, a.iters)
        out["torch_version"] = torch.__version__
    else:
        import torch

        torch.set_num_threads(a.threads)
        g = torch.Generator().manual_seed(0)
        x = torch.randn(1, 64, 160, 160, generator=g)
        w = torch.randn(64, 64, 3, 3, generator=g) * 0.05
        if a.case == "conv":
            with torch.no_grad():
                out["torch_conv3x3_64x160x160"] = timeit(lambda: torch.nn.functional.conv2d(x, w, padding=1), a.iters)
        else:
            x.requires_grad_(True)
            w.requires_grad_(True)

            def step():
                x.grad = None
                w.grad = None
                torch.nn.functional.conv2d(x, w, padding=1).sum().backward()

            out["torch_conv3x3_64x160x160_fwd_bwd"] = timeit(step, a.iters)
        out["torch_version"] = torch.__version__
    json.dump(out, real_stdout)
    real_stdout.write("\n")


if __name__ == "__main__":
    main()
