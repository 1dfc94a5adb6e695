"""qwen_vocab.py — Qwen's real vocabulary as a tokenizer.json, built with Hugging Face tokenizers
from the qwen.tiktoken file the dashscope package (PyPI, Apache-2.0) ships: 151,643 byte-level BPE
tokens by rank, the merges recovered from the ranks (each token's last merge is the split BPE
reaches with the lower-ranked tokens alone), Qwen2's NFC normalizer and split regex, and Qwen's
special tokens from id 151,643. Run with the venv's python (tokenizers); nothing is fetched from a
model hub. make python-deps installs dashscope (without its dependencies: only this file is used).

usage: python qwen_vocab.py OUT.json     (exit 3 when dashscope is not installed)
"""

import base64
import importlib.util
import os
import sys

QWEN2_SPLIT = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"""
               r"""| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+""")
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def tiktoken_path():
    spec = importlib.util.find_spec("dashscope")  # located, not imported (its deps are absent)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = os.path.join(list(spec.submodule_search_locations)[0], "resources", "qwen.tiktoken")
    return path if os.path.exists(path) else None


def byte_chars():
    keep = [b for b in range(256) if 0x21 <= b <= 0x7e or 0xa1 <= b <= 0xac or b >= 0xae]
    out, n = {}, 0
    for b in range(256):
        if b in keep:
            out[b] = chr(b)
        else:
            out[b] = chr(256 + n)
            n += 1
    return out


def last_merge(ranks, token, rank):
    parts = [bytes([b]) for b in token]
    while len(parts) > 2:
        best = None
        for i in range(len(parts) - 1):
            r = ranks.get(parts[i] + parts[i + 1])
            if r is not None and r < rank and (best is None or r < best[0]):
                best = (r, i)
        if best is None:
            break
        i = best[1]
        parts[i:i + 2] = [parts[i] + parts[i + 1]]
    if len(parts) != 2:
        raise ValueError(f"token {token!r} (rank {rank}) has no pair of lower-ranked parts")
    return parts


def build(out):
    from tokenizers import Tokenizer, Regex, normalizers, pre_tokenizers, decoders, processors
    from tokenizers import models
    path = tiktoken_path()
    if path is None:
        sys.exit(3)
    ranks = {}
    with open(path, "rb") as fh:
        for line in fh:
            tok, rank = line.split()
            ranks[base64.b64decode(tok)] = int(rank)
    bc = byte_chars()
    show = lambda b: "".join(bc[x] for x in b)  # noqa: E731
    vocab = {show(t): r for t, r in ranks.items()}
    merges = [tuple(show(p) for p in last_merge(ranks, t, r))
              for t, r in sorted(ranks.items(), key=lambda kv: kv[1]) if len(t) > 1]
    tok = Tokenizer(models.BPE(vocab, merges))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_SPLIT), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    tok.add_special_tokens(SPECIALS)
    tok.save(out)
    return len(vocab), len(merges)


if __name__ == "__main__":
    n_vocab, n_merges = build(sys.argv[1])
    print(f"qwen_vocab: {n_vocab} tokens, {n_merges} merges -> {sys.argv[1]}")
