"""Reference values for SAM's mask loss terms (dev-only).

torchvision.ops.sigmoid_focal_loss (alpha 0.25, gamma 2, reduction none, then mean over each
mask's pixels) and the dice loss 1 - (2*sum(p*t) + 1) / (sum(p) + sum(t) + 1) on sigmoid
probabilities, for random logits/targets. Writes tests/fixtures/sam-loss.safetensors:
logits [4, 12, 10], targets [4, 12, 10], focal [4], dice [4], focal_grad [4, 12, 10] (of the
sum of focal), dice_grad (of the sum of dice).
Usage: /work/venv/bin/python tools/reference/make_sam_loss_fixture.py
"""
import torch
from safetensors.torch import save_file
from torchvision.ops import sigmoid_focal_loss

torch.manual_seed(0)
logits = (torch.randn(4, 12, 10, dtype=torch.float64) * 3).requires_grad_()
targets = (torch.rand(4, 12, 10, dtype=torch.float64) > 0.6).double()
targets[3] = 0  # an empty target
focal = sigmoid_focal_loss(logits, targets, alpha=0.25, gamma=2, reduction="none").flatten(1).mean(1)
(fg,) = torch.autograd.grad(focal.sum(), logits)
p = logits.sigmoid().flatten(1)
t = targets.flatten(1)
dice = 1 - (2 * (p * t).sum(1) + 1) / (p.sum(1) + t.sum(1) + 1)
(dg,) = torch.autograd.grad(dice.sum(), logits)
save_file({"logits": logits.detach(), "targets": targets, "focal": focal.detach(),
           "dice": dice.detach(), "focal_grad": fg, "dice_grad": dg},
          "tests/fixtures/sam-loss.safetensors",
          metadata={"reference": "torch 2.15.0 / torchvision 0.29.2 sigmoid_focal_loss"})
print("focal", focal.tolist(), "dice", dice.tolist())
