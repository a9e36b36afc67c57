"""Make a `grounding-dino` parity fixture (FIXTURES.md) from transformers'
GroundingDinoForObjectDetection with random weights, a synthetic vocab and a prompt.

Dev-time only. Usage:
  python make_grounding_dino_fixture.py --variant pad5 --out tests/fixtures/grounding-dino-pad5.safetensors
Variants vary the Swin depths/heads/window, model width, query count, image size
(with padding), feature levels, prompts (batch of two, padded), activation, box-head
sharing, embedding_init_target and the checkpoint's Swin names (old or new).
"""
import argparse
import json

import numpy as np
import torch
import transformers
from safetensors.torch import save_file
from transformers import BertTokenizer, GroundingDinoConfig, GroundingDinoForObjectDetection

WORDS = ["ear", "of", "bag", "surface", "defect", "printed", "label", "##s", "##ed", "car",
         "red", "blue", "small", "box", "cup", "the", "a", "dog", "cat", "##ty", "pe", "##n",
         "scratch", "dent", "cap", "bottle", "screw", "hole", "crack", "ring"]


def vocab_lines(size):
    lines = ["[PAD]"] + [f"[unused{i}]" for i in range(1, 100)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    while len(lines) < size:
        lines.append(f"[unused{len(lines)}]")
    lines[1012] = "."
    lines[1029] = "?"
    lines[1010] = ","
    for i, w in enumerate(WORDS):
        lines[1040 + i] = w
    return lines


VARIANTS = {
    # Odd image (padding in patch embed, windows and merging), window 3, five levels
    # (two extra), batch of two with a padded image and a padded prompt, separate box
    # heads per decoder layer.
    "pad5": dict(
        backbone=dict(embed_dim=16, depths=[2, 2, 2, 1], num_heads=[1, 2, 2, 4], window_size=3,
                      out_indices=[1, 2, 3]),
        text=dict(hidden_size=48, num_hidden_layers=1, num_attention_heads=4, intermediate_size=96),
        model=dict(d_model=64, num_queries=20, encoder_layers=2, encoder_ffn_dim=128,
                   encoder_attention_heads=4, decoder_layers=3, decoder_ffn_dim=96,
                   decoder_attention_heads=4, num_feature_levels=5, encoder_n_points=3,
                   decoder_n_points=2, max_text_len=24, decoder_bbox_embed_share=False),
        size=[(100, 72), (84, 60)],
        prompts=["red box . cup . scratch .", "the dog ? cat ."],
        seed=5, legacy=False,
    ),
    # Square input, window 2, three levels (no extra), GELU, one decoder head, shared box
    # head, and the checkpoint in the old Swin names. (embedding_init_target=False cannot
    # run in transformers 5.23 with two_stage: the model reads a missing embedding.)
    "legacy3": dict(
        backbone=dict(embed_dim=16, depths=[1, 1, 3, 1], num_heads=[2, 2, 4, 8], window_size=2,
                      out_indices=[2, 3, 4]),
        text=dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64),
        model=dict(d_model=32, num_queries=7, encoder_layers=1, encoder_ffn_dim=64,
                   encoder_attention_heads=2, decoder_layers=2, decoder_ffn_dim=64,
                   decoder_attention_heads=1, num_feature_levels=3, encoder_n_points=2,
                   decoder_n_points=4, max_text_len=16, activation_function="gelu"),
        size=[(64, 64)],
        prompts=["screw hole . crack . bottle cap ."],
        seed=11, legacy=True,
    ),
}

OLD_SWIN = [("attention.q_proj", "attention.self.query"), ("attention.k_proj", "attention.self.key"),
            ("attention.v_proj", "attention.self.value"),
            ("attention.relative_position_bias.relative_position_bias_table",
             "attention.self.relative_position_bias_table"),
            ("attention.o_proj", "attention.output.dense"), ("mlp.fc1", "intermediate.dense"),
            ("mlp.fc2", "output.dense")]


def old_name(k):
    if not k.startswith("model.backbone.conv_encoder.model."):
        return k
    for new, old in OLD_SWIN:
        if new in k:
            return k.replace(new, old)
    return k


