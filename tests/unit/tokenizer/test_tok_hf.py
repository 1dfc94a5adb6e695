"""test_tok_hf.py — the C tokenizer gives the same ids as Hugging Face tokenizers, and decodes them
back to the same text, on tests/data/tokenizer/corpus.json (English, Chinese, Japanese, code, emoji
and ZWJ sequences, combining marks NFC changes, runs of white space, digits, contractions in any
case, special tokens inside text), for tokenizer.json files the tokenizers library builds with
Qwen2's normalizer and pre-tokenizer (merges written as pairs and as "a b" strings; added tokens
special and not, normalized and not, with lstrip/rstrip) and for gen-model's tokenizer.json;
with "qwen", for Qwen's real vocabulary (qwen_vocab.py: 151,643 tokens from the dashscope package).

usage: test_tok_hf.py VENV_PYTHON LD_TOK_SAMPLE [qwen]   (LD_BIN, LD_SRC; skips with 77 when
VENV_PYTHON lacks tokenizers, or with qwen dashscope, unless LD_REQUIRE_TORCH=1, which CI sets:
then that is a failure)
"""

import json
import os
import subprocess
import sys
import tempfile

SRC, LD_BIN = os.environ["LD_SRC"], os.environ["LD_BIN"]
VPY, SAMPLE = sys.argv[1], sys.argv[2]
QWEN = sys.argv[3:] == ["qwen"]
CORPUS = os.path.join(SRC, "tests", "data", "tokenizer", "corpus.json")

# Runs inside the venv: builds the tokenizers, then prints HF's ids and decoded text per case.
HF = r'''
import json, sys
from tokenizers import Tokenizer, Regex, AddedToken, normalizers, pre_tokenizers, decoders
from tokenizers import processors, models, trainers
mode, out, corpus = sys.argv[1], sys.argv[2], json.load(open(sys.argv[3]))
QWEN2 = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"""
         r"""| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+""")
if mode == "build":
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    train = corpus * 3 + ["the and of to in is for on that with " * 20,
                          "\u6570\u5b57\u548c\u6587\u5b57 " * 10, "    return x\n" * 10]
    trainer = trainers.BpeTrainer(vocab_size=int(sys.argv[4]), show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"])
    tok.train_from_iterator(train, trainer)
    tok.add_tokens([AddedToken("<think>", normalized=False, special=False),
                    AddedToken("</think>", normalized=False, special=False),
                    AddedToken("cafe\u0301!", normalized=True, special=False),
                    AddedToken("<mask>", lstrip=True, rstrip=True, normalized=False,
                               special=True)])
    tok.save(out)
    if sys.argv[5] == "strings":  # the older merges form: "a b"
        j = json.load(open(out))
        j["model"]["merges"] = [" ".join(m) if isinstance(m, list) else m
                                for m in j["model"]["merges"]]
        json.dump(j, open(out, "w"), ensure_ascii=False)
else:
    tok = Tokenizer.from_file(out)
    for text in corpus:
        ids = tok.encode(text).ids
        print(json.dumps([ids, tok.decode(ids, skip_special_tokens=False)]))
'''

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


def hf(*args):
    r = subprocess.run([VPY, "-c", HF, *args], capture_output=True, text=True,
                       env=dict(os.environ, TOKENIZERS_PARALLELISM="false"))
    if r.returncode != 0:
        sys.exit(f"tokenizers failed: {r.stderr[-2000:]}")
    return r.stdout


def compare(name, path, corpus, cases_file):
    want = [json.loads(line) for line in hf("encode", path, CORPUS).splitlines()]
    r = subprocess.run([SAMPLE, path, cases_file], capture_output=True, text=True)
    check(r.returncode == 0, f"{name}: ld_tok_sample exit {r.returncode}: {r.stderr.strip()}")
    got = r.stdout.splitlines()
    check(len(got) == len(corpus) == len(want), f"{name}: {len(got)} lines for {len(corpus)} cases")
    same = 0
    for text, (ids, dec), line in zip(corpus, want, got):
        cids, _, chex = line.partition("\t")
        cids = [int(x) for x in cids.split(",")] if cids else []
        ctext = bytes.fromhex(chex).decode("utf-8", errors="replace")
        check(cids == ids, f"{name}: {text!r}: ids {cids} != HF {ids}")
        check(ctext == dec, f"{name}: {text!r}: decoded {ctext!r} != HF {dec!r}")
        same += cids == ids and ctext == dec
    print(f"{name}: {same}/{len(corpus)} cases identical to HF tokenizers "
          f"({sum(len(w[0]) for w in want)} ids)")


def need(what, code):
    try:
        have = subprocess.run([VPY, "-c", code], capture_output=True).returncode == 0
    except OSError:
        have = False
    if not have:
        if os.environ.get("LD_REQUIRE_TORCH") == "1":
            sys.exit(f"FAIL: {VPY} lacks {what} (run 'make python-deps')")
        print(f"skipped: {VPY} lacks {what} (run 'make python-deps')")
        sys.exit(77)


def main():
    need("tokenizers", "import tokenizers")
    if QWEN:
        need("the dashscope package (Qwen's qwen.tiktoken)",
             "import importlib.util, sys; sys.exit(importlib.util.find_spec('dashscope') is None)")
    corpus = json.load(open(CORPUS))
    with tempfile.TemporaryDirectory() as tmp:
        cases = os.path.join(tmp, "cases")
        with open(cases, "wb") as fh:
            for text in corpus:
                b = text.encode("utf-8")
                fh.write(b"%d\n" % len(b) + b)
        if QWEN:
            path = os.path.join(tmp, "qwen.json")
            r = subprocess.run([VPY, os.path.join(os.path.dirname(__file__), "qwen_vocab.py"),
                                path], capture_output=True, text=True)
            check(r.returncode == 0, f"qwen_vocab.py: exit {r.returncode}: {r.stderr[-2000:]}")
            if r.returncode == 0:
                print(r.stdout.strip())
                compare("Qwen's vocabulary (dashscope's qwen.tiktoken)", path, corpus, cases)
        for vocab, merges in ((2000, "pairs"), (600, "strings")) if not QWEN else ():
            path = os.path.join(tmp, f"qwen2-{vocab}-{merges}.json")
            hf("build", path, CORPUS, str(vocab), merges)
            compare(f"qwen2 pre-tokenizer, vocab {vocab}, merges as {merges}", path, corpus,
                    cases)
        for preset in ("tiny", "small") if not QWEN else ():
            d = os.path.join(tmp, preset)
            r = subprocess.run([LD_BIN, "gen-model", d, "--preset", preset], capture_output=True,
                               text=True)
            check(r.returncode == 0, f"gen-model {preset}: {r.stderr.strip()}")
            if r.returncode == 0:
                compare(f"gen-model {preset}", os.path.join(d, "tokenizer.json"), corpus, cases)
    if failures:
        print(f"{len(failures)} failures")
        sys.exit(1)
    print("ok")


main()
