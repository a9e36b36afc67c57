"""PEFT round trip for our LoRA adapters (dev tool; needs torch, peft, safetensors).

  make OUT_DIR           PEFT-wrap a tiny model of Linear layers (r=4, alpha 8, regex
                         targets, random lora_B), save_pretrained into OUT_DIR, and write
                         OUT_DIR/reference.safetensors: base.<name> (base weights), input,
                         output (PEFT, eval), output_base (no adapter); metadata
                         "trainable" = print_trainable_parameters' line.
                         -> tests/fixtures/peft-tiny/
  check ADAPTER_DIR REF  PeftModel.from_pretrained on an adapter dir we saved (base weights
                         from REF = a reference.safetensors), run ADAPTER_DIR/rust_io's
                         input, print max |delta| against its output and of every lora tensor
                         as JSON; exit 1 above --tol.

The model mirrors `Tiny` in tests/lora_peft.rs, name for name.
"""

import argparse
import json
import os
import sys

import torch
from torch import nn
from safetensors.torch import load_file, save_file
import peft
from peft import LoraConfig, PeftModel, get_peft_model

D = 8
TARGETS = r".*mask_decoder.*\.(q_proj|k_proj|v_proj|out_proj)"


class Attn(nn.Module):
    def __init__(self):
        super().__init__()
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = (nn.Linear(D, D) for _ in range(4))

    def forward(self, x):
        return self.out_proj(self.q_proj(x) * self.k_proj(x) + self.v_proj(x))


class Layer(nn.Module):
    def __init__(self):
        super().__init__()
        self.self_attn = Attn()


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(6, D)
        self.q_proj = nn.Linear(D, D)  # not a target: outside mask_decoder


class Decoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList([Layer() for _ in range(2)])
        self.head = nn.Linear(D, 4)


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.image_encoder = Encoder()
        self.mask_decoder = Decoder()

    def forward(self, x):
        h = self.image_encoder.q_proj(torch.relu(self.image_encoder.proj(x)))
        for layer in self.mask_decoder.layers:
            h = h + layer.self_attn(h)
        return self.mask_decoder.head(h)


def make(out):
    torch.manual_seed(0)
    base = Tiny().eval()
    base_sd = {f"base.{k}": v.detach().clone().contiguous() for k, v in base.state_dict().items()}
    x = torch.randn(2, 5, 6)
    with torch.no_grad():
        y_base = base(x)
    cfg = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.05, target_modules=TARGETS)
    model = get_peft_model(base, cfg)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n:  # PEFT inits B = 0; make the adapter do something
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    tr, total = model.get_nb_trainable_parameters()
    trainable = f"trainable params: {tr:,d} || all params: {total:,d} || trainable%: {100 * tr / total:.4f}"
    model.eval()
    with torch.no_grad():
        y = model(x)
    model.save_pretrained(out)
    os.remove(os.path.join(out, "README.md"))  # PEFT's model-card template
    save_file({**base_sd, "input": x, "output": y, "output_base": y_base},
              os.path.join(out, "reference.safetensors"), metadata={"trainable": trainable})
    print(json.dumps({"peft": peft.__version__, "torch": torch.__version__,
                      "adapter_effect": (y - y_base).abs().max().item()}))


def check(adapter_dir, ref, tol):
    r = load_file(ref)
    base = Tiny()
    base.load_state_dict({k[5:]: v for k, v in r.items() if k.startswith("base.")})
    model = PeftModel.from_pretrained(base, adapter_dir).eval()
    ours = load_file(os.path.join(adapter_dir, "adapter_model.safetensors"))
    loaded = {n: p for n, p in model.named_parameters() if "lora_" in n}
    tensor_diff = 0.0
    for k, v in ours.items():
        n = k.replace(".lora_A.weight", ".lora_A.default.weight").replace(
            ".lora_B.weight", ".lora_B.default.weight")
        if n not in loaded:
            sys.exit(f"{k}: not loaded by PEFT (have {sorted(loaded)})")
        tensor_diff = max(tensor_diff, (loaded[n] - v).abs().max().item())
    if len(loaded) != len(ours):
        sys.exit(f"PEFT made {len(loaded)} lora tensors, the file has {len(ours)}")
    io = load_file(os.path.join(adapter_dir, "rust_io.safetensors"))
    with torch.no_grad():
        y = model(io["input"])
    scal = {n: m.scaling["default"] for n, m in model.named_modules() if hasattr(m, "scaling")}
    rep = {"max_abs_diff": (y - io["output"]).abs().max().item(),
           "max_abs_tensor_diff": tensor_diff, "lora_modules": len(scal),
           "scaling": scal, "peft": peft.__version__}
    print(json.dumps(rep, indent=1))
    if rep["max_abs_diff"] > tol or tensor_diff != 0.0:
        sys.exit(f"round trip differs: {rep['max_abs_diff']} > {tol}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make")
    m.add_argument("out")
    c = sub.add_parser("check")
    c.add_argument("adapter_dir")
    c.add_argument("ref")
    c.add_argument("--tol", type=float, default=1e-5)
    a = ap.parse_args()
    if a.cmd == "make":
        make(a.out)
    else:
        check(a.adapter_dir, a.ref, a.tol)


if __name__ == "__main__":
    main()
