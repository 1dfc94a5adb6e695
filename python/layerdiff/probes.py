"""layerdiff.probes — a writer and a streaming reader of layerdiff probe streams (format v1,
docs/probes.md) in pure Python and numpy, byte-compatible with the C library's records. Not the
capture of a model (layerdiff.torch) nor the comparator (the layerdiff command)."""

import base64
import datetime
import fnmatch
import itertools
import json
import math
import operator
import os
import re
import stat
import weakref
import zlib

import numpy as np

from . import __version__

FORMAT, VERSION = "layerdiff-probes", 1
ENCODINGS = ("base64", "zlib+base64", "shuffle+zlib+base64")
DTYPES = ("f32", "bf16", "f16")
ELEMENT_SIZE = {"f32": 4, "bf16": 2, "f16": 2}
HEAD_COUNT = 16
MAX_NDIM = 4
# The model's tags in execution order (LD_TAG_TABLE in probes/include/layerdiff/tags.h): name and
# whether it is per layer. tests/e2e/python/test_py_probes.py holds this list to the C table.
TAGS = (("embed", False), ("attn_norm", True), ("q_proj", True), ("k_proj", True),
        ("v_proj", True), ("q_norm", True), ("k_norm", True), ("q_rope", True), ("k_rope", True),
        ("attn_out", True), ("o_proj", True), ("attn_residual", True), ("mlp_norm", True),
        ("gate_proj", True), ("up_proj", True), ("mlp_act", True), ("down_proj", True),
        ("layer_out", True), ("final_norm", False), ("logits", False))
TAG_ORDER = {name: i for i, (name, _) in enumerate(TAGS)}
PER_LAYER = dict(TAGS)
_TAG_RE = re.compile(r"[A-Za-z0-9_.:/+-]{1,128}\Z")
_GLOB_RE = re.compile(r"[A-Za-z0-9_.:/+*?-]{1,128}\Z")
_INT_RE = re.compile(r"\+?[0-9]+\Z")  # as the C parser's strtoll: an optional +, decimal digits
_RANGES_MAX = 64
# The C reader's bounds on one record (probes/json.h, common/json_lex.h): values (a 2M-token
# prompt at most), nesting levels (the record itself is level 1), characters of a number literal.
MAX_VALUES, MAX_DEPTH, MAX_NUMBER_LEN = 2000000, 64, 64
# stats.c sums in fixed chunks of this many elements, eight interleaved lanes per chunk.
_CHUNK, _LANES = 8192, 8


class ProbeError(Exception):
    """A refused argument (kind "usage"), a malformed stream ("input") or a cut-short one
    ("truncated"); the message names the file and the problem."""

    def __init__(self, msg, kind="input"):
        super().__init__(msg)
        self.kind = kind


def key_name(step, layer, tag):
    """S<step>.L<layer>.<tag>, or S<step>.<tag> for a model-level tag (layer None)."""
    return f"S{step}." + (f"L{layer}." if layer is not None else "") + tag


def tag_sort_key(step, layer, tag):
    """Where a probe falls in layerdiff's execution order: step, then embed, the layers in order
    with their tags in table order, then final_norm and logits."""
    i = TAG_ORDER.get(tag, len(TAGS))
    if tag == "embed":
        return (step, -1, i)
    if layer is None:
        return (step, 1 << 31, i)
    return (step, layer, i)


# ---- numbers, as the C writer prints them ----------------------------------------------------

def format_double(v):
    """The C writer's LD_JSON_NUM_EXACT: the shortest of %.15g, %.16g, %.17g that reads back to
    the same double; non-finite values as the strings "NaN", "Infinity", "-Infinity"."""
    v = float(v)
    if v != v:
        return '"NaN"'
    if v in (float("inf"), float("-inf")):
        return '"Infinity"' if v > 0 else '"-Infinity"'
    for prec in (15, 16):
        s = "%.*g" % (prec, v)
        if float(s) == v:
            return s
    return "%.17g" % v


_C_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r"}
_C_ESCAPED = re.compile(r'[\x00-\x1f"\\]')


def _json_string(s):
    """s as ld_json_put_string (common/json_out.c) writes it: " \\ \\n \\t \\r escaped so,
    the other control characters as \\u00xx (json.dumps writes \\b and \\f), everything else
    raw, non-ASCII included."""
    return '"' + _C_ESCAPED.sub(lambda m: _C_ESCAPES.get(m.group(0)) or
                                "\\u%04x" % ord(m.group(0)), s) + '"'


# ---- statistics, in stats.c's order ------------------------------------------------------------

# Chunks summed per block: the sums are taken a block at a time, so the extra memory is a few MB
# whatever the tensor's size (the float64 copies of a whole tensor were 14 times its size).
_BLOCK_CHUNKS = 16


