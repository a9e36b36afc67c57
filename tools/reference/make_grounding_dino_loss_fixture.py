"""Reference for the Grounding DINO fine-tuning loss (dev-only).

Calls transformers' GroundingDinoForObjectDetectionLoss (auxiliary_loss and two_stage on,
2 decoder layers) on random predictions: batch 2, 7 queries, max_text_len 16, prompts of 3
phrases each (different token layouts), 3 targets in image 0 (one class repeated) and 1 in
image 1. Logits are -inf past each prompt's attention mask, as the model's class head makes
them. Writes tests/fixtures/grounding-dino-loss.safetensors:
  input_ids, attention_mask [2, 12] i64; label_maps.{b} [3, 16] i64; text_mask [2, 16] u8;
  logits.{l}, boxes.{l} (l = 0, 1: decoder layers, 1 = final), logits.enc, boxes.enc;
  target.labels.{b} i64, target.boxes.{b} [n, 4] cxcywh;
  loss [1] (total), loss.{key} [1] for every loss_dict key;
  indices.{head}.{b} [2, n] i64 (query, target) for head in final, aux0, enc;
  grad.logits.{l|enc}, grad.boxes.{l|enc}: d loss / d input.
Usage: /work/venv/bin/python tools/reference/make_grounding_dino_loss_fixture.py
"""
import scipy
import torch
import transformers
from safetensors.torch import save_file
from transformers import GroundingDinoConfig
from transformers.loss.loss_grounding_dino import (GroundingDinoForObjectDetectionLoss,
                                                   GroundingDinoHungarianMatcher)
from transformers.models.grounding_dino.modeling_grounding_dino import (build_label_maps,
                                                                        build_text_mask)

torch.manual_seed(3)
B, Q, T = 2, 7, 16
input_ids = torch.tensor([
    [101, 3869, 2312, 1012, 11420, 1012, 4937, 2006, 1037, 1012, 102, 0],
    [101, 2482, 1012, 3899, 4231, 7592, 1012, 2417, 1012, 102, 0, 0],
])
attention_mask = (input_ids != 0).long()
config = GroundingDinoConfig(auxiliary_loss=True, two_stage=True, decoder_layers=2)

def make_logits():
    # The class head's -inf past each prompt (masked and padded token slots).
    off = torch.nn.functional.pad(attention_mask, (0, T - input_ids.shape[1])) == 0
    return (torch.randn(B, Q, T) * 2).masked_fill(off[:, None, :], float("-inf")).requires_grad_()

def make_boxes():
    b = torch.rand(B, Q, 4)
    b[..., :2] = b[..., :2] * 0.6 + 0.2
    b[..., 2:] = b[..., 2:] * 0.5 + 0.05
    return b.requires_grad_()

logits = [make_logits() for _ in range(2)]
boxes = [make_boxes() for _ in range(2)]
enc_logits, enc_boxes = make_logits(), make_boxes()
labels = [
    {"class_labels": torch.tensor([2, 0, 2]),
     "boxes": torch.tensor([[0.30, 0.40, 0.20, 0.30], [0.60, 0.55, 0.35, 0.25], [0.45, 0.50, 0.10, 0.40]])},
    {"class_labels": torch.tensor([1]), "boxes": torch.tensor([[0.50, 0.45, 0.30, 0.20]])},
]
label_maps = build_label_maps(logits[-1], input_ids)
text_mask = build_text_mask(logits[-1], attention_mask)
loss, loss_dict, _ = GroundingDinoForObjectDetectionLoss(
    logits[-1], labels, "cpu", boxes[-1], config, label_maps, text_mask,
    outputs_class=torch.stack(logits), outputs_coord=torch.stack(boxes),
    encoder_logits=enc_logits, encoder_pred_boxes=enc_boxes)
leaves = logits + boxes + [enc_logits, enc_boxes]
grads = torch.autograd.grad(loss, leaves)

matcher = GroundingDinoHungarianMatcher(class_cost=config.class_cost, bbox_cost=config.bbox_cost,
                                        giou_cost=config.giou_cost)
out = {"input_ids": input_ids, "attention_mask": attention_mask,
       "text_mask": text_mask[:, 0, :].to(torch.uint8), "loss": loss.detach().reshape(1)}
for b, lm in enumerate(label_maps):
    out[f"label_maps.{b}"] = lm
for name, lg, bx in [("final", logits[1], boxes[1]), ("aux0", logits[0], boxes[0]),
                     ("enc", enc_logits, enc_boxes)]:
    idx = matcher({"logits": lg, "pred_boxes": bx, "label_maps": label_maps}, labels)
    for b, (i, j) in enumerate(idx):
        out[f"indices.{name}.{b}"] = torch.stack([i, j])
for k, v in loss_dict.items():
    out[f"loss.{k}"] = v.detach().reshape(1).float()
for name, t, g in zip(["logits.0", "logits.1", "boxes.0", "boxes.1", "logits.enc", "boxes.enc"],
                      leaves, grads):
    out[name] = t.detach()
    out["grad." + name] = g
for b, t in enumerate(labels):
    out[f"target.labels.{b}"] = t["class_labels"]
    out[f"target.boxes.{b}"] = t["boxes"]
save_file({k: v.contiguous() for k, v in out.items()}, "tests/fixtures/grounding-dino-loss.safetensors",
          metadata={"reference": f"transformers {transformers.__version__} GroundingDinoForObjectDetectionLoss, "
                                 f"torch {torch.__version__}, scipy {scipy.__version__}"})
print("loss", loss.item())
for k, v in loss_dict.items():
    print(k, v.item())
for k in sorted(out):
    if k.startswith("indices"):
        print(k, out[k].tolist())
