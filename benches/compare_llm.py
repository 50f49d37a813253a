#!/usr/bin/env python3
"""Local LLM speed: affectd's candle backend vs llama.cpp, in one run, on the same GGUF,
the same prompt token ids, the same threads, greedy decoding.

Two llama.cpp builds (llama-cpp-python 0.3.36, from its PyPI sdist) are the peers:
- portable: the tests' build in .venv (scripts/setup.sh --dev: CMAKE_ARGS="-DGGML_NATIVE=OFF
  -DGGML_AVX512=OFF", AVX2);
- native: built here on first use into target/peers/llama-native with
  CMAKE_ARGS="-DGGML_NATIVE=ON" (-march=native: AVX-512, VNNI, BF16 where the CPU has them;
  about 5 minutes). This one is the peer that the goals are set against.

1. `affectd bench-llm` (release build) tokenizes a SoVTP-sized prompt with the model's
   chat template, reads it, then generates N greedy tokens, R times; it prints the ids.
2. Each llama.cpp build, in a process of its own (this script with --worker), reads exactly
   those ids and generates N greedy tokens (argmax of the logits, end-of-turn ignored), R
   times.
3. The three run alternately, --rounds times; the first run of each process is a warm-up
   and is dropped. Prints the medians of prompt-processing and generation tokens/s over
   the rest, with their ranges, and candle / llama.cpp for both builds, and whether the
   greedy tokens are equal.

    cargo build --release
    .venv/bin/python benches/compare_llm.py [--model PATH] [--threads 2] [--tokens 64] [--rounds 3]

The default model is the default explanation model (`affectd models fetch`).
"""

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_MODEL = pathlib.Path(
    os.environ.get("AFFECTD_CACHE_DIR", pathlib.Path.home() / ".cache/affectd")
) / "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"

# About the size of a one-face SoVTP prompt (~600-900 tokens).
PROMPT = (
    "Stage 1, scene: a participant sits at a desk in a dimly lit lab, watching a film clip.\n"
    + "".join(
        f"Face {i % 3 + 1}: AU{(i * 7) % 28 + 1:02d} intensity {(i * 37 % 50) / 10:.1f}/5 "
        f"({['absent', 'trace', 'slight', 'marked', 'severe'][i % 5]}); head yaw {(i * 13) % 40 - 20} deg; "
        f"expression happy {(i * 11 % 100) / 100:.2f}, sad {(i * 17 % 100) / 100:.2f}.\n"
        for i in range(18)
    )
    + "Physiology: heart rate 82 bpm (+9 from baseline), 3 skin-conductance responses in the "
    "last 10 s (mean 0.41 uS), frontal alpha asymmetry +0.12, beta/alpha 1.4.\n"
    "Answer with one JSON object per face: face_id, label, confidence, valence, arousal, rationale."
)


def llama_cpp_run(model, ids, tokens, threads, repeat):
    import llama_cpp
    import numpy as np

    llm = llama_cpp.Llama(
        model_path=str(model), n_ctx=4096, n_batch=512, n_threads=threads,
        n_threads_batch=threads, verbose=False,
    )
    n_vocab = llm.n_vocab()
    runs, generated = [], []
    for _ in range(repeat):
        llm.reset()
        t0 = time.perf_counter()
        llm.eval(ids)
        prompt_s = time.perf_counter() - t0
        generated = []
        t0 = time.perf_counter()
        for _ in range(tokens):
            logits = np.ctypeslib.as_array(
                llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1), shape=(n_vocab,)
            )
            token = int(np.argmax(logits))
            generated.append(token)
            llm.eval([token])
        runs.append({"prompt_s": prompt_s, "generate_s": time.perf_counter() - t0})
    return runs, generated


NATIVE = ROOT / "target/peers/llama-native"
PEERS = {
    "portable": ROOT / ".venv/bin/python",
    "native": NATIVE / "bin/python",
}


def native_python():
    """The native llama.cpp build's venv, built on first use from the PyPI sdist."""
    python = PEERS["native"]
    if not python.exists():
        print("building llama-cpp-python natively into target/peers/llama-native (about 5 minutes)", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(NATIVE)], check=True)
        env = dict(os.environ, CMAKE_ARGS="-DGGML_NATIVE=ON", CMAKE_BUILD_PARALLEL_LEVEL=str(os.cpu_count()))
        subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-cache-dir", "numpy", "llama-cpp-python==0.3.36"], check=True, env=env)
    return python