def _block_lanes(xb, fb, shift, nb):
    """The tree8-joined lane sums of one block of nb whole chunks (the last one zero-padded), for
    e = x - shift, e*e and x*x, as float64 with the non-finite elements counting zero: an array
    [3, nb], one sum per chunk. fb: the block's finite mask, None when all are finite."""
    n = xb.size
    buf = np.zeros((3, nb * _CHUNK))
    d = xb.astype(np.float64)
    if fb is not None:
        d[~fb] = 0.0
    e = buf[0, :n]
    np.subtract(d, shift, out=e)
    if fb is not None:
        e[~fb] = 0.0
    np.multiply(e, e, out=buf[1, :n])
    np.multiply(d, d, out=buf[2, :n])
    rows = buf.reshape(3, nb, _CHUNK // _LANES, _LANES)
    # A reduction over a strided axis runs row after row (the inner loop goes across the lanes),
    # so each lane is summed in element order: no pairwise summation. py_probes holds the result
    # to the C writer's, bit for bit.
    lanes = rows.sum(axis=2)
    return ((lanes[..., 0] + lanes[..., 1]) + (lanes[..., 2] + lanes[..., 3])) + \
        ((lanes[..., 4] + lanes[..., 5]) + (lanes[..., 6] + lanes[..., 7]))


def _pick_zero(x, target, nchunks):
    """min/max when it is zero: which zero (+0 or -0) stats.c keeps. Within a chunk of finite
    elements each lane keeps its first extreme and the lowest lane wins ties; a chunk with
    NaN/Inf keeps its first; across chunks the first wins."""
    for c in range(nchunks):
        xs = x[c * _CHUNK:(c + 1) * _CHUNK]
        fs = np.isfinite(xs)
        hit = fs & (xs == target)
        if not hit.any():
            continue
        if fs.all():
            for j in range(_LANES):
                lane = np.flatnonzero(hit[j::_LANES])
                if lane.size:
                    return float(xs[j::_LANES][lane[0]])
        return float(xs[np.flatnonzero(hit)[0]])
    return target


def compute_stats(values):
    """min, max, mean, std, l2, absmax, nan, inf of a float32 array, bit for bit as stats.c. Works
    through the array a block of chunks at a time: a few MB of memory beyond the array."""
    x = np.ascontiguousarray(values, dtype=np.float32).reshape(-1)
    n = x.size
    block = _BLOCK_CHUNKS * _CHUNK
    nfin = nan = 0
    shift = mn = mx = acc = None
    # invalid: widening an f16 signalling NaN (NumPy warns; stats.c counts it as a NaN)
    with np.errstate(invalid="ignore"):
        for lo in range(0, n, block):
            xb = x[lo:lo + block]
            fb = np.isfinite(xb)
            k = int(np.count_nonzero(fb))
            nfin += k
            nan += int(np.count_nonzero(np.isnan(xb)))
            if k and shift is None:  # the first finite value: keeps the variance accurate
                shift = float(xb[int(np.argmax(fb))])
            if k:
                fx = xb if k == xb.size else xb[fb]
                bmn, bmx = float(fx.min()), float(fx.max())
                mn = bmn if mn is None else min(mn, bmn)
                mx = bmx if mx is None else max(mx, bmx)
            # A block without a finite element sums zeros, whatever the shift.
            t = _block_lanes(xb, None if k == xb.size else fb, shift or 0.0,
                             (xb.size + _CHUNK - 1) // _CHUNK)
            if acc is not None:  # the chunks joined in order, across blocks too
                t = np.concatenate([acc[:, None], t], axis=1)
            acc = np.add.accumulate(t, axis=1)[:, -1]
    out = {"nan": nan, "inf": n - nfin - nan}
    if nfin == 0:
        out.update(min=float("nan"), max=float("nan"), mean=float("nan"), std=float("nan"),
                   l2=float("nan"), absmax=float("nan"))
        return out
    s, q, r = (float(v) for v in acc)
    nchunks = (n + _CHUNK - 1) // _CHUNK
    if mn == 0.0:
        mn = _pick_zero(x, mn, nchunks)
    if mx == 0.0:
        mx = _pick_zero(x, mx, nchunks)
    dm = s / nfin
    var = q / nfin - dm * dm
    out.update(min=mn, max=mx, mean=shift + dm, std=float(np.sqrt(var if var > 0.0 else 0.0)),
               l2=float(np.sqrt(r)), absmax=max(abs(mn), abs(mx)))
    return out


# ---- dtypes ------------------------------------------------------------------------------------

def bf16_bits(x):
    """float32 values rounded to bf16 (nearest even, NaN kept quiet) as uint16 bit patterns."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    rounded = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    return np.where(np.isnan(x), ((u >> 16) | 0x40).astype(np.uint16), rounded)


def to_f32(raw, dtype):
    """Raw little-endian elements of dtype as float32 (bf16 and f16 widened exactly)."""
    b = np.frombuffer(raw, dtype=np.uint8)
    if dtype == "f32":
        return b.view("<f4").astype(np.float32)
    if dtype == "f16":
        with np.errstate(invalid="ignore"):  # a signalling NaN stays a NaN, without a warning
            return b.view("<f2").astype(np.float32)
    return (b.view("<u2").astype(np.uint32) << 16).view(np.float32)


def _raw_of(array, dtype):
    """The array's raw bytes in dtype: f32 and f16 arrays, or bf16 as uint16 bit patterns (what
    bf16_bits gives; torch tensors come through layerdiff.torch)."""
    a = np.ascontiguousarray(array)
    if dtype == "bf16":
        if a.dtype != np.uint16:
            raise ProbeError(f"bf16 data must be uint16 bit patterns, not {a.dtype}", "usage")
        return a.astype("<u2").tobytes()
    want = np.dtype("<f4" if dtype == "f32" else "<f2")
    if a.dtype != want:
        raise ProbeError(f"{dtype} data must be {want}, not {a.dtype}", "usage")
    return a.tobytes()


def _dtype_of(array):
    dt = np.asarray(array).dtype
    if dt == np.float32:
        return "f32"
    if dt == np.float16:
        return "f16"
    raise ProbeError(f"dtype {dt} is not float32 or float16 (give dtype='bf16' with uint16 "
                     "bit patterns)", "usage")


# ---- configuration -----------------------------------------------------------------------------

def parse_ranges(text, what):
    """'3', '0-5,10', '20-' as a list of (lo, hi) pairs; None or '' is every value."""
    if not text:
        return None
    out = []
    items = text.split(",")
    if len(items) > _RANGES_MAX:  # as common/util.c's ld_ranges_parse, which reads the header
        raise ProbeError(f"{what}: bad range list '{text[:200]}': more than {_RANGES_MAX} items",
                         "usage")
    for item in items:
        if len(item) >= 48:
            raise ProbeError(f"{what}: bad range list '{text[:200]}': a too long item", "usage")
        lo, dash, hi = item.partition("-")
        if not _INT_RE.match(lo) or (dash and hi and not _INT_RE.match(hi)):
            raise ProbeError(f"{what}: bad range '{item}' in '{text}'", "usage")
        a = int(lo)
        b = (int(hi) if hi else 2**31 - 1) if dash else a
        if a > 2**31 - 1 or b > 2**31 - 1 or b < a:
            raise ProbeError(f"{what}: bad range '{item}' in '{text}'", "usage")
        out.append((a, b))
    return out


def parse_tags(text, what):
    if not text:
        return None
    globs = text.split(",")
    for g in globs:
        if not _GLOB_RE.match(g):
            raise ProbeError(f"{what}: bad tag pattern '{g}' in '{text}' (tag characters and "
                             "* ?, separated by commas)", "usage")
    return globs


class KeyFilter:
    """Which keys a sink writes or a feed replaces: tag globs, layer and step ranges as
    LAYERDIFF_PROBE_TAGS/_LAYERS/_STEPS spell them (None or '' = all; model-level tags pass any
    layer filter). The C library's keyfilter.c."""

    def __init__(self, tags=None, layers=None, steps=None):
        self.globs = parse_tags(tags, "tags")
        self.layers = parse_ranges(layers, "layers")
        self.steps = parse_ranges(steps, "steps")

    @staticmethod
    def _in(ranges, v):
        return ranges is None or any(a <= v <= b for a, b in ranges)

    def match(self, step, layer, tag):
        if not self._in(self.steps, step):
            return False
        if layer is not None and not self._in(self.layers, layer):
            return False
        return self.globs is None or any(fnmatch.fnmatchcase(tag, g) for g in self.globs)


def config_from_env(env=None):
    """The LAYERDIFF_PROBE_* variables as keyword arguments of Sink; a bad value raises
    ProbeError naming the variable."""
    env = os.environ if env is None else env
    cfg = {}
    if env.get("LAYERDIFF_PROBE_TAGS"):
        cfg["tags"] = env["LAYERDIFF_PROBE_TAGS"]
        parse_tags(cfg["tags"], "LAYERDIFF_PROBE_TAGS")
    for var, name in (("LAYERDIFF_PROBE_LAYERS", "layers"), ("LAYERDIFF_PROBE_STEPS", "steps")):
        if env.get(var):
            parse_ranges(env[var], var)
            cfg[name] = env[var]
    v = env.get("LAYERDIFF_PROBE_PAYLOAD")
    if v:
        if v not in ("stats", "full"):
            raise ProbeError(f"LAYERDIFF_PROBE_PAYLOAD: '{v}' is not 'stats' or 'full'", "usage")
        cfg["payload"] = v
    v = env.get("LAYERDIFF_PROBE_ENCODING")
    if v:
        if v not in ENCODINGS:
            raise ProbeError(f"LAYERDIFF_PROBE_ENCODING: '{v}' is not base64, zlib+base64 or "
                             "shuffle+zlib+base64", "usage")
        cfg["encoding"] = v
    return cfg


# ---- the writer --------------------------------------------------------------------------------

class Sink:
    """Writes a probe stream: the header on open, one probe record per emit, the end record on
    close. Each record leaves in one os.write() loop on an unbuffered descriptor, so a process
    killed at any moment leaves complete lines and at most one partial last line."""

    def __init__(self, path, *, implementation, backend, model, tokens, decode_steps,
                 text=None, faults=(), payload="stats", encoding="base64", tags=None, layers=None,
                 steps=None, zlib_level=1):
        path = os.fspath(path)
        if path.endswith(".gz"):
            raise ProbeError(f"{path}: the probe writer does not compress (a gzip stream cut by a "
                             "crash loses its last records); write without .gz and gzip the "
                             "finished file, readers take both", "usage")
        if payload not in ("stats", "full"):
            raise ProbeError(f"payload '{payload}' is not stats or full", "usage")
        if encoding not in ENCODINGS:
            raise ProbeError(f"encoding '{encoding}' is unknown", "usage")
        if not 1 <= zlib_level <= 9:
            raise ProbeError(f"zlib level {zlib_level} is outside 1..9", "usage")
        if not isinstance(implementation, str) or not 1 <= len(_utf8(implementation,
                                                                      "implementation")) <= 255:
            raise ProbeError("implementation must be a str of 1 to 255 bytes", "usage")
        if "\0" in implementation:  # the C reader holds it as a C string
            raise ProbeError('implementation is a string holding a NUL character', "usage")
        if not isinstance(backend, dict) or not isinstance(model, dict):
            raise ProbeError("backend and model must be dicts (JSON objects)", "usage")
        if "fingerprint" in model and not isinstance(model["fingerprint"], str):
            raise ProbeError(f"model.fingerprint is {_type_name(model['fingerprint'])}, expected "
                             "a string", "usage")
        tokens = _ints(tokens, "tokens[]", 0)
        decode_steps = _index(decode_steps, "decode_steps", 0, _INT31)
        if text is not None and not isinstance(text, str):
            raise ProbeError("text must be a str (the prompt as text) or None", "usage")
        faults = list(faults)
        if not all(isinstance(f, str) for f in faults):
            raise ProbeError("faults must be strs", "usage")
        for i, f in enumerate(faults):
            if "\0" in f:
                raise ProbeError(f"faults[{i}] is a string holding a NUL character", "usage")
        for name, value in (("tags", tags), ("layers", layers), ("steps", steps)):
            if value is not None and not isinstance(value, str):
                raise ProbeError(f"{name} must be a str such as '0-3,8' or None", "usage")
        self.name, self.payload, self.encoding = path, payload, encoding
        self.zlib_level = zlib_level
        self._keys = KeyFilter(tags, layers, steps)
        self.count, self.last_key, self._written, self._failed = 0, "", set(), None
        self._fd = None
        created = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        # The filter (as the C writer writes it): which keys this stream can never hold, so that a
        # comparator does not keep the other stream's records of those keys waiting.
        asked = [(name, value) for name, value in (("tags", tags), ("layers", layers),
                                                   ("steps", steps)) if value]
        filt = (',"filter":{%s}' % ",".join('"%s":%s' % (n, _json_string(v)) for n, v in asked)
                if asked else "")
        # The record's values as the C reader counts them: the fixed members (the record, record,
        # format, version, implementation, input, its tokens array and decode_steps, the faults
        # array, created, tool and its three) and, beside backend and model, those that vary.
        count = [14 + len(tokens) + len(faults) + (text is not None) + (len(asked) + 1 if asked
                                                                           else 0)]
        backend_json, model_json = _compact(backend, "backend", count), _compact(model, "model",
                                                                                 count)
        if count[0] > MAX_VALUES:
            raise ProbeError(f"the header would hold {count[0]} JSON values (tokens, faults, "
                             f"backend and model): more than {MAX_VALUES} values in one record, "
                             "which readers refuse", "usage")
        header = (
            '{"record":"header","format":"%s","version":%d,"implementation":%s,"backend":%s,'
            '"model":%s,"input":{"tokens":[%s]%s,"decode_steps":%d},"faults":[%s]%s,'
            '"created":"%s","tool":{"name":"layerdiff","version":%s,"git":"python"}}\n' % (
                FORMAT, VERSION, _json_string(implementation), backend_json,
                model_json, ",".join(map(str, tokens)),
                "" if text is None else ',"text":' + _json_string(text), decode_steps,
                ",".join(_json_string(f) for f in faults), filt, created,
                _json_string(__version__ + " (python)")))
        header = _utf8(header, "the header (implementation, text, faults, backend, model)")
        # Everything is checked before the file is touched: a refused sink leaves it as it was.
        try:
            st = os.stat(path)
        except OSError:
            st = None
        if st is not None and stat.S_ISDIR(st.st_mode):
            raise ProbeError(f"{path}: is a directory, not a probe file", "usage")
        if st is not None and (st.st_dev, st.st_ino) in _READING.values():
            raise ProbeError(f"{path}: is a stream this process is reading (a Reader or Feed has "
                             "it open): writing it would destroy it", "usage")
        try:
            self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        except OSError as e:
            raise ProbeError(f"{path}: cannot open for writing: {e.strerror}", "io") from e
        try:
            self._write(header, "header")
        except ProbeError:
            os.close(self._fd)
            self._fd = None
            raise

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if self._fd is None:
            return
        if exc is None:
            self.close()
            return
        try:  # the exception in flight is the one to see, not a failed end record
            self.close(ok=False, message=f"{exc_type.__name__}: {exc}")
        except ProbeError:
            pass

    def _write(self, data, what):
        if isinstance(data, str):
            data = _utf8(data, f"the {what} record")
        done = 0
        try:
            while done < len(data):
                done += os.write(self._fd, data[done:])
        except OSError as e:
            # Sticky, as the C sink: the file now ends inside a record, so nothing more is written.
            self._failed = ProbeError(f"{self.name}: write failed after {done} of {len(data)} "
                                      f"bytes of the {what} record: {e.strerror}", "io")
            raise self._failed from e
        except BaseException as e:
            # An interrupt (KeyboardInterrupt, a signal handler's exception) inside a write: the
            # record may have landed whole (a write to a file completes, and the interrupt is
            # raised as it returns, before done counts it), in part or not at all. Which cannot
            # be told, so the sink fails: no end record follows, and readers report the stream
            # as cut after its last complete line.
            self._failed = ProbeError(f"{self.name}: write interrupted ({type(e).__name__}) in "
                                      f"the {what} record ({done} of {len(data)} bytes known "
                                      "written)", "io")
            raise

    def wants(self, step, layer, tag):
        """Whether a probe of this key would be written: decide before copying anything."""
        return self._fd is not None and self._keys.match(step, layer, tag)

    @property
    def wants_data(self):
        return self.payload == "full"

    def _check_key(self, step, layer, tag):
        if self._failed is not None:
            raise self._failed
        if self._fd is None:
            raise ProbeError(f"{self.name}: the sink is closed", "usage")
        step = _index(step, "step", 0, _INT31)
        layer = None if layer is None else _index(layer, "layer", 0, _INT31)
        if not isinstance(tag, str) or not _TAG_RE.match(tag):
            raise ProbeError(f"{self.name}: bad tag name '{str(tag)[:64]}' (1 to 128 characters "
                             "of A-Z a-z 0-9 _ . : / + -)", "usage")
        if step < 0 or (layer is not None and layer < 0):
            raise ProbeError(f"{self.name}: {tag}: step or layer is negative", "usage")
        if tag in PER_LAYER and PER_LAYER[tag] != (layer is not None):
            kind = "per-layer" if PER_LAYER[tag] else "model-level"
            how = "without" if layer is None else "with"
            raise ProbeError(f"{self.name}: {tag} is a {kind} tag but was emitted {how} a layer",
                             "usage")

    def emit(self, step, layer, tag, array, *, pos0=0, dtype=None):
        """Writes one probe of a host array (float32, float16, or uint16 bf16 bit patterns with
        dtype='bf16'); its logical shape is the array's. Unwanted keys return at once."""
        self._check_key(step, layer, tag)
        if not self.wants(step, layer, tag):
            return
        if dtype is not None and dtype not in DTYPES:
            raise ProbeError(f"{self.name}: {tag}: dtype {dtype!r} is not f32, bf16 or f16",
                             "usage")
        dtype = dtype or _dtype_of(array)
        raw = _raw_of(array, dtype)
        # f32: the statistics read the bytes in place (to_f32 would copy them)
        vals = np.frombuffer(raw, "<f4") if dtype == "f32" else to_f32(raw, dtype)
        self._emit(step, layer, tag, pos0, dtype, np.shape(array), compute_stats(vals),
                   vals[:HEAD_COUNT], raw)

    def emit_precomputed(self, step, layer, tag, *, shape, dtype, stats, head, data=None,
                         pos0=0):
        """Writes one probe whose stats and head were computed elsewhere (on a device); data,
        the raw little-endian bytes, only when wants_data."""
        self._check_key(step, layer, tag)
        if not self.wants(step, layer, tag):
            return
        numel = math.prod(_index(d, "shape[]", 0, _SAFE_INT) for d in shape)  # no overflow
        if not isinstance(stats, dict) or not all(k in stats for k in _STAT_NAMES + ("nan",
                                                                                     "inf")):
            raise ProbeError(f"{self.name}: {tag}: stats must be a dict of min, max, mean, std, "
                             "l2, absmax, nan and inf", "usage")
        stats = dict(stats, nan=_index(stats["nan"], "stats nan", 0, _SAFE_INT),
                     inf=_index(stats["inf"], "stats inf", 0, _SAFE_INT))
        head = list(head)
        if len(head) != min(numel, HEAD_COUNT):
            raise ProbeError(f"{self.name}: {tag}: head has {len(head)} values, expected "
                             f"{min(numel, HEAD_COUNT)} (the first min(16, numel))", "usage")
        if data is not None and not isinstance(data, (bytes, bytearray, memoryview)):
            raise ProbeError(f"{self.name}: {tag}: data must be bytes (the raw little-endian "
                             f"elements), not {type(data).__name__}", "usage")
        if stats["nan"] > numel or stats["inf"] > numel - stats["nan"]:
            raise ProbeError(f"{self.name}: {tag}: stats count {stats['nan']} NaN and "
                             f"{stats['inf']} Inf in {numel} elements", "usage")
        self._emit(step, layer, tag, pos0, dtype, shape, stats, head, data)

    def _emit(self, step, layer, tag, pos0, dtype, shape, stats, head, raw):
        shape = [_index(d, "shape[]", 0, _SAFE_INT) for d in shape]
        pos0 = _index(pos0, "pos0", 0, _SAFE_INT)
        key = key_name(step, layer, tag)
        if key in self._written:  # layerdiff inspect and compare refuse a key twice
            raise ProbeError(f"{self.name}: probe {key} was already written", "usage")
        if not 1 <= len(shape) <= MAX_NDIM or any(d < 0 for d in shape):
            raise ProbeError(f"{self.name}: {tag}: shape {shape} is not 1 to 4 non-negative "
                             "dimensions", "usage")
        numel = 1
        for d in shape:
            numel *= d
        if numel > 2**40:
            raise ProbeError(f"{self.name}: {tag}: shape has more than 2^40 elements", "usage")
        if pos0 < 0 or dtype not in DTYPES:
            raise ProbeError(f"{self.name}: {tag}: bad pos0 {pos0} or dtype {dtype}", "usage")
        head = [float(h) for h in head][:min(numel, HEAD_COUNT)]
        parts = ['{"record":"probe","index":%d,"step":%d,' % (self.count, step)]
        if layer is not None:
            parts.append('"layer":%d,' % layer)
        parts.append('"tag":"%s","pos0":%d,"dtype":"%s","shape":[%s],"stats":{' % (
            tag, pos0, dtype, ",".join(map(str, shape))))
        parts.append(",".join('"%s":%s' % (k, format_double(stats[k]))
                              for k in ("min", "max", "mean", "std", "l2", "absmax")))
        parts.append(',"nan":%d,"inf":%d},"head":[%s]' % (
            stats["nan"], stats["inf"], ",".join(format_double(h) for h in head)))
        if raw is not None and self.payload == "full":
            raw = bytes(raw)
            if len(raw) != numel * ELEMENT_SIZE[dtype]:
                raise ProbeError(f"{self.name}: {tag}: {len(raw)} data bytes for {numel} "
                                 f"elements of {dtype}", "usage")
            parts.append(',"data":{"encoding":"%s","dtype":"%s","b64":"%s","crc32":%d}' % (
                self.encoding, dtype, encode_payload(raw, dtype, self.encoding, self.zlib_level),
                zlib.crc32(raw)))
        parts.append("}\n")
        self._write("".join(parts), "probe " + key)
        self.count += 1
        self.last_key = key
        self._written.add(key)

    def close(self, *, tokens=(), decoded=(), ok=True, message=None):
        """Writes the end record: status, probe count, the argmax token of every step (-1 for
        none), the tokens fed to decode steps, last_key; then closes the file, whatever happens.
        Tokens are integers or anything with __index__ (a 0-d integer tensor). As the C sink's
        close: a bad end description (a token that is not an integer, or out of range) still
        ends the stream, as an error end record saying what was wrong, and then raises
        ProbeError (kind "usage")."""
        if self._fd is None:
            return
        try:
            if self._failed is not None:  # the file ends inside a record: no end record after it
                raise self._failed
            why = None
            try:
                tokens = _ints(tokens, "end tokens[]", -1)
                decoded = _ints(decoded, "decoded[]", 0)
                if len(tokens) + len(decoded) > MAX_VALUES - 8:
                    raise ProbeError(f"{len(tokens)} end tokens and {len(decoded)} decoded: more "
                                     f"than {MAX_VALUES} values in one record, which readers "
                                     "refuse", "usage")
            except ProbeError as e:
                why, tokens, decoded = str(e), [], []
                message = f"{message} (and a bad end description: {why})" if not ok and \
                    message else why
                ok = False
            if message is not None:  # an exception's text: any str, valid UTF-8 without NULs
                message = str(message).encode("utf-8", "replace").decode("utf-8").replace("\0",
                                                                                         "?")
            rec = '{"record":"end","status":"%s","probes":%d,"tokens":[%s],"decoded":[%s],' \
                  '"last_key":%s' % ("ok" if ok else "error", self.count,
                                     ",".join(map(str, tokens)), ",".join(map(str, decoded)),
                                     _json_string(self.last_key))
            if not ok:
                rec += ',"message":' + _json_string(
                    message or "the producer reported an error without a message")
            self._write(rec + "}\n", "end")
            if why is not None:
                raise ProbeError(f"{self.name}: {why} (written as an error end record)", "usage")
        finally:
            fd, self._fd = self._fd, None
            os.close(fd)


def _compact(obj, what, count):
    """obj, a member of the header (level 2), as compact JSON, its strings (keys included)
    written by _json_string, as the C writer escapes them; numbers, bools and None, and non-str
    keys, as json.dumps writes them. Refuses what the C reader would refuse: nesting deeper than
    MAX_DEPTH, a number literal longer than MAX_NUMBER_LEN, two members of one name (1 and "1");
    adds obj's values to count[0], stopping past MAX_VALUES."""

    def enc(v, depth):
        count[0] += 1
        if count[0] > MAX_VALUES:
            raise _TooBig(f"more than {MAX_VALUES} values in one record")
        if depth > MAX_DEPTH:
            raise _TooBig(f"nesting deeper than {MAX_DEPTH} levels (the header is level 1)")
        if isinstance(v, str):
            return _json_string(v)
        if isinstance(v, dict):
            names = [k if isinstance(k, str) else _scalar(k) for k in v]
            if len(set(names)) != len(names):
                seen = set()
                for name in names:
                    if name in seen:
                        raise _TooBig(f'duplicate member name "{name[:64]}" in an object (keys '
                                      "are written as strings)")
                    seen.add(name)
            return "{%s}" % ",".join(_json_string(k) + ":" + enc(x, depth + 1)
                                     for k, x in zip(names, v.values()))
        if isinstance(v, (list, tuple)):
            return "[%s]" % ",".join(enc(x, depth + 1) for x in v)
        return _scalar(v)

    def _scalar(v):
        if v is not None and not isinstance(v, (bool, int, float)):
            raise TypeError(f"{type(v).__name__} {v!r}"[:100] + " is not JSON")
        out = json.dumps(v, allow_nan=False)
        if len(out) > MAX_NUMBER_LEN:
            raise _TooBig(f"number literal longer than {MAX_NUMBER_LEN} characters "
                          f"({out[:20]}...)")
        return out

    try:
        return enc(obj, 2)
    except _TooBig as e:
        raise ProbeError(f"{what}: {e}: readers refuse it", "usage") from None
    except (TypeError, ValueError, RecursionError) as e:
        raise ProbeError(f"{what} is not JSON (strs, finite numbers, bools, None, lists and "
                         f"dicts with str keys): {e}", "usage") from e


class _TooBig(Exception):
    """What _compact refuses of valid JSON: beyond the C reader's bounds."""


def _utf8(text, what):
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ProbeError(f"{what}: not valid UTF-8 text ({e.reason} at {e.start}: a lone "
                         "surrogate, such as a byte decoded with surrogateescape)", "usage") from e


def _index(v, what, lo, hi):
    """An integer argument within [lo, hi]: an int, a numpy integer or anything else with
    __index__ (a 0-d integer tensor, a 0-d integer array); not a bool, a float or a bool
    tensor."""
    try:
        if isinstance(v, (bool, np.bool_)) or str(getattr(v, "dtype", "")) == "torch.bool":
            raise TypeError
        i = operator.index(v)
    except TypeError:
        raise ProbeError(f"{what} must be an integer, not {type(v).__name__} {v!r}"[:200],
                         "usage") from None
    if not lo <= i <= hi:
        raise ProbeError(f"{what} = {i} is outside [{lo}, {hi}]", "usage")
    return i


def _ints(seq, what, lo):
    """A sequence of integers (see _index) within [lo, 2^31 - 1] as a list of ints: tokens."""
    if isinstance(seq, (str, bytes)):
        raise ProbeError(f"{what[:-2]} must be a sequence of integers, not {type(seq).__name__}",
                         "usage")
    try:
        items = list(seq)
    except TypeError:
        raise ProbeError(f"{what[:-2]} must be a sequence of integers, not "
                         f"{type(seq).__name__}", "usage") from None
    return [_index(t, what, lo, _INT31) for t in items]


def open_env(**run):
    """A Sink on $LAYERDIFF_PROBES configured by the LAYERDIFF_PROBE_* variables, or None when
    LAYERDIFF_PROBES is unset or empty (probing off). run: Sink's keyword arguments."""
    path = os.environ.get("LAYERDIFF_PROBES")
    if not path:
        return None
    return Sink(path, **{**config_from_env(), **run})


def encode_payload(raw, dtype, encoding, zlib_level=1):
    """The b64 text of a payload. The zlib encodings decode to the C writer's bytes, but their
    compressed bytes are zlib's own (the C writer deflates 1 MiB blocks its own way)."""
    if encoding != "base64":
        if encoding == "shuffle+zlib+base64":
            size = ELEMENT_SIZE[dtype]
            raw = np.frombuffer(raw, np.uint8).reshape(-1, size).T.tobytes()
        raw = zlib.compress(raw, zlib_level)
    return base64.b64encode(raw).decode("ascii")


# ---- the reader --------------------------------------------------------------------------------

MAX_LINE = 1 << 30   # the longest line read, bytes (the C reader's default)
MAX_NUMEL = 1 << 40  # elements of one probe (the writers' and the C reader's limit)
_READ_CHUNK = 1 << 20
_SAFE_INT = 1 << 53
_INT31 = 2**31 - 1
_NONFINITE = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}
_STAT_NAMES = ("min", "max", "mean", "std", "l2", "absmax")
_CREATED_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?Z\Z")
_HEADER_FIELDS = ("record", "format", "version", "implementation", "backend", "model", "input",
                  "faults", "created", "tool", "filter", "feed")
