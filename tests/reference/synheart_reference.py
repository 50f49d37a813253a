"""synheart-emotion's own Python on RR series that affectd found (tests/integration/fusion_stress.rs).

Reads {"windows": [[rr_ms, ...], ...]} from the file named first and writes, to the file named
second, for each window the package's 14 features (`extract_14_features`) and its stress
model's probabilities [Baseline, Stress] (the package's own ONNX file through onnxruntime,
as the package runs it). With the `onnx` package importable it also counts the model's tree
splits per input, the evidence that only five inputs matter.

Needs: pip install --no-deps synheart-emotion==0.1.0 (numpy, scipy, onnxruntime present).
Run:   .venv/bin/python tests/reference/synheart_reference.py IN.json OUT.json
"""

import json
import pathlib
import sys

import numpy as np
import onnxruntime as ort
import synheart_emotion
from synheart_emotion.synheart_emotion import extract_14_features

MODEL = pathlib.Path(synheart_emotion.__file__).parent / "data" / "ExtraTrees_60_5_nozipmap.onnx"


def splits_per_input():
    try:
        import onnx
    except ImportError:
        return None
    model = onnx.load(str(MODEL))
    counts = {}
    for node in model.graph.node:
        if node.op_type == "TreeEnsembleClassifier":
            attrs = {a.name: a for a in node.attribute}
            for feature, mode in zip(attrs["nodes_featureids"].ints, attrs["nodes_modes"].strings):
                if mode != b"LEAF":
                    counts[feature] = counts.get(feature, 0) + 1
    return counts


def main():
    windows = json.loads(pathlib.Path(sys.argv[1]).read_text())["windows"]
    session = ort.InferenceSession(str(MODEL), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    features, probabilities = [], []
    for rr in windows:
        f = extract_14_features(rr)
        features.append(f)
        outputs = session.run(None, {name: np.array([f], dtype=np.float32)})
        p = next(o for o in outputs if getattr(o, "dtype", None) == np.float32)
        probabilities.append([float(v) for v in p[0]])
    out = {
        "package": f"synheart-emotion {synheart_emotion.__version__}",
        "features": features,
        "probabilities": probabilities,
        "splits_per_input": splits_per_input(),
    }
    pathlib.Path(sys.argv[2]).write_text(json.dumps(out))


if __name__ == "__main__":
    main()
