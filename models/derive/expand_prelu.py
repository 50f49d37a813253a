#!/usr/bin/env python3
"""Derives face_landmarks_478.fast.onnx from face_landmarks_478.onnx.

Why: ONNX Runtime's CPU PRelu kernel is a generic broadcasting loop, and both it and the
channel-padding Pad nodes of the MediaPipe face mesh sit outside ONNX Runtime's blocked
NCHWc layout, so every one of them forces a layout reorder before and after. Profiled with
onnxruntime 1.31 (1 thread), PRelu took 12 of 22 ms per run; a first rewrite to
Relu/Neg/Mul/Sub removed the PRelu kernel but kept the reorders (23% of the run).

This script rewrites the graph into operations that ONNX Runtime keeps in NCHWc:

* PRelu(x, a) -> x + (1 - a) * Relu(-x), with the negation and the per-channel scale as
  1x1 depthwise convolutions (group = channels). The Relu fuses into the first, the Add
  into the second (ONNX Runtime's conv "Sum" fusion). Exact algebra: for x >= 0 it is x,
  for x < 0 it is x - (1 - a) x = a x; in float it differs from PRelu by rounding only.
* Pad (zero channels appended, the residual path of the stride-2 blocks) -> a 1x1
  convolution with identity weights for the kept channels and zero rows for the new ones:
  exact, and about 2 M multiply-adds per run in all.

The script checks the result against the source on random inputs (largest landmark
difference printed; it is ~3e-4 px in the 256 px crop) and fails above 1e-3. The result is
written with onnx==1.19.1; its sha256 is pinned in models/manifest.toml.

    python models/derive/expand_prelu.py        (needs: pip install onnx==1.19.1 onnxruntime numpy)
"""

import pathlib
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper, shape_inference

HERE = pathlib.Path(__file__).resolve().parent.parent
SOURCE = HERE / "face_landmarks_478.onnx"
TARGET = HERE / "face_landmarks_478.fast.onnx"


def depthwise_1x1(name, x, weights, y):
    """A per-channel multiply as a 1x1 depthwise convolution (no bias)."""
    channels = weights.size
    init = numpy_helper.from_array(weights.reshape(channels, 1, 1, 1).astype(np.float32), name + "/w")
    node = helper.make_node("Conv", [x, init.name], [y], name=name, group=channels, kernel_shape=[1, 1])
    return node, init


def rewrite(model):
    graph = model.graph
    constants = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    inferred = shape_inference.infer_shapes(model).graph
    channels_of = {
        v.name: v.type.tensor_type.shape.dim[1].dim_value
        for v in inferred.value_info
        if len(v.type.tensor_type.shape.dim) == 4
    }
    nodes, inits = [], []
    for node in graph.node:
        if node.op_type == "PRelu":
            x, slope = node.input
            (y,) = node.output
            p = node.name or y
            a = constants[slope].reshape(-1)
            negate, w_negate = depthwise_1x1(p + "/negate", x, -np.ones_like(a), p + "/neg_x")
            scale, w_scale = depthwise_1x1(p + "/scale", p + "/relu_neg_x", 1.0 - a, p + "/scaled")
            nodes += [
                negate,
                helper.make_node("Relu", [p + "/neg_x"], [p + "/relu_neg_x"], name=p + "/relu"),
                scale,
                helper.make_node("Add", [p + "/scaled", x], [y], name=p + "/add"),
            ]
            inits += [w_negate, w_scale]
        elif node.op_type == "Pad":
            pads = constants[node.input[1]].tolist()
            kept = channels_of[node.input[0]]
            # NCHW pads: [n0, c0, h0, w0, n1, c1, h1, w1]; only appended channels are rewritten.
            if pads[:5] != [0] * 5 or pads[6:] != [0, 0]:
                sys.exit(f"{node.name}: unexpected pads {pads}")
            weights = np.zeros((kept + pads[5], kept, 1, 1), np.float32)
            weights[np.arange(kept), np.arange(kept)] = 1.0
            init = numpy_helper.from_array(weights, node.name + "/w_identity")
            nodes.append(helper.make_node("Conv", [node.input[0], init.name], list(node.output), name=node.name + "/as_conv", kernel_shape=[1, 1]))
            inits.append(init)
        else:
            nodes.append(node)
    del graph.node[:]
    graph.node.extend(nodes)
    graph.initializer.extend(inits)
    return model


def main():
    model = rewrite(onnx.load(str(SOURCE)))
    onnx.checker.check_model(model)
    TARGET.write_bytes(model.SerializeToString())
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    a = ort.InferenceSession(str(SOURCE), options, providers=["CPUExecutionProvider"])
    b = ort.InferenceSession(str(TARGET), options, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    worst = [0.0] * len(a.get_outputs())
    for _ in range(8):
        x = rng.random((1, 256, 256, 3), dtype=np.float32)
        for k, (oa, ob) in enumerate(zip(a.run(None, {"input_12": x}), b.run(None, {"input_12": x}))):
            worst[k] = max(worst[k], float(np.abs(oa - ob).max()))
    names = [o.name for o in a.get_outputs()]
    print(f"{TARGET.name}: largest difference from the source on 8 random inputs: " + ", ".join(f"{n} {w:.2e}" for n, w in zip(names, worst)))
    if max(worst) > 1e-3:
        sys.exit("the derived model does not match its source")


if __name__ == "__main__":
    main()
