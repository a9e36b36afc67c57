"""Reference gradients of SAM's mask decoder (dev-only).

Loads the shared sam-visible fixture's weights into transformers' SamModel, runs it on the
fixture's inputs with single-mask output, and takes the gradient of
    loss = sum(pred_masks * R) + sum(iou_scores * R2)
(R, R2 fixed random tensors) with respect to every mask_decoder and prompt_encoder weight.
Writes tests/fixtures/sam-decoder-grads.safetensors: inputs.image_embeddings,
inputs.input_boxes, inputs.r, inputs.r2, outputs.loss, grads.<name>.
Usage: /work/venv/bin/python tools/reference/make_sam_grad_fixture.py ../shared/fixtures/sam-visible.safetensors
"""
import json
import sys

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from transformers import SamConfig, SamModel

src = sys.argv[1]
with safe_open(src, "pt") as f:
    meta = f.metadata()
    t = {k: f.get_tensor(k) for k in f.keys()}
cfg = SamConfig.from_dict(json.loads(meta["config"]))
cfg._attn_implementation = "eager"
model = SamModel(cfg).eval()
sd = {k[len("weights."):]: v for k, v in t.items() if k.startswith("weights.")}
model.load_state_dict(sd, strict=False)
torch.manual_seed(5)
with torch.no_grad():
    emb = model.get_image_embeddings(t["inputs.pixel_values"])
out = model(image_embeddings=emb, input_boxes=t["inputs.input_boxes"], multimask_output=False)
r = torch.randn_like(out.pred_masks)
r2 = torch.randn_like(out.iou_scores)
loss = (out.pred_masks * r).sum() + (out.iou_scores * r2).sum()
params = {n: p for n, p in model.named_parameters() if n.startswith(("mask_decoder.", "prompt_encoder."))}
grads = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
tensors = {"inputs.image_embeddings": emb.contiguous(), "inputs.input_boxes": t["inputs.input_boxes"],
           "inputs.r": r.contiguous(), "inputs.r2": r2.contiguous(), "outputs.loss": loss.detach().reshape(1)}
for (n, _), g in zip(params.items(), grads):
    if g is not None:
        tensors["grads." + n] = g.contiguous()
save_file(tensors, "tests/fixtures/sam-decoder-grads.safetensors",
          metadata={"reference": "transformers 5.23.0 SamModel (eager)", "source": src.split("/")[-1]})
print(len(tensors) - 5, "gradients; loss", float(loss))
