#!/usr/bin/env python3
"""ONNX Runtime's execution options on this CPU, for the face models affectd runs.

Measures, in one process and interleaved round by round (so that machine noise falls on
every variant alike), the per-call time of the face mesh (the tracked pipeline's critical
path), the RetinaFace detector at 384 px and the blendshape model under:

* affectd's settings: every graph optimisation (ORT_ENABLE_ALL, which includes the blocked
  NCHWc layout), 1 intra-op thread, no spinning;
* lower optimisation levels (EXTENDED: no layout transformation; BASIC);
* 2 intra-op threads, without and with spinning (a single image's latency; a run of
  images or a stream already keeps both cores busy with one model run each);
* denormals as zero, no memory-pattern planning, no CPU arena, parallel execution mode;
* and, for the mesh, batching: one call on N crops against N calls on one crop each.

The execution providers the PyPI wheel offers are printed: it has the CPU provider only
(plus Azure, a remote one), so XNNPACK, oneDNN and OpenVINO are not reachable from
registry packages here.

Inputs are real: face crops made from frames of .testdata/WolfgangLanger_Pexels.mp4 (the
clip the MediaPipe comparison uses) by the Python reference pipeline's cropping.

    .venv/bin/python benches/ort_options.py [--rounds 7] [--calls 40]

Measured 2026-12-01 (`--rounds 5 --calls 30`, commit cacd2c2, the 2-core build machine with
AVX-512), per call, medians; relative to affectd's settings:

| variant                      | mesh          | detector 384 px | blendshapes  |
|------------------------------|---------------|-----------------|--------------|
| affectd (ALL, 1 thread)      | 4.77 ms       | 5.85 ms         | 0.91 ms      |
| EXTENDED (no NCHWc layout)   | 10.83 (0.44x) | 10.42 (0.56x)   | 0.92 (0.98x) |
| BASIC                        | 10.81 (0.44x) | 10.80 (0.54x)   | 0.93 (0.97x) |
| 2 threads, no spinning       | 5.78 (0.82x)  | 5.08 (1.15x)    | 1.16 (0.78x) |
| 2 threads, spinning          | 3.28 (1.45x)  | 3.61 (1.62x)    | 0.89 (1.02x) |
| denormals as zero            | 4.76 (1.00x)  | 5.78 (1.01x)    | 0.90 (1.01x) |
| no memory pattern, no arena  | 4.92 (0.97x)  | 6.26 (0.93x)    | 0.91 (1.00x) |
| parallel execution mode      | 4.77 (1.00x)  | 5.82 (1.01x)    | 0.89 (1.02x) |

Mesh batching, ms per face: 1 crop a call 4.84, 2 crops 5.61 (0.86x), 5 crops 6.06 (0.80x),
8 crops 6.24 (0.78x): slower per face, so a frame's faces stay one call each, on every core.

Only "2 threads, spinning" is faster, and only for one model alone on an idle machine; in
the pipeline both cores already run a model each, and the spinning threads take them from
each other. `affectd analyze` (release, same commit, two runs each, with
AFFECTD_ONNX_THREADS / AFFECTD_ONNX_SPINNING): the 300-frame clip 2.64-2.68 s with 1 thread,
2.89-2.97 s with 2 threads, 6.24-6.33 s with 2 spinning threads; the 60 images 0.74-0.84 s,
0.87-0.92 s and 2.42-2.52 s. So affectd keeps 1 thread without spinning (the settings stay
configurable, `[onnx] intra_threads` and `spinning`, for a machine with cores to spare).
"""

import argparse
import pathlib
import statistics
import subprocess
import sys
import time

import cv2
import numpy as np
import onnxruntime as ort

ROOT = pathlib.Path(__file__).resolve().parents[1]
MODELS = ROOT / "models"
sys.path.insert(0, str(ROOT / "tests/reference"))


def commit():
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()


def options(level=ort.GraphOptimizationLevel.ORT_ENABLE_ALL, threads=1, spinning=False, config=(), arena=True, pattern=True, parallel=False):
    o = ort.SessionOptions()
    o.graph_optimization_level = level
    o.intra_op_num_threads = threads
    o.inter_op_num_threads = 1
    o.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    o.add_session_config_entry("session.inter_op.allow_spinning", "0")
    for key, value in config:
        o.add_session_config_entry(key, value)
    o.enable_cpu_mem_arena = arena
    o.enable_mem_pattern = pattern
    if parallel:
        o.execution_mode = ort.ExecutionMode.ORT_PARALLEL
    o.log_severity_level = 3
    return o