def worker(args):
    """--worker: one llama.cpp build in this process; prints its runs as JSON."""
    import llama_cpp

    ids = json.loads(pathlib.Path(args.ids).read_text())
    runs, generated = llama_cpp_run(args.model, ids, args.tokens, args.threads, args.repeat)
    print(json.dumps({
        "runs": runs,
        "generated": generated,
        "version": llama_cpp.__version__,
        "system_info": llama_cpp.llama_print_system_info().decode().strip(),
    }))


def rates(runs, n_prompt, n_gen):
    pp = [n_prompt / r["prompt_s"] for r in runs]
    tg = [n_gen / r["generate_s"] for r in runs]
    return pp, tg


def spread(values, digits):
    return f"{statistics.median(values):.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", type=pathlib.Path, default=DEFAULT_MODEL)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=2, help="runs per process (the first is a warm-up)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of the three engines")
    parser.add_argument("--binary", type=pathlib.Path, default=ROOT / "target/release/affectd")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--ids", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    repeat = max(args.repeat, 2)

    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write(PROMPT)
        prompt_file = f.name
    env = dict(os.environ, CANDLE_NUM_THREADS=str(args.threads), RAYON_NUM_THREADS=str(args.threads))
    peers = {"portable": PEERS["portable"], "native": native_python()}
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    runs = {"candle": [], **{name: [] for name in peers}}
    generated, info = {}, {}
    ids = None
    ids_file = pathlib.Path(tempfile.mkstemp(suffix=".json")[1])
    for _ in range(args.rounds):  # alternately, so that the machine's noise hits all alike
        out = subprocess.run(
            [str(args.binary), "bench-llm", "--model", str(args.model), "--prompt-file", prompt_file,
             "--tokens", str(args.tokens), "--repeat", str(repeat)],
            check=True, capture_output=True, text=True, env=env,
        )
        candle = json.loads(out.stdout)
        ids = candle["prompt_ids"]
        ids_file.write_text(json.dumps(ids))
        runs["candle"] += candle["runs"][1:]
        generated["candle"] = candle["generated"]
        for name, python in peers.items():
            out = subprocess.run(
                [str(python), __file__, "--worker", "--ids", str(ids_file), "--model", str(args.model),
                 "--tokens", str(args.tokens), "--threads", str(args.threads), "--repeat", str(repeat)],
                check=True, capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS=str(args.threads)),
            )
            result = json.loads(out.stdout.strip().splitlines()[-1])
            runs[name] += result["runs"][1:]
            generated[name] = result["generated"]
            info[name] = result

    n = len(ids)
    print(f"model {args.model.name}, {n} prompt tokens, {args.tokens} generated, {args.threads} threads, "
          f"commit {commit}; medians (ranges) of {len(runs['candle'])} warm runs, {args.rounds} alternating rounds")
    for name in peers:
        print(f"llama.cpp {name}: llama-cpp-python {info[name]['version']}; {info[name]['system_info']}")
    print("| | prompt tokens/s | generation tokens/s |")
    print("|---|---|---|")
    rate = {name: rates(r, n, args.tokens) for name, r in runs.items()}
    for name, (pp, tg) in rate.items():
        label = "affectd candle" if name == "candle" else f"llama.cpp {name}"
        print(f"| {label} | {spread(pp, 1)} | {spread(tg, 2)} |")
    c_pp, c_tg = (statistics.median(v) for v in rate["candle"])
    for name in peers:
        l_pp, l_tg = (statistics.median(v) for v in rate[name])
        print(f"| candle / llama.cpp {name} | {c_pp / l_pp:.2f}x | {c_tg / l_tg:.2f}x |")
    for name in peers:
        same = sum(1 for a, b in zip(generated["candle"], generated[name]) if a == b)
        first_diff = next((i for i, (a, b) in enumerate(zip(generated["candle"], generated[name])) if a != b), None)
        print(f"greedy tokens equal to llama.cpp {name}'s: {same}/{args.tokens}"
              + ("" if first_diff is None else f" (first difference at token {first_diff})"))


if __name__ == "__main__":
    main()