_PROBE_FIELDS = ("record", "index", "step", "layer", "tag", "pos0", "dtype", "shape", "stats",
                 "head", "fed", "data")
_END_FIELDS = ("record", "status", "probes", "tokens", "decoded", "last_key", "message")
_TAG_HELP = "not a tag name (1 to 128 characters of A-Z a-z 0-9 _ . : / + -)"


def _type_name(v):
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, (int, float)):
        return "a number"
    return {str: "a string", list: "an array", dict: "an object"}.get(type(v), type(v).__name__)


class _Fields:
    """The checks of one record's fields: every refusal is a ProbeError naming the file, the line
    and the record (`where`), as the C reader's messages do."""

    def __init__(self, where):
        self.where = where

    def bad(self, what, kind="input"):
        return ProbeError(f"{self.where}: {what}", kind)

    def get(self, obj, name, kind, required=True, label=None):
        label = label or name
        if name not in obj:
            if required:
                raise self.bad(f'missing field "{label}"')
            return None
        v = obj[name]
        if not isinstance(v, {"string": str, "object": dict, "array": list}[kind]):
            article = "an" if kind[0] in "aeiou" else "a"
            raise self.bad(f'field "{label}" is {_type_name(v)}, expected {article} {kind}')
        return v

    def integer(self, obj, name, lo, hi, required=True, label=None):
        label = label or name
        if name not in obj:
            if required:
                raise self.bad(f'missing field "{label}"')
            return None
        return self.int_value(obj[name], f'field "{label}"', lo, hi)

    def int_value(self, v, what, lo, hi):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise self.bad(f"{what} is {_type_name(v)}, expected a number")
        if not isinstance(v, int) or not lo <= v <= hi:
            raise self.bad(f"{what} is {v!r}, expected an integer in [{lo}, {hi}]")
        return v

    def value(self, v, what):
        """A statistic or head value: a number, or "NaN", "Infinity", "-Infinity"."""
        if isinstance(v, str) and v in _NONFINITE:
            return _NONFINITE[v]
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise self.bad(f'{what} is {_type_name(v)}, expected a number or "NaN", "Infinity", '
                           '"-Infinity"')
        return float(v)

    def only(self, obj, allowed, what):
        for k in obj:
            if k not in allowed:
                raise self.bad(f'unknown field "{k[:64]}" in {what}')

    def tokens(self, obj, name, lo, label):
        toks = self.get(obj, name, "array", label=label)
        for i, t in enumerate(toks):
            self.int_value(t, f"{label}[{i}]", lo, _INT31)
        return toks


