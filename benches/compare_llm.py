#!/usr/bin/env python3
"""Local LLM speed: affectd's candle backend vs llama.cpp, in one run, on the same GGUF,
the same prompt token ids, the same threads, greedy decoding.

1. `affectd bench-llm` (release build) tokenizes a SoVTP-sized prompt with the model's
   chat template, reads it, then generates N greedy tokens, R times; it prints the ids.
2. llama-cpp-python (llama.cpp built from source by scripts/setup.sh --dev) reads exactly
   those ids and generates N greedy tokens (argmax of the logits, end-of-turn ignored),
   R times, in this process.
3. Prints the medians of prompt-processing and generation tokens/s, and candle/llama.cpp.

    cargo build --release
    .venv/bin/python benches/compare_llm.py [--model PATH] [--threads 2] [--tokens 64]

The default model is the default explanation model (`affectd models fetch`).
"""

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import tempfile
import time

import llama_cpp
import numpy as np

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


def rates(runs, n_prompt, n_gen):
    pp = statistics.median(n_prompt / r["prompt_s"] for r in runs)
    tg = statistics.median(n_gen / r["generate_s"] for r in runs)
    return pp, tg


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", type=pathlib.Path, default=DEFAULT_MODEL)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--binary", type=pathlib.Path, default=ROOT / "target/release/affectd")
    args = parser.parse_args()

    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write(PROMPT)
        prompt_file = f.name
    env = dict(os.environ, CANDLE_NUM_THREADS=str(args.threads), RAYON_NUM_THREADS=str(args.threads))
    out = subprocess.run(
        [str(args.binary), "bench-llm", "--model", str(args.model), "--prompt-file", prompt_file,
         "--tokens", str(args.tokens), "--repeat", str(args.repeat)],
        check=True, capture_output=True, text=True, env=env,
    )
    candle = json.loads(out.stdout)
    ids = candle["prompt_ids"]
    ref_runs, ref_generated = llama_cpp_run(args.model, ids, args.tokens, args.threads, args.repeat)

    c_pp, c_tg = rates(candle["runs"], len(ids), args.tokens)
    l_pp, l_tg = rates(ref_runs, len(ids), args.tokens)
    same = sum(1 for a, b in zip(candle["generated"], ref_generated) if a == b)
    first_diff = next(
        (i for i, (a, b) in enumerate(zip(candle["generated"], ref_generated)) if a != b), None
    )
    print(f"model {args.model.name}, {len(ids)} prompt tokens, {args.tokens} generated, "
          f"{args.threads} threads, medians of {args.repeat} runs (llama-cpp-python {llama_cpp.__version__})")
    print(f"| | prompt tokens/s | generation tokens/s |")
    print(f"|---|---|---|")
    print(f"| affectd candle | {c_pp:.1f} | {c_tg:.2f} |")
    print(f"| llama.cpp | {l_pp:.1f} | {l_tg:.2f} |")
    print(f"| ratio candle/llama.cpp | {c_pp / l_pp:.2f}x | {c_tg / l_tg:.2f}x |")
    print(f"greedy tokens equal to llama.cpp's: {same}/{args.tokens}"
          + ("" if first_diff is None else f" (first difference at token {first_diff})"))


if __name__ == "__main__":
    main()