def randomize(model, g):
    # Every parameter drawn so that each path matters (transformers' init leaves the fusion
    # gains at 1e-4 and many biases at 0).
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() >= 2:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=g) / fan_in ** 0.5)
            elif "norm" in name.lower() and name.endswith("weight"):
                p.copy_(1 + 0.2 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.2 * torch.randn(p.shape, generator=g))
        for name, p in model.named_parameters():
            if "relative_position_bias_table" in name or "level_embed" in name:
                p.copy_(torch.randn(p.shape, generator=g))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--variant", required=True, choices=sorted(VARIANTS))
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    v = VARIANTS[a.variant]
    torch.manual_seed(v["seed"])
    g = torch.Generator().manual_seed(v["seed"])
    vocab = vocab_lines(1100)
    import tempfile, os
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "vocab.txt")
        with open(path, "w") as f:
            f.write("\n".join(vocab) + "\n")
        # transformers 5.23's BertTokenizer(vocab_file=...) ignores the file; from_pretrained
        # on the folder reads vocab.txt.
        tok = BertTokenizer.from_pretrained(d, do_lower_case=True)
        assert tok.vocab_size == len(vocab), tok.vocab_size
        enc = tok(v["prompts"], padding="longest", return_tensors="pt")
    bb = dict(model_type="swin", image_size=224, patch_size=4, mlp_ratio=2.0, drop_path_rate=0.0,
              **v["backbone"])
    tc = dict(model_type="bert", vocab_size=len(vocab), max_position_embeddings=64,
              hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, **v["text"])
    cfg = GroundingDinoConfig(backbone_config=bb, text_config=tc, dropout=0.0, fusion_droppath=0.0,
                              disable_custom_kernels=True, **v["model"])
    model = GroundingDinoForObjectDetection(cfg).eval()
    randomize(model, g)
    b = len(v["size"])
    hmax = max(h for h, _ in v["size"])
    wmax = max(w for _, w in v["size"])
    pixel_values = torch.zeros(b, 3, hmax, wmax)
    pixel_mask = torch.zeros(b, hmax, wmax, dtype=torch.long)
    for i, (h, w) in enumerate(v["size"]):
        pixel_values[i, :, :h, :w] = torch.randn(3, h, w, generator=g)
        pixel_mask[i, :h, :w] = 1
    if len(v["prompts"]) != b:
        raise SystemExit("one prompt per image")
    with torch.no_grad():
        out = model(pixel_values=pixel_values, input_ids=enc["input_ids"],
                    token_type_ids=enc["token_type_ids"], attention_mask=enc["attention_mask"],
                    pixel_mask=pixel_mask)
    tensors = {}
    for k, t in model.state_dict().items():
        tensors["weights." + (old_name(k) if v["legacy"] else k)] = t.contiguous().clone()
    tensors["inputs.pixel_values"] = pixel_values
    tensors["inputs.pixel_mask"] = pixel_mask
    for k in ("input_ids", "attention_mask", "token_type_ids"):
        tensors["inputs." + k] = enc[k]
    for k in ("logits", "pred_boxes", "last_hidden_state", "encoder_last_hidden_state_vision",
              "encoder_last_hidden_state_text", "init_reference_points", "intermediate_hidden_states",
              "intermediate_reference_points", "enc_outputs_class", "enc_outputs_coord_logits",
              "encoder_logits", "encoder_pred_boxes"):
        tensors["outputs." + k] = getattr(out, k).contiguous().clone()
    prompt = v["prompts"][0] if b == 1 else json.dumps(v["prompts"])
    meta = {
        "kind": "grounding-dino",
        "reference": f"transformers {transformers.__version__} GroundingDinoForObjectDetection, torch {torch.__version__}",
        "config": json.dumps(cfg.to_dict()),
        "tolerances": json.dumps({"outputs.*": {"atol": 2e-4, "rtol": 2e-3}}),
        "vocab": "\n".join(vocab) + "\n",
        "prompt": prompt,
        "notes": (f"variant {a.variant}: random weights (every parameter redrawn), random pixels "
                  "zero-padded to the batch size with pixel_mask; input_ids from BertTokenizer(vocab, "
                  "lower case) on the prompt(s), padding='longest' (prompt is a JSON list when the "
                  "batch has several). Swin names are " + ("the old ones (attention.self.query, ...)"
                  if v["legacy"] else "transformers 5's") + ". pred_boxes are normalized cxcywh; "
                  "logits (B, queries, max_text_len), -inf past the prompt."),
    }
    save_file(tensors, a.out, metadata=meta)
    print(a.out, {k: tuple(t.shape) for k, t in tensors.items() if not k.startswith("weights.")})


if __name__ == "__main__":
    main()