def _shape_numel(shape, f):
    """The element count of a record's shape, checked as the C reader does: 1 to 4 dimensions,
    each an integer in [0, 2^53], and at most 2^40 elements, a zero dimension included (the
    product of the others must stay within it too)."""
    if not 1 <= len(shape) <= MAX_NDIM:
        raise f.bad(f"shape has {len(shape)} dimensions, expected 1 to {MAX_NDIM}")
    numel, nonzero = 1, 1
    for i, d in enumerate(shape):
        if isinstance(d, bool) or not isinstance(d, int) or not 0 <= d <= _SAFE_INT:
            raise f.bad(f"shape[{i}] is not an integer in [0, 2^53]")
        numel *= d
        nonzero *= d or 1
    if nonzero > MAX_NUMEL:
        raise f.bad("shape has more than 2^40 elements (its size overflows)")
    return numel


def _data_fields(data, f):
    """The data object's members, checked: encoding, dtype, b64 and crc32 of the right types."""
    if not isinstance(data, dict):
        raise f.bad(f'field "data" is {_type_name(data)}, expected an object')
    f.only(data, ("encoding", "dtype", "crc32", "b64"), "data")
    enc = f.get(data, "encoding", "string", label="data.encoding")
    dtype = f.get(data, "dtype", "string", label="data.dtype")
    b64 = f.get(data, "b64", "string", label="data.b64")
    crc = f.integer(data, "crc32", 0, 2**32 - 1, label="data.crc32")
    if enc not in ENCODINGS:
        raise f.bad(f'data.encoding is "{enc[:32]}", expected "base64", "zlib+base64" or '
                    '"shuffle+zlib+base64"')
    if dtype not in DTYPES:
        raise f.bad(f'data.dtype is "{dtype[:32]}", expected "f32", "bf16" or "f16"')
    return enc, dtype, b64, crc


