"""Writes tiny GGUF files (metadata only, one tensor) as seeds for the gguf_tokenizer fuzz
target: a byte-level BPE (gpt2) and a SentencePiece (llama) vocabulary.

    .venv/bin/pip install gguf==0.19.0 && .venv/bin/python fuzz/seeds/make_gguf_seeds.py
"""

import pathlib

import gguf
import numpy as np

OUT = pathlib.Path(__file__).resolve().parent / "gguf_tokenizer"


def write(name, arch, model, tokens, types, scores=None, merges=None, pre=None):
    w = gguf.GGUFWriter(str(OUT / name), arch)
    w.add_tokenizer_model(model)
    if pre:
        w.add_tokenizer_pre(pre)
    w.add_token_list(tokens)
    w.add_token_types(types)
    if scores is not None:
        w.add_token_scores(scores)
    if merges is not None:
        w.add_token_merges(merges)
    w.add_bos_token_id(0)
    w.add_eos_token_id(1)
    w.add_tensor("token_embd.weight", np.zeros((len(tokens), 4), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


OUT.mkdir(parents=True, exist_ok=True)
bpe = ["<|endoftext|>", "<|im_start|>", "h", "e", "l", "o", "\u0120", "w", "he", "ll", "hell", "hello"]
write("tiny_gpt2.gguf", "qwen2", "gpt2", bpe, [3, 3] + [1] * 10,
      merges=["h e", "l l", "he ll", "hell o"], pre="qwen2")
spm = ["<pad>", "<eos>", "<start_of_turn>", "<0x41>", "\u2581", "h", "e", "l", "o", "he", "ll", "hello", "\u2581hello"]
write("tiny_llama.gguf", "gemma3", "llama", spm, [3, 3, 3, 6] + [1] * 9,
      scores=[0.0] * 4 + [-1.0, -2.0, -2.0, -2.0, -2.0, -1.5, -1.5, -0.5, -0.1])
print("wrote", sorted(p.name for p in OUT.iterdir()))
