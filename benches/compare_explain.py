#!/usr/bin/env python3
"""Time to a complete judgement: affectd's Explain on its candle engine, next to the same
prompt served by llama.cpp's own server with a JSON-schema grammar.

Both sides get the same request from the same code: `affectd explain IMAGE` builds the
SoVTP prompt (marked faces, AUs, expression, ...) and the answer's JSON schema, then
- `--backend candle` generates in process (llguidance holds the model to the schema);
- `--backend openai` sends the same messages and the schema (response_format json_schema)
  to llama.cpp's own HTTP server, `llama-server` (C++), which turns the schema into a
  grammar. It is built natively (-DGGML_NATIVE=ON, Release) on first use into
  target/peers/llama-server from the llama.cpp sources vendored in llama-cpp-python 0.3.36's
  PyPI sdist (the same llama.cpp as the other benches' peers; about 6 minutes here), and
  runs with 2 threads, a 4096-token context and the same GGUF.
  (llama-cpp-python's own Python server was tried first: its per-token Python loop held
  generation to 6.6 tokens/s where its engine does 27, so it is not the peer.)
The two alternate image by image, `--rounds` times. The time compared is the result's
`timings.total_ms`: from the request to the validated judgement, prompt processing and
generation, with the model already loaded on both sides (the server's model is loaded
once at its start, and affectd's load time is not in total_ms). Greedy decoding on both.

    cargo build --release
    .venv/bin/python benches/compare_explain.py [--rounds 3] [--model GGUF]
"""