def decode_payload(data, numel, where="payload"):
    """The raw little-endian bytes of a probe's data object (numel elements of data.dtype),
    checked: the object's members, base64, the decoded size (a zlib stream that cannot inflate
    to it is refused before inflating), crc32. Errors are ProbeError naming `where`."""
    f = _Fields(where)
    enc, dtype, b64, crc = _data_fields(data, f)
    if isinstance(numel, bool) or not isinstance(numel, int) or not 0 <= numel <= MAX_NUMEL:
        raise ProbeError(f"{where}: numel {numel!r} is not an integer in [0, 2^40]", "usage")
    size = ELEMENT_SIZE[dtype]
    expected = numel * size
    if len(b64) % 4:
        raise f.bad(f"bad base64 in data.b64: length {len(b64)} is not a multiple of 4")
    decoded = len(b64) // 4 * 3 - (2 if b64.endswith("==") else 1 if b64.endswith("=") else 0)
    if enc == "base64" and decoded != expected:
        raise f.bad(f"payload decodes to {decoded} bytes, expected {expected} ({numel} elements "
                    f"of {dtype})")
    if enc != "base64" and expected > decoded * 1032 + 64:  # zlib's largest ratio is 1032:1
        raise f.bad(f"{decoded} bytes of zlib data cannot inflate to the expected {expected} "
                    f"bytes ({numel} elements of {dtype})")
    try:
        raw = base64.b64decode(b64, validate=True)
    except ValueError as e:
        raise f.bad(f"bad base64 in data.b64: {e}") from e
    if enc != "base64":
        d = zlib.decompressobj()
        try:
            raw = d.decompress(raw, expected + 1)
        except zlib.error as e:
            raise f.bad(f"corrupt zlib data: {e}") from e
        except MemoryError as e:
            raise f.bad(f"out of memory inflating {expected} bytes", "io") from e
        if len(raw) > expected:
            raise f.bad(f"zlib data inflates past the expected {expected} bytes")
        if not d.eof:
            raise f.bad(f"zlib data is cut short (inflates to {len(raw)} bytes, expected "
                        f"{expected})")
        if d.unused_data:
            raise f.bad("zlib data has bytes after the end of its stream")
        if len(raw) != expected:
            raise f.bad(f"zlib data inflates to {len(raw)} bytes, expected {expected}")
        if enc == "shuffle+zlib+base64":
            raw = np.frombuffer(raw, np.uint8).reshape(size, numel).T.tobytes()
    got = zlib.crc32(raw)
    if got != crc:
        raise f.bad(f"data.crc32 is {crc} but the decoded payload's crc32 is {got}")
    return raw


