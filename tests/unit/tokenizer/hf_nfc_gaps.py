"""hf_nfc_gaps.py — the code points whose NFC Hugging Face tokenizers and utf8proc disagree on.

HF tokenizers' NFC normalizer (the unicode-normalization-alignments crate) carries Unicode 9.0's
tables; utf8proc (Debian 12's 2.8) carries Unicode 15.0's. A combining mark assigned after 9.0
(U+1AC1, U+1DFA, U+10EFD, ...) has canonical combining class 0 for HF, so HF neither reorders it
among other marks nor lets it stand between a letter and a mark that compose; and HF does not
compose U+11935 U+11930 into U+11938 (Unicode 13). tokenizer/tok_unicode.c normalizes the text
between such code points and passes them through as they are, which is what HF does: this script
finds them, by asking both libraries, for every code point utf8proc gives a combining class or a
canonical decomposition and every code point of those decompositions, in a few contexts.

usage: python hf_nfc_gaps.py                 print the ranges (as tok_unicode.c writes them)
       python hf_nfc_gaps.py --check FILE.c  exit 1 unless FILE.c's table is exactly those
Needs tokenizers (the venv: make python-deps) and libutf8proc.so.2 (make deps). Exit 77 when
tokenizers is absent, unless LD_REQUIRE_TORCH=1 (CI): then that is a failure.
"""

import ctypes
import ctypes.util
import os
import re
import sys

try:
    from tokenizers import normalizers
except ImportError:
    if os.environ.get("LD_REQUIRE_TORCH") == "1":
        sys.exit(f"FAIL: {sys.executable} lacks tokenizers (run 'make python-deps')")
    print(f"skipped: {sys.executable} lacks tokenizers (run 'make python-deps')")
    sys.exit(77)


class Prop(ctypes.Structure):  # the head of utf8proc_property_t (utf8proc.h)
    _fields_ = [("category", ctypes.c_int16), ("combining_class", ctypes.c_int16)]


def utf8proc():
    lib = ctypes.CDLL(ctypes.util.find_library("utf8proc") or "libutf8proc.so.2")
    lib.utf8proc_get_property.restype = ctypes.POINTER(Prop)
    lib.utf8proc_get_property.argtypes = [ctypes.c_int32]
    lib.utf8proc_version.restype = ctypes.c_char_p
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    for f in (lib.utf8proc_NFC, lib.utf8proc_NFD):
        f.restype = ctypes.c_void_p
        f.argtypes = [ctypes.c_char_p]

    def run(f, s):
        p = f(s.encode())
        if not p:
            sys.exit("utf8proc: out of memory")
        out = ctypes.string_at(p).decode()
        libc.free(ctypes.c_void_p(p))
        return out
    return lib, (lambda s: run(lib.utf8proc_NFC, s)), (lambda s: run(lib.utf8proc_NFD, s))


def gaps():
    lib, nfc, nfd = utf8proc()
    hf = normalizers.NFC().normalize_str
    cands = set()
    for cp in range(1, 0x110000):  # NUL ends utf8proc's C strings; it has no class anyway
        if 0xd800 <= cp <= 0xdfff:
            continue
        c = chr(cp)
        d = nfd(c)
        if lib.utf8proc_get_property(cp).contents.combining_class or d != c:
            cands.add(cp)
            cands.update(ord(x) for x in d)
    found = set()
    for cp in sorted(cands):
        c = chr(cp)
        # U+0334 has class 1 and U+0301 230: a mark of any other class moves past one of them
        ctx = (c, "a" + c + "\u0334", "a\u0301" + c, "a" + c + "\u0301", "\u0334" + c,
               c + "\u0334", nfd(c))
        if any(hf(s) != nfc(s) for s in ctx):
            found.add(cp)
            d = nfd(c)
            if d != c and hf(d) != nfc(d):  # a composition HF does not know: its parts too
                found.update(ord(x) for x in d)
    ranges = []
    for cp in sorted(found):
        if ranges and ranges[-1][1] == cp - 1:
            ranges[-1][1] = cp
        else:
            ranges.append([cp, cp])
    return lib.utf8proc_version().decode(), ranges


def main():
    version, ranges = gaps()
    if sys.argv[1:2] == ["--check"] and len(sys.argv) == 3:
        text = open(sys.argv[2], encoding="utf-8").read()
        body = re.search(r"hf_nfc_gaps\[\]\[2\] = \{(.*?)\};", text, re.S)
        if not body:
            sys.exit(f"FAIL: {sys.argv[2]} has no hf_nfc_gaps table")
        table = [[int(a, 16), int(b, 16)] for a, b in
                 re.findall(r"\{\s*0x([0-9a-fA-F]+),\s*0x([0-9a-fA-F]+)\s*\}", body.group(1))]
        n = sum(b - a + 1 for a, b in ranges)
        if table != ranges:
            extra = [r for r in table if r not in ranges]
            missing = [r for r in ranges if r not in table]
            fmt = lambda rs: ", ".join(f"U+{a:04X}..U+{b:04X}" for a, b in rs) or "none"
            print(f"FAIL: {sys.argv[2]}'s table is not what utf8proc {version} and HF tokenizers "
                  f"disagree on.\n  missing: {fmt(missing)}\n  not a gap: {fmt(extra)}\n"
                  f"  (python {sys.argv[0]} prints the table)")
            sys.exit(1)
        print(f"hf_nfc_gaps: {len(ranges)} ranges ({n} code points) where utf8proc {version} "
              f"and HF tokenizers' NFC disagree: {sys.argv[2]} has exactly those")
        return
    if len(sys.argv) != 1:
        sys.exit(__doc__.split("\n\n")[1])
    for i in range(0, len(ranges), 4):
        print("    " + " ".join(f"{{0x{a:04x}, 0x{b:04x}}}," for a, b in ranges[i:i + 4]))


main()