VARIANTS = {
    "affectd (ALL, 1 thread, no spin)": {},
    "EXTENDED (no NCHWc layout)": {"level": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED},
    "BASIC": {"level": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC},
    "2 threads, no spin": {"threads": 2},
    "2 threads, spinning": {"threads": 2, "spinning": True},
    "denormals as zero": {"config": (("session.set_denormal_as_zero", "1"),)},
    "no memory pattern, no arena": {"arena": False, "pattern": False},
    "parallel execution mode": {"parallel": True},
}


def face_crops(count):
    """Mesh input tensors [1, 256, 256, 3] of the clip's first frames (the reference
    pipeline's detector and crop, OpenCV's warp), and the first frame."""
    import face_reference

    pipeline = face_reference.Pipeline(opencv=True)
    capture = cv2.VideoCapture(str(ROOT / ".testdata/WolfgangLanger_Pexels.mp4"))
    crops, first = [], None
    while len(crops) < count:
        ok, frame = capture.read()
        if not ok:
            break
        rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        first = rgb if first is None else first
        for face in pipeline.detect(rgb):
            x, y, w, h = face["box"]
            (rx, ry), (lx, ly) = face["keypoints"][0], face["keypoints"][1]
            cx, cy, side, angle = x + w / 2, y + h / 2, 1.5 * max(w, h), np.arctan2(ly - ry, lx - rx)
            a, b, c, d, tx, ty = face_reference.rotated_square(cx, cy, side, angle, 256)
            m_inv = np.array([[a, b, tx + 0.5 * (a + b) - 0.5], [c, d, ty + 0.5 * (c + d) - 0.5]])
            crop = cv2.warpAffine(rgb, m_inv, (256, 256), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
            crops.append((crop.astype(np.float32) / 255.0)[None])
    if not crops:
        sys.exit("no face found in the clip")
    return crops[:count], first


def median_ms(session, feeds, calls):
    name = session.get_inputs()[0].name
    start = time.perf_counter()
    for i in range(calls):
        session.run(None, {name: feeds[i % len(feeds)]})
    return (time.perf_counter() - start) * 1e3 / calls


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=40)
    args = parser.parse_args()
    print(f"onnxruntime {ort.__version__}; providers in the wheel: {ort.get_available_providers()}; commit {commit()}")

    crops, frame = face_crops(8)
    mesh_feeds = crops
    detector_input = cv2.resize(frame, (384, 288)).astype(np.float32).transpose(2, 0, 1)[None] - 117.0
    points = [np.random.default_rng(i).random((1, 146, 2), dtype=np.float32) * 256 for i in range(8)]
    models = {
        "mesh": (MODELS / "face_landmarks_478.fast.onnx", mesh_feeds),
        "detector 384 px": (MODELS / "face_detector_retinaface.onnx", [detector_input]),
        "blendshapes": (MODELS / "face_blendshapes_52.onnx", points),
    }
    sessions = {
        (model, variant): ort.InferenceSession(str(path), options(**kw), providers=["CPUExecutionProvider"])
        for model, (path, _) in models.items()
        for variant, kw in VARIANTS.items()
    }
    times = {key: [] for key in sessions}
    batch_sizes = (1, 2, 5, 8)
    batches = {n: np.concatenate(mesh_feeds[:n]) for n in batch_sizes}
    batch_times = {n: [] for n in batch_sizes}
    base = sessions[("mesh", "affectd (ALL, 1 thread, no spin)")]
    for key, session in sessions.items():  # warm-up
        median_ms(session, models[key[0]][1], 3)
    for _ in range(args.rounds):
        for (model, variant), session in sessions.items():
            times[(model, variant)].append(median_ms(session, models[model][1], args.calls))
        for n, batch in batches.items():
            calls = max(args.calls // n, 4)
            batch_times[n].append(median_ms(base, [batch], calls) / n)

    def fmt(values):
        return f"{statistics.median(values):7.2f} ({min(values):.2f}-{max(values):.2f})"

    print(f"\nper call, ms: median (range) over {args.rounds} rounds of {args.calls} calls")
    for model in models:
        reference = statistics.median(times[(model, "affectd (ALL, 1 thread, no spin)")])
        print(f"\n{model}")
        for variant in VARIANTS:
            values = times[(model, variant)]
            print(f"  {variant:36} {fmt(values)}  {reference / statistics.median(values):5.2f}x affectd's")
    print("\nmesh, batching (affectd's settings): ms per face")
    one = statistics.median(batch_times[1])
    for n in batch_sizes:
        print(f"  {n} crop(s) per call                     {fmt(batch_times[n])}  {one / statistics.median(batch_times[n]):5.2f}x one per call")


if __name__ == "__main__":
    main()