class Probe:
    """One probe record: step, layer (None for model-level tags), tag, key, index, pos0, dtype,
    shape, stats (floats; nan and inf ints), head (floats), fed, data (raw bytes or None),
    data_dtype (the payload's dtype, None without one), line (in the file) and record (the parsed
    JSON)."""

    def __init__(self, rec, data, *, step, layer, tag, index, pos0, dtype, shape, stats, head,
                 data_dtype=None, line=0):
        self.record, self.data, self.data_dtype, self.line = rec, data, data_dtype, line
        self.step, self.layer, self.tag = step, layer, tag
        self.key = key_name(step, layer, tag)
        self.index, self.pos0, self.dtype, self.shape = index, pos0, dtype, tuple(shape)
        self.stats, self.head = stats, head
        self.fed = bool(rec.get("fed", False))

    def __getitem__(self, field):
        """The record's fields, as from the parsed JSON: p["pos0"], p["data"]["b64"]."""
        return self.record[field]

    def get(self, field, default=None):
        return self.record.get(field, default)

    def __contains__(self, field):
        return field in self.record

    def array(self):
        """The payload as float32 of the probe's shape (bf16 and f16 widened exactly)."""
        if self.data is None:
            raise ProbeError(f"{self.key} carries no data (write it with payload full)", "usage")
        return to_f32(self.data, self.data_dtype).reshape(self.shape)


def _json_object(pairs):
    obj = {}
    for k, v in pairs:
        if k in obj:
            raise ValueError(f'duplicate member name "{k[:64]}"')
        obj[k] = v
    return obj


def _json_int(s):
    if len(s) > MAX_NUMBER_LEN:
        raise ValueError("number literal longer than 64 characters")
    return int(s)


def _json_float(s):
    if len(s) > MAX_NUMBER_LEN:
        raise ValueError("number literal longer than 64 characters")
    v = float(s)
    if math.isinf(v):
        raise ValueError(f"number {s} is out of the range of a double")
    return v


def _refuse_constant(name):
    raise ValueError(f"bare {name} is not JSON")


_SURROGATE = re.compile("[\ud800-\udfff]")


def _check_string(s):
    """A lone surrogate escape (json.loads joins the pairs and lets the others through; the C
    reader refuses them, as UTF-8 cannot hold them)."""
    if not s.isascii():
        m = _SURROGATE.search(s)
        if m:
            raise ValueError("lone low surrogate in a \\u escape" if m.group(0) >= "\udc00"
                             else "high surrogate not followed by a low surrogate")


def _check_tree(root):
    """The C parser's bounds on a parsed record, in one walk: at most MAX_VALUES values, at most
    MAX_DEPTH levels (the record is level 1), no lone surrogate in a string or member name."""
    count, todo = 0, [(root, 1)]
    while todo:
        v, depth = todo.pop()
        count += 1
        if count > MAX_VALUES:
            raise ValueError(f"more than {MAX_VALUES} values in one record")
        if depth > MAX_DEPTH:
            raise ValueError(f"nesting deeper than {MAX_DEPTH} levels")
        if isinstance(v, str):
            _check_string(v)
        elif isinstance(v, dict):
            for k in v:
                _check_string(k)
            todo.extend((x, depth + 1) for x in v.values())
        elif isinstance(v, list):
            todo.extend((x, depth + 1) for x in v)


def parse_record(line):
    """One line's JSON as a Python object: strict JSON as the C reader takes it (no NaN/Infinity
    literals, no duplicate member names, numbers within a double and 64 characters, no lone
    surrogate escapes, at most 64 levels and 2,000,000 values). ValueError when it is not."""
    try:
        rec = json.loads(line.decode("utf-8"), object_pairs_hook=_json_object,
                         parse_int=_json_int, parse_float=_json_float,
                         parse_constant=_refuse_constant)
    except RecursionError as e:
        raise ValueError(f"nesting deeper than {MAX_DEPTH} levels") from e
    _check_tree(rec)
    return rec


class _Prefixed:
    """A file's read() with its first bytes (read to sniff the gzip magic) put back: works on
    pipes, which cannot seek."""

    def __init__(self, first, f):
        self._first, self._f = first, f

    def read(self, n):
        if self._first:
            out, self._first = self._first[:n], self._first[n:]
            return out
        return self._f.read(n)


class _Gunzip:
    """read(n) of the text of gzip members (one after another, as zlib's gzread reads them).
    Unlike gzip.GzipFile, data that ends early gives every byte that came through before EOFError,
    and no call inflates more than n bytes (a gzip bomb costs no memory)."""

    def __init__(self, src):
        self._src, self._d, self._tail = src, zlib.decompressobj(31), b""

    def read(self, n):
        while True:
            if self._d.eof:
                rest = self._d.unused_data
                if not rest:
                    rest = self._src.read(1 << 16)
                    if not rest:
                        return b""
                if not rest.startswith(b"\x1f\x8b"[:len(rest)]):
                    raise zlib.error("bytes after the end of the gzip data that are not gzip")
                self._d, self._tail = zlib.decompressobj(31), rest
            data = self._tail or self._src.read(1 << 16)
            if not data:
                raise EOFError("the gzip data ends early")
            out = self._d.decompress(data, n)
            self._tail = self._d.unconsumed_tail
            if out:
                return out

# (st_dev, st_ino) of the files Readers (and Feeds) have open in this process, by a number of
# each reader: a Sink refuses to truncate one of them. A reader leaves it when closed: by close(),
# at the end of its stream or its first error, or when it is garbage (weakref.finalize).
_READING = {}
_READER_IDS = itertools.count()


def _release(rid, raw):
    _READING.pop(rid, None)
    raw.close()


