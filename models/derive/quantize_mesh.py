#!/usr/bin/env python3
"""Derives an int8 (QDQ) face mesh from face_landmarks_478.fast.onnx, and checks it.

Why: the mesh is most of the face pipeline's time. ONNX Runtime runs QDQ convolutions with
its int8 kernels (u8 activations x s8 weights, VNNI `vpdpbusd` where the CPU has it), which
can be faster than float convolutions; whether they are, and whether the landmarks stay
close enough, is what this script measures. The result is written under target/derive/,
not models/: so far it is neither faster nor close enough to ship.

Measured 2026-12-01 (onnxruntime 1.31.1, 1 thread, 200 interleaved runs, medians; the
2-core build machine with AVX-512 VNNI):

| variant                                     | float ms | int8 ms | mean |dpx| | worst crop |
|---------------------------------------------|----------|---------|-------------|------------|
| every Conv (per-channel s8 weights, u8 acts) | 5.3      | 12.5    | 2.30 px     | 6.15 px    |
| every Conv and Add (an earlier run)          | 4.8      | 9.6     | 2.30 px     | -          |
| --pointwise-only (depthwise Convs kept float)| 5.2      | 14.3    | 1.70 px     | 3.93 px    |

Both miss the 0.5-px parity bound, and both are slower: the float model runs every
layer in ONNX Runtime's blocked NCHWc layout with fused activations (models/derive/
expand_prelu.py), while the QDQ graph runs its depthwise layers (about half of the mesh's
convolutions, and those of the 128x128 and 64x64 stages) in int8 kernels that have no
NCHWc form, with a quantize/dequantize pair around each layer; with --pointwise-only
every layer boundary converts.

Data split (no frame is in both):
* calibration: every 4th frame (0, 4, 8, ...) of .testdata/WolfgangLanger_Pexels.mp4 and
  every 8th of .testdata/single_face.mp4 (frames 0, 8, ...): the activation ranges.
* evaluation: the golden photos (tests/reference/golden/faces.json lists them), frames
  2, 6, 10, ... of WolfgangLanger_Pexels.mp4, frames 4, 12, ... of single_face.mp4, and every
  frame with a face of face_noface.mov and noface_face.mov.

Crops are made as the reference pipeline makes them (tests/reference/face_reference.py:
detector box centre, side 1.5 x max(w, h), rotated so the eyes are level, 256 x 256).
The script fails unless, on the evaluation crops, the mean absolute landmark difference
(x and y, in the 256-px crop) to the float model is at most 0.5 px, and writes the sha256.

    target/derive/bin/python models/derive/quantize_mesh.py [--pointwise-only] [--speed] [--check-only]
    (needs: pip install onnx==1.19.1 onnxruntime==1.31.1 numpy opencv-python-headless pillow)
"""

import argparse
import hashlib
import json
import pathlib
import statistics
import sys
import time

import cv2
import numpy as np
import onnxruntime as ort
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

ROOT = pathlib.Path(__file__).resolve().parents[2]
MODELS = ROOT / "models"
SOURCE = MODELS / "face_landmarks_478.fast.onnx"
TARGET = ROOT / "target/derive/face_landmarks_478.int8.onnx"
DATA = ROOT / ".testdata"
sys.path.insert(0, str(ROOT / "tests/reference"))
import face_reference  # noqa: E402

MAX_MEAN_PX = 0.5


