"""Convert an ultralytics YOLO checkpoint (.pt) to what edgedistill loads:
`model.safetensors` (the state dict under ultralytics' own names, e.g.
`model.22.cv2.0.2.weight`, f32, `num_batches_tracked` dropped) and `config.json` (the
model yaml dict as ultralytics parsed it, with `nc` and `names`).

    /work/pyref/bin/python tools/reference/yolo_to_safetensors.py best.pt OUT_DIR [--ema]

model.safetensors carries the edgedistill model-file metadata (format, config, names,
category_ids 1..nc, imgsz), so `ed-predict --model OUT_DIR` uses it directly.
Takes ckpt["model"] (ckpt["ema"] with --ema, or when "model" is absent). Rust side:
    let cfg = YoloConfig::from_json(&serde_json::from_str(&std::fs::read_to_string("OUT_DIR/config.json")?)?)?;
    let m = YoloModel::from_state_dict(&cfg, &StateDict::open("OUT_DIR/model.safetensors")?)?;
Dev-time tool only (needs torch + ultralytics); nothing at run time uses Python.
"""
import argparse
import json
import os

import torch
from safetensors.torch import save_file


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint")
    ap.add_argument("out_dir")
    ap.add_argument("--ema", action="store_true", help="use ckpt['ema'] instead of ckpt['model']")
    a = ap.parse_args()
    ckpt = torch.load(a.checkpoint, map_location="cpu", weights_only=False)
    model = ckpt.get("ema") if a.ema or ckpt.get("model") is None else ckpt["model"]
    if model is None:
        raise SystemExit(f"{a.checkpoint}: no 'model' or 'ema' entry")
    model = model.float()
    cfg = dict(model.yaml)
    cfg.pop("yaml_file", None)
    names = getattr(model, "names", None) or {i: str(i) for i in range(cfg["nc"])}
    cfg["nc"] = len(names) if isinstance(names, (dict, list)) else cfg["nc"]
    cfg["names"] = {str(k): v for k, v in (names.items() if isinstance(names, dict) else enumerate(names))}
    sd = {k: v.detach().float().contiguous().clone() for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    os.makedirs(a.out_dir, exist_ok=True)
    names_list = [cfg["names"][str(i)] for i in range(cfg["nc"])]
    imgsz = (ckpt.get("train_args") or {}).get("imgsz", 640)
    # The metadata is what `models::yolov8::load_model` reads (the model-file format).
    meta = {"source": os.path.basename(a.checkpoint), "format": "edgedistill-yolov8",
            "config": json.dumps(cfg), "names": json.dumps(names_list),
            "category_ids": json.dumps(list(range(1, cfg["nc"] + 1))), "imgsz": str(imgsz)}
    save_file(sd, os.path.join(a.out_dir, "model.safetensors"), metadata=meta)
    with open(os.path.join(a.out_dir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    print(f"{len(sd)} tensors, {sum(v.numel() for v in sd.values())} values -> {a.out_dir}")


if __name__ == "__main__":
    main()