class Reader:
    """Reads a probe stream one record at a time (plain or gzip, known by its magic bytes as the C
    reader does); memory is one line and its payload. Iterate for the Probes; header is read on
    open, end after the last probe. Every record is checked as the C reader checks its fields
    (types, ranges, unknown or duplicate members, shapes, the header's filter, index sequence,
    payload size, crc32, head against data, end count and last_key); the statistics' agreement
    with each other and with the data is left to the C reader. A stream without its end record,
    or cut inside a line, raises ProbeError of kind "truncated" naming the last complete probe;
    after any error the reader raises the same error again. The file is closed at the end of
    the stream (after the end record), at the first error and when the reader is garbage, so
    `for p in Reader(path)` leaves nothing open; close() (or a with block) closes it earlier."""

    def __init__(self, path, decode_data=True, max_line=MAX_LINE):
        self.path, self.decode_data, self.max_line = os.fspath(path), decode_data, max_line
        self.line, self.count, self.last_key, self.end = 0, 0, "", None
        self._error, self._gz_cut, self._bytes = None, False, 0
        self._chunk, self._pos = b"", 0
        self._raw = self._f = self._finalizer = None
        try:
            self._open()
            rec = self._next_record()
            if rec is None:
                raise ProbeError(f"{self.path}: the file is empty (no header record)",
                                 "truncated")
            kind = rec.get("record")
            if kind != "header":
                what = f"a {kind}" if kind in ("probe", "end") else f"record {kind!r}"
                raise ProbeError(f"{self.path}:1: the first record is {what}, not the header "
                                 "(a probe stream starts with its header record)")
            self._keys = _check_header(rec, f"{self.path}:1")
            self.header = rec
        except BaseException:
            self.close()
            raise

    def _open(self):
        try:
            self._raw = open(self.path, "rb")
        except IsADirectoryError as e:
            raise ProbeError(f"{self.path}: is a directory, not a probe file") from e
        except OSError as e:
            raise ProbeError(f"{self.path}: cannot open: {e.strerror}",
                             "input" if isinstance(e, FileNotFoundError) else "io") from e
        rid = next(_READER_IDS)
        self._finalizer = weakref.finalize(self, _release, rid, self._raw)
        st = os.fstat(self._raw.fileno())
        self.regular = stat.S_ISREG(st.st_mode)
        _READING[rid] = (st.st_dev, st.st_ino)
        first = self._read(self._raw.read, 2)
        self._f = _Prefixed(first, self._raw)
        if first == b"\x1f\x8b":
            self._f = _Gunzip(self._f)

    def close(self):
        if self._finalizer is not None:
            self._finalizer()
        elif self._raw is not None:
            self._raw.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _where(self):
        return f"{self.path}:{self.line}"

    def _cut(self, why):
        last = self.last_key or "none (no probe read)"
        gz = " (the gzip data ends early)" if self._gz_cut else ""
        return ProbeError(f"{self.path}:{self.line}: stream truncated: {why}; last complete "
                          f"probe: {last}{gz}", "truncated")

    def _read(self, read, n):
        try:
            return read(n)
        except EOFError:  # gzip data that ends early: what came through is all there is
            self._gz_cut = True
            return b""
        except zlib.error as e:
            raise ProbeError(f"{self.path}: corrupt gzip data after {self._bytes} bytes: "
                             f"{e}") from e
        except OSError as e:
            raise ProbeError(f"{self.path}: read failed after {self._bytes} bytes: "
                             f"{e.strerror or e}", "io") from e

    def _read_line(self):
        """The next line with its '\\n' (without one at the end of the input; b'' after it),
        refused when longer than max_line or when a NUL byte is read."""
        parts, size = [], 0
        while True:
            if self._pos < len(self._chunk):
                i = self._chunk.find(b"\n", self._pos)
                end = len(self._chunk) if i < 0 else i
                size += end - self._pos
                if size > self.max_line:
                    raise ProbeError(f"{self.path}:{self.line + 1}: line longer than the "
                                     f"{self.max_line}-byte limit")
                parts.append(self._chunk[self._pos:end + (i >= 0)])
                self._pos = end + (i >= 0)
                if i >= 0:
                    return b"".join(parts)
            chunk = self._read(self._f.read, _READ_CHUNK)
            if not chunk:
                return b"".join(parts)
            nul = chunk.find(b"\0")
            if nul >= 0:
                raise ProbeError(f"{self.path}: a NUL byte at byte {self._bytes + nul} of the "
                                 "text: not a JSON-lines probe stream")
            self._bytes += len(chunk)
            self._chunk, self._pos = chunk, 0

    def _next_record(self):
        line = self._read_line()
        if not line:
            return None
        self.line += 1
        if not line.endswith(b"\n"):
            raise self._cut("the last line is cut short (no newline)")
        if self.line == 1 and line.startswith(b"\xef\xbb\xbf"):
            line = line[3:]
        try:
            rec = parse_record(line)
        except ValueError as e:
            raise ProbeError(f"{self._where()}: not valid JSON: {e}") from e
        if not isinstance(rec, dict):
            raise ProbeError(f"{self._where()}: a record must be a JSON object, not "
                             f"{_type_name(rec)}")
        if "record" not in rec:
            raise ProbeError(f'{self._where()}: no "record" field (header, probe or end)')
        return rec

    def __iter__(self):
        return self

    def __next__(self):
        if self._error is not None:
            raise self._error
        try:
            return self._next_probe()
        except StopIteration:
            self.close()  # the end record, and nothing after it, was read
            raise
        except ProbeError as e:
            self._error = e
            self.close()
            raise

    def _next_probe(self):
        if self.end is not None:
            raise StopIteration
        rec = self._next_record()
        if rec is None:
            raise self._cut("no end record")
        kind = rec["record"]
        if kind == "end":
            self.end = _check_end(rec, self._where(), self.count, self.last_key)
            if self._read_line():
                raise ProbeError(f"{self.path}:{self.line + 1}: data after the end record (line "
                                 f"{self.line})")
            raise StopIteration
        if kind == "header":
            raise ProbeError(f"{self._where()}: a second header record (the header comes first, "
                             "once)")
        if kind != "probe":
            raise ProbeError(f"{self._where()}: unknown record kind {json.dumps(kind)[:64]} "
                             "(expected header, probe or end)")
        p = _check_probe(rec, self._where(), self.count, self._keys, self.decode_data, self.line)
        self.count += 1
        self.last_key = p.key
        return p


def _check_header(rec, where):
    """The header's fields, as the C reader checks them; the KeyFilter of its filter."""
    f = _Fields(f"{where}: header")
    fmt = f.get(rec, "format", "string")
    if fmt != FORMAT:
        raise f.bad(f'format is "{fmt[:64]}", not "{FORMAT}": not a layerdiff probe stream')
    version = f.integer(rec, "version", 0, _INT31)
    if version != VERSION:
        raise f.bad(f"format version {version} is not supported (this reader knows version "
                    f"{VERSION})", "unsupported")
    f.only(rec, _HEADER_FIELDS, "the header")
    impl = f.get(rec, "implementation", "string")
    if not 1 <= len(impl.encode("utf-8", "surrogatepass")) <= 255:
        raise f.bad('field "implementation" is empty or longer than 255 bytes')
    if "\0" in impl:
        raise f.bad('field "implementation" is a string holding a NUL character')
    f.get(rec, "backend", "object")
    model = f.get(rec, "model", "object")
    inp = f.get(rec, "input", "object")
    faults = f.get(rec, "faults", "array")
    tool = f.get(rec, "tool", "object")
    f.only(inp, ("tokens", "text", "decode_steps"), "header.input")
    f.tokens(inp, "tokens", 0, "input.tokens")
    f.integer(inp, "decode_steps", 0, _INT31, label="input.decode_steps")
    f.get(inp, "text", "string", required=False, label="input.text")
    f.only(tool, ("name", "version", "git"), "header.tool")
    for name in ("name", "version", "git"):
        f.get(tool, name, "string", label="tool." + name)
    f.get(model, "fingerprint", "string", required=False, label="model.fingerprint")
    f.get(rec, "feed", "object", required=False)
    if not _CREATED_RE.match(f.get(rec, "created", "string")):
        raise f.bad('field "created" is not an ISO-8601 UTC time like 2026-01-31T12:00:00Z')
    for i, fault in enumerate(faults):
        if not isinstance(fault, str) or "\0" in fault:  # a NUL: as the C reader words it
            raise f.bad(f"faults[{i}] is not a string" + (" (it holds a NUL character)" if
                                                            isinstance(fault, str) else ""))
    filt = f.get(rec, "filter", "object", required=False)
    if filt is None:
        return KeyFilter()
    f.only(filt, ("tags", "layers", "steps"), "header.filter")
    asked = {}
    for name in ("tags", "layers", "steps"):
        v = f.get(filt, name, "string", required=False, label="filter." + name)
        if v is not None and (not v or "\0" in v):
            raise f.bad(f"filter.{name} is empty or holds a NUL")
        asked[name] = v
    try:
        return KeyFilter(**asked)
    except ProbeError as e:
        raise f.bad(f"filter: {e}") from e


