"""Reference for SAM's mask postprocessing (dev-only).

Runs transformers' SamImageProcessor.post_process_masks (binarize=False and True) on random
low-res logits for a few original sizes and writes tests/fixtures/sam-postprocess.safetensors:
  case{i}.low_res [1, M, 64, 64] f32, case{i}.logits [1, M, H, W] f32 (cases with padding), case{i}.masks u8,
  metadata cases = JSON list of {orig: [h, w], reshaped: [h, w], pad: S}.
Usage: /work/venv/bin/python tools/reference/make_sam_postprocess_fixture.py
"""
import json

import torch
from safetensors.torch import save_file
from transformers import SamImageProcessor

torch.manual_seed(0)
proc = SamImageProcessor()
pad = 256
cases = [((75, 120), (160, 256)), ((200, 90), (256, 115)), ((256, 256), (256, 256))]
tensors, meta = {}, []
for i, (orig, reshaped) in enumerate(cases):
    low = torch.randn(1, 3, 64, 64) * 4
    logits = proc.post_process_masks([low], [orig], [reshaped], binarize=False,
                                     pad_size={"height": pad, "width": pad})[0]
    masks = proc.post_process_masks([low], [orig], [reshaped], binarize=True,
                                    pad_size={"height": pad, "width": pad})[0]
    tensors[f"case{i}.low_res"] = low.contiguous()
    if orig != reshaped:  # the unpadded case checks masks only (keeps the file small)
        tensors[f"case{i}.logits"] = logits.contiguous()
    tensors[f"case{i}.masks"] = masks.to(torch.uint8).contiguous()
    meta.append({"orig": list(orig), "reshaped": list(reshaped), "pad": pad})
save_file(tensors, "tests/fixtures/sam-postprocess.safetensors",
          metadata={"cases": json.dumps(meta), "reference": "transformers 5.23.0 SamImageProcessor.post_process_masks"})
print("wrote", len(cases), "cases")