import argparse
import json
import os
import pathlib
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parents[1]
DATA = ROOT / ".testdata"
NATIVE = ROOT / "target/peers/llama-native/bin/python"
SERVER_DIR = ROOT / "target/peers/llama-server"
SERVER = SERVER_DIR / "build/bin/llama-server"
DEFAULT_MODEL = pathlib.Path(
    os.environ.get("AFFECTD_CACHE_DIR", pathlib.Path.home() / ".cache/affectd")
) / "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
# One face each (posed photos and a webcam-like portrait), then two and five faces.
IMAGES = ["single_face.jpg", "0-f15-hao-ph.jpg", "45-m7-di-ph.jpg", "15-f13-anc-ph.jpg", "multi_face.jpg"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_binary():
    """llama.cpp's llama-server, built natively from llama-cpp-python 0.3.36's sdist."""
    if SERVER.exists():
        return SERVER
    if not NATIVE.exists():
        sys.exit("no native llama.cpp venv: run benches/compare_llm.py once (it makes target/peers/llama-native)")
    print("building llama.cpp's llama-server natively into target/peers/llama-server (about 6 minutes)", file=sys.stderr)
    SERVER_DIR.mkdir(parents=True, exist_ok=True)
    pip = [str(NATIVE), "-m", "pip"]
    subprocess.run([*pip, "install", "-q", "cmake"], check=True)
    subprocess.run([*pip, "download", "-q", "--no-deps", "--no-binary", "llama-cpp-python", "llama-cpp-python==0.3.36", "-d", str(SERVER_DIR)], check=True)
    subprocess.run(["tar", "xzf", "llama_cpp_python-0.3.36.tar.gz"], cwd=SERVER_DIR, check=True)
    cmake = str(NATIVE.parent / "cmake")
    source = "llama_cpp_python-0.3.36/vendor/llama.cpp"
    subprocess.run([cmake, "-S", source, "-B", "build", "-DGGML_NATIVE=ON", "-DLLAMA_CURL=OFF", "-DLLAMA_OPENSSL=OFF",
                    "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF", "-DCMAKE_BUILD_TYPE=Release"], cwd=SERVER_DIR, check=True)
    subprocess.run([cmake, "--build", "build", "--target", "llama-server", f"-j{os.cpu_count()}"], cwd=SERVER_DIR, check=True)
    return SERVER


def start_server(model, threads):
    binary = server_binary()
    port = free_port()
    server = subprocess.Popen(
        [str(binary), "--host", "127.0.0.1", "--port", str(port), "--model", str(model),
         "--threads", str(threads), "--threads-batch", str(threads), "--ctx-size", "4096", "--parallel", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        if server.poll() is not None:
            sys.exit(f"llama-server exited with status {server.returncode} before answering (run {binary} --model {model} by hand to see why)")
        try:
            urllib.request.urlopen(f"{url}/health", timeout=2)
            return server, url
        except OSError:
            time.sleep(0.25)
    server.kill()
    sys.exit("llama-server did not come up")


def explain(binary, image, backend, env):
    done = subprocess.run([str(binary), "explain", str(image), "--quiet", "--backend", backend],
                          capture_output=True, text=True, env=env)
    if done.returncode != 0:
        return {"error": done.stderr.strip()[-400:]}
    return json.loads(done.stdout)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", type=pathlib.Path, default=ROOT / "target/release/affectd")
    parser.add_argument("--model", type=pathlib.Path, default=DEFAULT_MODEL)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if not args.model.is_file():
        sys.exit(f"no model at {args.model}: `affectd models fetch` puts it there, or pass --model PATH")
    server, url = start_server(args.model, args.threads)
    env = dict(os.environ, AFFECTD_LOG_LEVEL="error", AFFECTD_CANDLE_MODEL=str(args.model),
               AFFECTD_OPENAI_URL=url, CANDLE_NUM_THREADS=str(args.threads))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    rows = []
    try:
        for _ in range(args.rounds):
            for name in IMAGES:
                for backend in ["candle", "openai"]:
                    r = explain(args.binary, DATA / name, backend, env)
                    row = {"image": name, "backend": backend}
                    if "error" in r:
                        row["error"] = r["error"]
                    else:
                        row.update(total_s=r["timings"]["total_ms"] / 1000, prompt_tokens=r["timings"]["prompt_tokens"],
                                   generated=r["timings"]["generated_tokens"], parsed=r["parsed"],
                                   faces=len(r["judgements"]), labels=[j["label"] for j in r["judgements"]])
                    rows.append(row)
                    print(json.dumps(row), file=sys.stderr, flush=True)
    finally:
        server.kill()

    print(f"\nmodel {args.model.name}, {args.threads} threads, commit {commit}, {args.rounds} rounds; "
          "time to a complete judgement (timings.total_ms), medians (ranges)")
    print("| image | prompt tokens | affectd candle s | llama-server (native) s | ratio | labels (candle / llama.cpp) |")
    print("|---|---|---|---|---|---|")
    ratios = []
    for name in IMAGES:
        got = {b: [r for r in rows if r["image"] == name and r["backend"] == b and "error" not in r] for b in ["candle", "openai"]}
        if not got["candle"] or not got["openai"]:
            errors = [r["error"] for r in rows if r["image"] == name and "error" in r]
            print(f"| {name} | - | - | - | - | {errors[:1]} |")
            continue
        c = [r["total_s"] for r in got["candle"]]
        o = [r["total_s"] for r in got["openai"]]
        ratio = statistics.median(o) / statistics.median(c)
        ratios.append(ratio)
        print(f"| {name} | {got['candle'][0]['prompt_tokens']} | {statistics.median(c):.2f} ({min(c):.2f}-{max(c):.2f}) | "
              f"{statistics.median(o):.2f} ({min(o):.2f}-{max(o):.2f}) | {ratio:.2f}x | "
              f"{got['candle'][-1]['labels']} / {got['openai'][-1]['labels']} |")
    parsed = {b: sum(1 for r in rows if r["backend"] == b and r.get("parsed")) for b in ["candle", "openai"]}
    total = {b: sum(1 for r in rows if r["backend"] == b) for b in ["candle", "openai"]}
    print(f"validated judgements: candle {parsed['candle']}/{total['candle']}, llama.cpp {parsed['openai']}/{total['openai']}")
    if ratios:
        print(f"llama.cpp time / affectd time, median over images: {statistics.median(ratios):.2f}x")


if __name__ == "__main__":
    main()