def crops_of(image_rgb, pipeline):
    """The mesh input tensors [1,256,256,3] for each face the detector finds."""
    out = []
    for face in pipeline.detect(image_rgb):
        x, y, w, h = face["box"]
        (rx, ry), (lx, ly) = face["keypoints"][0], face["keypoints"][1]
        cx, cy, side, angle = x + w / 2, y + h / 2, 1.5 * max(w, h), np.arctan2(ly - ry, lx - rx)
        a, b, c, d, tx, ty = face_reference.rotated_square(cx, cy, side, angle, 256)
        m_inv = np.array([[a, b, tx + 0.5 * (a + b) - 0.5], [c, d, ty + 0.5 * (c + d) - 0.5]])
        crop = cv2.warpAffine(image_rgb, m_inv, (256, 256), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
        out.append((crop.astype(np.float32) / 255.0)[None])
    return out


def video_frames(path, keep):
    capture = cv2.VideoCapture(str(path))
    index = 0
    while True:
        ok, bgr = capture.read()
        if not ok:
            return
        if keep(index):
            yield np.ascontiguousarray(bgr[..., ::-1])
        index += 1


def crops():
    pipeline = face_reference.Pipeline(opencv=True)
    calibration, evaluation = [], []
    for frame in video_frames(DATA / "WolfgangLanger_Pexels.mp4", lambda i: i % 4 == 0):
        calibration += crops_of(frame, pipeline)
    for frame in video_frames(DATA / "single_face.mp4", lambda i: i % 8 == 0):
        calibration += crops_of(frame, pipeline)
    golden = json.loads((ROOT / "tests/reference/golden/faces.json").read_text())["images"]
    for name in golden:
        evaluation += crops_of(face_reference.load(DATA / name), pipeline)
    for frame in video_frames(DATA / "WolfgangLanger_Pexels.mp4", lambda i: i % 4 == 2):
        evaluation += crops_of(frame, pipeline)
    for frame in video_frames(DATA / "single_face.mp4", lambda i: i % 8 == 4):
        evaluation += crops_of(frame, pipeline)
    for name in ["face_noface.mov", "noface_face.mov"]:
        for frame in video_frames(DATA / name, lambda i: True):
            evaluation += crops_of(frame, pipeline)
    return calibration, evaluation


class Reader(CalibrationDataReader):
    def __init__(self, tensors):
        self.items = iter([{"input_12": t} for t in tensors])

    def get_next(self):
        return next(self.items, None)


def session(path):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def landmarks(sess, tensor):
    return sess.run(None, {"input_12": tensor})[0].reshape(478, 3)


def compare(evaluation):
    ref, q = session(SOURCE), session(TARGET)
    per_crop = []
    for t in evaluation:
        a, b = landmarks(ref, t), landmarks(q, t)
        per_crop.append(float(np.abs(a[:, :2] - b[:, :2]).mean()))
    return per_crop


def speed(runs=200):
    tensor = np.random.default_rng(0).random((1, 256, 256, 3), dtype=np.float32)
    out = {}
    sessions = {"float": session(SOURCE), "int8": session(TARGET)}
    for s in sessions.values():
        for _ in range(10):
            s.run(None, {"input_12": tensor})
    times = {k: [] for k in sessions}
    for _ in range(runs):  # interleaved, so that the machine's noise hits both alike
        for name, s in sessions.items():
            start = time.perf_counter()
            s.run(None, {"input_12": tensor})
            times[name].append((time.perf_counter() - start) * 1e3)
    for name, t in times.items():
        out[name] = statistics.median(t)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check-only", action="store_true", help="check the existing file, do not derive")
    parser.add_argument("--speed", action="store_true", help="also time both models (1 thread)")
    parser.add_argument("--pointwise-only", action="store_true", help="keep the depthwise convolutions in float")
    args = parser.parse_args()
    calibration, evaluation = crops()
    print(f"{len(calibration)} calibration crops, {len(evaluation)} evaluation crops", file=sys.stderr)
    if not args.check_only:
        prepared = TARGET.with_suffix(".pre.onnx")
        quant_pre_process(str(SOURCE), str(prepared), skip_symbolic_shape=True)
        import onnx

        graph = onnx.load(str(prepared)).graph
        depthwise = [
            n.name
            for n in graph.node
            if n.op_type == "Conv" and any(a.name == "group" and a.i > 1 for a in n.attribute)
        ]
        TARGET.parent.mkdir(parents=True, exist_ok=True)
        quantize_static(
            str(prepared),
            str(TARGET),
            Reader(calibration),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=True,
            calibrate_method=CalibrationMethod.MinMax,
            nodes_to_exclude=depthwise if args.pointwise_only else [],
            op_types_to_quantize=["Conv"],
        )
        prepared.unlink()
    per_crop = compare(evaluation)
    mean = statistics.fmean(per_crop)
    print(f"landmark |int8 - float| over {len(per_crop)} evaluation crops: mean {mean:.3f} px, worst crop {max(per_crop):.3f} px")
    if args.speed:
        print("median ms per run, 1 thread:", speed())
    print(f"{TARGET.name} sha256 {hashlib.sha256(TARGET.read_bytes()).hexdigest()} size {TARGET.stat().st_size}")
    if mean > MAX_MEAN_PX:
        sys.exit(f"mean landmark difference {mean:.3f} px is over {MAX_MEAN_PX} px")


if __name__ == "__main__":
    main()