def _check_probe(rec, where, count, keys, decode_data, line):
    """A probe record's fields, as the C reader checks them (its payload too when decode_data)."""
    f = _Fields(f"{where}: probe")
    tag = f.get(rec, "tag", "string")
    if not _TAG_RE.match(tag):
        raise f.bad(f'field "tag" is {json.dumps(tag[:128])}, {_TAG_HELP}')
    step = f.integer(rec, "step", 0, _INT31)
    layer = f.integer(rec, "layer", 0, _INT31, required=False)
    key = key_name(step, layer, tag)
    f.where = f"{where}: probe {key}"
    if not keys.match(step, layer, tag):
        raise f.bad("the key is outside the header's filter")
    if tag in PER_LAYER and PER_LAYER[tag] != (layer is not None):
        raise f.bad(f"{tag} is a model-level tag but the record has a layer" if layer is not None
                    else f"{tag} is a per-layer tag but the record has no layer")
    f.only(rec, _PROBE_FIELDS, "a probe record")
    index = f.integer(rec, "index", 0, _SAFE_INT)
    pos0 = f.integer(rec, "pos0", 0, _SAFE_INT)
    if index != count:
        raise f.bad(f"index is {index} but {count} probes came before it (a record is missing or "
                    "out of order)")
    dtype = f.get(rec, "dtype", "string")
    if dtype not in DTYPES:
        raise f.bad(f'dtype is "{dtype[:32]}", expected "f32", "bf16" or "f16"')
    shape = f.get(rec, "shape", "array")
    numel = _shape_numel(shape, f)
    st = f.get(rec, "stats", "object")
    f.only(st, _STAT_NAMES + ("nan", "inf"), "stats")
    stats = {}
    for name in _STAT_NAMES:
        if name not in st:
            raise f.bad(f'missing field "stats.{name}"')
        stats[name] = f.value(st[name], "stats." + name)
    for name in ("nan", "inf"):
        stats[name] = f.integer(st, name, 0, _SAFE_INT, label="stats." + name)
    if stats["nan"] > numel or stats["inf"] > numel - stats["nan"]:
        raise f.bad(f"stats count {stats['nan']} NaN and {stats['inf']} Inf among {numel} "
                    "elements")
    hv = f.get(rec, "head", "array")
    if len(hv) != min(numel, HEAD_COUNT):
        raise f.bad(f"head has {len(hv)} values, expected {min(numel, HEAD_COUNT)} (the first "
                    "min(16, numel))")
    head = [f.value(h, f"head[{i}]") for i, h in enumerate(hv)]
    if "fed" in rec and not isinstance(rec["fed"], bool):
        raise f.bad(f'field "fed" is {_type_name(rec["fed"])}, expected true or false')
    data = data_dtype = None
    if "data" in rec:
        data_dtype = _data_fields(rec["data"], f)[1]
        if decode_data:
            data = decode_payload(rec["data"], numel, f.where)
            first = to_f32(data[:HEAD_COUNT * ELEMENT_SIZE[data_dtype]], data_dtype)
            for i, (h, v) in enumerate(zip(head, first.tolist())):
                if not (h == v or (h != h and v != v)):
                    raise f.bad(f"head[{i}] = {format_double(h)} disagrees with element {i} of "
                                f"the data ({format_double(v)})")
    return Probe(rec, data, step=step, layer=layer, tag=tag, index=index, pos0=pos0, dtype=dtype,
                 shape=shape, stats=stats, head=head, data_dtype=data_dtype, line=line)


def _check_end(rec, where, count, last_key):
    f = _Fields(f"{where}: end record")
    f.only(rec, _END_FIELDS, "the end record")
    status = f.get(rec, "status", "string")
    if status not in ("ok", "error"):
        raise f.bad(f'status is "{status[:32]}", expected "ok" or "error"')
    probes = f.integer(rec, "probes", 0, _SAFE_INT)
    if probes != count:
        raise f.bad(f"it counts {probes} probes but the stream holds {count}")
    f.tokens(rec, "tokens", -1, "tokens")
    f.tokens(rec, "decoded", 0, "decoded")
    lk = f.get(rec, "last_key", "string")
    if lk != last_key:
        raise f.bad(f'last_key is "{lk[:200]}" but the last probe read is "{last_key}"')
    if f.get(rec, "message", "string", required=False) is None and status == "error":
        raise f.bad('status is "error" but there is no message')
    return rec


class Feed:
    """Reference tensors by key, for teacher forcing: the twin of the C library's ld_feed
    (docs/probes.md, "Feeding reference tensors"). Reads the stream forward one record at a time,
    so memory stays one record; keys are best asked for in the stream's order, and asking for one
    before the last served reads the stream again from its start. Errors are ProbeError: kind
    "input" for a key the stream lacks or a probe without payload, "truncated" for a stream cut
    short before the key."""

    def __init__(self, path):
        self.path = os.fspath(path)
        self._reader = Reader(self.path)
        self.header = self._reader.header
        self._keys = KeyFilter()
        # The stream stays one a Sink refuses to truncate for the feed's whole life, not only
        # while its current Reader is open (a Reader closes itself at the end or an error, and
        # the next get() opens the file again).
        try:
            st = os.fstat(self._reader._raw.fileno())
        except (AttributeError, ValueError, OSError):  # the reader has closed it already
            st = os.stat(self.path)
        rid = next(_READER_IDS)
        _READING[rid] = (st.st_dev, st.st_ino)
        self._finalizer = weakref.finalize(self, _READING.pop, rid, None)

    def close(self):
        self._reader.close()
        self._finalizer()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def select(self, tags=None, layers=None, steps=None):
        """Which keys an engine should replace (the sink's filter syntax); every key until
        called. A bad filter raises ProbeError of kind "usage"."""
        self._keys = KeyFilter(tags, layers, steps)

    def wants(self, step, layer, tag):
        """Cheap, before any work: should the engine replace this key's tensor?"""
        return self._keys.match(step, layer, tag)

    def _scan(self, key):
        for p in self._reader:
            if p.key == key:
                return p
        return None

    def get(self, step, layer, tag, dtype="f32"):
        """The tensor of the key in dtype, shaped as probed: float32 or float16 arrays, or bf16 as
        uint16 bit patterns (narrowing rounds to nearest even, as the C feed does)."""
        if dtype not in ELEMENT_SIZE:
            raise ProbeError(f"dtype '{dtype}' is not f32, bf16 or f16", "usage")
        key = key_name(step, layer, tag)
        p = self._scan(key)
        if p is None and not self._reader.regular:  # a pipe is read once
            raise ProbeError(f"{self.path}: the feed has no probe {key} after the last key served "
                             "(the stream is not a regular file, so it is read once: ask for "
                             "keys in its order)")
        if p is None:  # past it, or absent: once more from the start
            self._reader.close()
            self._reader = Reader(self.path)
            p = self._scan(key)
        if p is None:
            raise ProbeError(f"{self.path}: the feed has no probe {key}")
        if p.data is None:
            raise ProbeError(f"{self.path}: probe {key} holds no payload (write the feed with "
                             "--payload full)")
        values = p.array()
        if dtype == "f32":
            return values
        if dtype == "f16":
            return values.astype(np.float16)
        return bf16_bits(values)


class Stream:
    """A whole probe stream in memory: header, probes (in order), end record, and by_key
    ((step, layer, tag) -> Probe). For tests and small streams; Reader streams."""

    def __init__(self, path):
        with Reader(path) as r:
            self.header = r.header
            self.probes = list(r)
            self.end = r.end
        self.by_key = {}
        for p in self.probes:
            first = self.by_key.setdefault((p.step, p.layer, p.tag), p)
            if first is not p:  # as layerdiff inspect and compare refuse it
                raise ProbeError(f"{os.fspath(path)}:{p.line}: probe {p.key}: appears twice "
                                 f"(first on line {first.line})")

    def tensor(self, step, layer, tag):
        return self.by_key[(step, layer, tag)].array()
