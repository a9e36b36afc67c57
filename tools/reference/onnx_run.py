#!/usr/bin/env python3
"""Run an ONNX model with onnxruntime on CPU (dev-time only; never used at run time).

Checks the model with `onnx.checker.check_model(full_check=True)` (strict shape inference
included), feeds every tensor of INPUT.safetensors whose name is a graph input, and saves
every graph output, by name, to OUTPUT.safetensors. tests/engine_onnx.rs compares those
against our own ops. Prints one line.

--also NAME,... returns intermediate values too (saved under their own names), by adding
them as graph outputs after the check: tests/engine_onnx_post.rs reads the raw head outputs
`pred`/`proto` of a postprocessed model this way.
Usage: onnx_run.py MODEL.onnx INPUT.safetensors OUTPUT.safetensors [--threads N] [--also NAMES]
"""
import argparse
import sys

import numpy as np
import onnx
import onnxruntime as ort
from safetensors.numpy import load_file, save_file


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("inputs")
    ap.add_argument("outputs")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--also", default="", help="comma list of intermediate values to return")
    a = ap.parse_args()

    model = onnx.load(a.model)
    onnx.checker.check_model(model, full_check=True)

    so = ort.SessionOptions()
    so.intra_op_num_threads = a.threads
    so.inter_op_num_threads = 1
    source = a.model
    also = [n for n in a.also.split(",") if n]
    if also:
        # Element types from shape inference (float when it does not know).
        inferred = onnx.shape_inference.infer_shapes(model)
        known = {v.name: v.type.tensor_type.elem_type for v in inferred.graph.value_info}
        have = {o.name for o in model.graph.output}
        for n in also:
            if n not in have:
                elem = known.get(n) or onnx.TensorProto.FLOAT
                model.graph.output.append(onnx.helper.make_tensor_value_info(n, elem, None))
        source = model.SerializeToString()
    sess = ort.InferenceSession(source, so, providers=["CPUExecutionProvider"])

    given = load_file(a.inputs)
    feeds = {}
    for i in sess.get_inputs():
        if i.name not in given:
            sys.exit(f"onnx_run: graph input {i.name!r} is not in {a.inputs} (has {sorted(given)})")
        feeds[i.name] = given[i.name]
    names = [o.name for o in sess.get_outputs()]
    outs = sess.run(names, feeds)
    save_file({n: np.ascontiguousarray(o) for n, o in zip(names, outs)}, a.outputs)
    shapes = ", ".join(f"{n} {list(o.shape)}" for n, o in zip(names, outs))
    print(f"onnx_run: {a.model}: checker ok, onnxruntime {ort.__version__}: {shapes}")


if __name__ == "__main__":
    main()
