"""layerdiff.probes — a writer and a streaming reader of layerdiff probe streams (format v1,
docs/probes.md) in pure Python and numpy, byte-compatible with the C library's records. Not the
capture of a model (layerdiff.torch) nor the comparator (the layerdiff command)."""

import base64
import datetime
import fnmatch
import gzip
import json
import math
import os
import re
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
# whether it is per layer. tests/python/test_probes.py holds this list to the C table.
TAGS = (("embed", False), ("attn_norm", True), ("q_proj", True), ("k_proj", True),
        ("v_proj", True), ("q_norm", True), ("k_norm", True), ("q_rope", True), ("k_rope", True),
        ("attn_out", True), ("o_proj", True), ("attn_residual", True), ("mlp_norm", True),
        ("gate_proj", True), ("up_proj", True), ("mlp_act", True), ("down_proj", True),
        ("layer_out", True), ("final_norm", False), ("logits", False))
TAG_ORDER = {name: i for i, (name, _) in enumerate(TAGS)}
PER_LAYER = dict(TAGS)
_TAG_RE = re.compile(r"[A-Za-z0-9_.:/+-]{1,128}\Z")
_GLOB_RE = re.compile(r"[A-Za-z0-9_.:/+*?-]{1,128}\Z")
_INT_RE = re.compile(r"[0-9]{1,10}\Z")
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


def _json_string(s):
    # json.dumps escapes like ld_json_put_string for valid UTF-8, except that C writes non-ASCII
    # characters raw: ensure_ascii=False keeps them raw too.
    return json.dumps(s, ensure_ascii=False)


# ---- statistics, in stats.c's order ------------------------------------------------------------

def _lane_sums(parts, n, nchunks):
    """Per chunk: eight lane sums taken in element order, joined as stats.c's tree8; then the
    chunks joined in order. parts: float64 arrays of n elements, zero where an element does not
    count; returns one sum per part."""
    buf = np.zeros((len(parts), nchunks * _CHUNK))
    for i, v in enumerate(parts):
        buf[i, :n] = v
    rows = buf.reshape(len(parts), nchunks, _CHUNK // _LANES, _LANES)
    # A reduction over a strided axis runs row after row (the inner loop goes across the lanes),
    # so each lane is summed in element order: no pairwise summation. py_probes holds the result
    # to the C writer's, bit for bit.
    lanes = rows.sum(axis=2)
    t = ((lanes[..., 0] + lanes[..., 1]) + (lanes[..., 2] + lanes[..., 3])) + \
        ((lanes[..., 4] + lanes[..., 5]) + (lanes[..., 6] + lanes[..., 7]))
    return [float(v) for v in np.add.accumulate(t, axis=1)[:, -1]]


def _pick_zero(x, fin, target, nchunks):
    """min/max when it is zero: which zero (+0 or -0) stats.c keeps. Within a chunk of finite
    elements each lane keeps its first extreme and the lowest lane wins ties; a chunk with
    NaN/Inf keeps its first; across chunks the first wins."""
    for c in range(nchunks):
        xs, fs = x[c * _CHUNK:(c + 1) * _CHUNK], fin[c * _CHUNK:(c + 1) * _CHUNK]
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
    """min, max, mean, std, l2, absmax, nan, inf of a float32 array, bit for bit as stats.c."""
    x = np.ascontiguousarray(values, dtype=np.float32).reshape(-1)
    n = x.size
    fin = np.isfinite(x)
    nfin = int(np.count_nonzero(fin))
    nan = int(np.count_nonzero(np.isnan(x)))
    out = {"nan": nan, "inf": n - nfin - nan}
    if nfin == 0:
        out.update(min=float("nan"), max=float("nan"), mean=float("nan"), std=float("nan"),
                   l2=float("nan"), absmax=float("nan"))
        return out
    shift = float(x[int(np.argmax(fin))])  # the first finite value: keeps the variance accurate
    d = x.astype(np.float64)
    if nfin != n:
        d[~fin] = 0.0
    e = d - shift
    if nfin != n:
        e[~fin] = 0.0
    nchunks = (n + _CHUNK - 1) // _CHUNK
    s, q, r = _lane_sums((e, e * e, d * d), n, nchunks)
    fx = x if nfin == n else x[fin]
    mn, mx = float(fx.min()), float(fx.max())
    if mn == 0.0:
        mn = _pick_zero(x, fin, mn, nchunks)
    if mx == 0.0:
        mx = _pick_zero(x, fin, mx, nchunks)
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
    for item in text.split(","):
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
        if not 1 <= len(implementation.encode()) <= 255:
            raise ProbeError("implementation must be 1 to 255 bytes", "usage")
        if not isinstance(backend, dict) or not isinstance(model, dict):
            raise ProbeError("backend and model must be dicts (JSON objects)", "usage")
        tokens = [int(t) for t in tokens]
        if any(t < 0 for t in tokens) or int(decode_steps) < 0:
            raise ProbeError("tokens and decode_steps must not be negative", "usage")
        if text is not None and not isinstance(text, str):
            raise ProbeError("text must be a str (the prompt as text) or None", "usage")
        self.name, self.payload, self.encoding = path, payload, encoding
        self.zlib_level = zlib_level
        self._keys = KeyFilter(tags, layers, steps)
        self.count, self.last_key = 0, ""
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        created = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        # The filter (as the C writer writes it): which keys this stream can never hold, so that a
        # comparator does not keep the other stream's records of those keys waiting.
        asked = [(name, value) for name, value in (("tags", tags), ("layers", layers),
                                                   ("steps", steps)) if value]
        filt = (',"filter":{%s}' % ",".join('"%s":%s' % (n, _json_string(v)) for n, v in asked)
                if asked else "")
        header = (
            '{"record":"header","format":"%s","version":%d,"implementation":%s,"backend":%s,'
            '"model":%s,"input":{"tokens":[%s]%s,"decode_steps":%d},"faults":[%s]%s,'
            '"created":"%s","tool":{"name":"layerdiff","version":%s,"git":"python"}}\n' % (
                FORMAT, VERSION, _json_string(implementation), _compact(backend), _compact(model),
                ",".join(map(str, tokens)),
                "" if text is None else ',"text":' + _json_string(text), int(decode_steps),
                ",".join(_json_string(f) for f in faults), filt, created,
                _json_string(__version__ + " (python)")))
        self._write(header, "header")

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if self._fd is not None:
            self.close(ok=exc is None, message=None if exc is None else f"{exc_type.__name__}: "
                       f"{exc}")

    def _write(self, text, what):
        data = text.encode()
        done = 0
        try:
            while done < len(data):
                done += os.write(self._fd, data[done:])
        except OSError as e:
            raise ProbeError(f"{self.name}: write failed after {done} of {len(data)} bytes of the "
                             f"{what} record: {e.strerror}", "io") from e

    def wants(self, step, layer, tag):
        """Whether a probe of this key would be written: decide before copying anything."""
        return self._fd is not None and self._keys.match(step, layer, tag)

    @property
    def wants_data(self):
        return self.payload == "full"

    def _check_key(self, step, layer, tag):
        if self._fd is None:
            raise ProbeError(f"{self.name}: the sink is closed", "usage")
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
        dtype = dtype or _dtype_of(array)
        raw = _raw_of(array, dtype)
        vals = to_f32(raw, dtype)
        self._emit(step, layer, tag, pos0, dtype, np.shape(array), compute_stats(vals),
                   vals[:HEAD_COUNT], raw)

    def emit_precomputed(self, step, layer, tag, *, shape, dtype, stats, head, data=None,
                         pos0=0):
        """Writes one probe whose stats and head were computed elsewhere (on a device); data,
        the raw little-endian bytes, only when wants_data."""
        self._check_key(step, layer, tag)
        if not self.wants(step, layer, tag):
            return
        numel = math.prod(int(d) for d in shape)  # Python ints: no overflow
        if stats["nan"] > numel or stats["inf"] > numel - stats["nan"]:
            raise ProbeError(f"{self.name}: {tag}: stats count {stats['nan']} NaN and "
                             f"{stats['inf']} Inf in {numel} elements", "usage")
        self._emit(step, layer, tag, pos0, dtype, shape, stats, head, data)

    def _emit(self, step, layer, tag, pos0, dtype, shape, stats, head, raw):
        shape = [int(d) for d in shape]
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
        key = key_name(step, layer, tag)
        self._write("".join(parts), "probe " + key)
        self.count += 1
        self.last_key = key

    def close(self, *, tokens=(), decoded=(), ok=True, message=None):
        """Writes the end record: status, probe count, the argmax token of every step (-1 for
        none), the tokens fed to decode steps, last_key; then closes the file."""
        if self._fd is None:
            return
        rec = '{"record":"end","status":"%s","probes":%d,"tokens":[%s],"decoded":[%s],' \
              '"last_key":%s' % ("ok" if ok else "error", self.count,
                                 ",".join(str(int(t)) for t in tokens),
                                 ",".join(str(int(t)) for t in decoded),
                                 _json_string(self.last_key))
        if not ok:
            rec += ',"message":' + _json_string(
                message or "the producer reported an error without a message")
        try:
            self._write(rec + "}\n", "end")
        finally:
            os.close(self._fd)
            self._fd = None


def _compact(obj):
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


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

def decode_payload(data, numel, where="payload"):
    """The raw little-endian bytes of a probe's data object, checked (size, crc32)."""
    enc, dtype = data.get("encoding"), data.get("dtype")
    if enc not in ENCODINGS or dtype not in DTYPES:
        raise ProbeError(f"{where}: encoding {enc!r} or dtype {dtype!r} is unknown")
    size = ELEMENT_SIZE[dtype]
    try:
        raw = base64.b64decode(data["b64"], validate=True)
    except (ValueError, KeyError) as e:
        raise ProbeError(f"{where}: bad base64 in data.b64: {e}") from e
    if enc != "base64":
        try:
            d = zlib.decompressobj()
            raw = d.decompress(raw, numel * size + 1)
            if not d.eof or d.unused_data or len(raw) != numel * size:
                raise ProbeError(f"{where}: zlib data inflates to the wrong size or has bytes "
                                 f"after the end (expected {numel * size} bytes)")
        except zlib.error as e:
            raise ProbeError(f"{where}: corrupt zlib data: {e}") from e
        if enc == "shuffle+zlib+base64":
            raw = np.frombuffer(raw, np.uint8).reshape(size, numel).T.tobytes()
    if len(raw) != numel * size:
        raise ProbeError(f"{where}: payload decodes to {len(raw)} bytes, expected "
                         f"{numel * size} ({numel} elements of {dtype})")
    crc = zlib.crc32(raw)
    if crc != data.get("crc32"):
        raise ProbeError(f"{where}: data.crc32 is {data.get('crc32')} but the decoded payload's "
                         f"crc32 is {crc}")
    return raw


def _number(v):
    return float(v) if not isinstance(v, str) else float(
        {"NaN": "nan", "Infinity": "inf", "-Infinity": "-inf"}[v])


class Probe:
    """One probe record: step, layer (None for model-level tags), tag, key, pos0, dtype, shape,
    stats (floats), head, data (raw bytes or None), record (the parsed JSON)."""

    def __init__(self, rec, data):
        self.record = rec
        self.step, self.layer, self.tag = rec["step"], rec.get("layer"), rec["tag"]
        self.key = key_name(self.step, self.layer, self.tag)
        self.pos0, self.dtype, self.shape = rec["pos0"], rec["dtype"], tuple(rec["shape"])
        self.stats = {k: _number(v) for k, v in rec["stats"].items()}
        self.head = [_number(v) for v in rec["head"]]
        self.data = data

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
        return to_f32(self.data, self.dtype).reshape(self.shape)


class Reader:
    """Reads a probe stream one record at a time (plain or .gz); memory is one record. Iterate
    for the Probes; header is read on open, end after the last probe. A stream without its end
    record, or cut inside a line, raises ProbeError of kind "truncated" naming the last complete
    probe."""

    def __init__(self, path, decode_data=True):
        self.path, self.decode_data = os.fspath(path), decode_data
        opener = gzip.open if self.path.endswith(".gz") else open
        self._f = opener(self.path, "rb")
        self.line, self.count, self.last_key, self.end = 0, 0, "", None
        rec = self._next_record()
        if rec is None:
            raise ProbeError(f"{self.path}: the file is empty (no header record)", "truncated")
        if rec.get("record") != "header":
            raise ProbeError(f"{self.path}:1: the first record is a {rec.get('record')}, not "
                             "the header")
        if rec.get("format") != FORMAT:
            raise ProbeError(f"{self.path}:1: not a layerdiff probe stream")
        if rec.get("version") != VERSION:
            raise ProbeError(f"{self.path}:1: format version {rec.get('version')} is not "
                             "supported", "unsupported")
        self.header = rec

    def close(self):
        self._f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _where(self):
        return f"{self.path}:{self.line}"

    def _cut(self, why):
        last = self.last_key or "none"
        return ProbeError(f"{self.path}: {why}; last complete probe: {last}", "truncated")

    def _next_record(self):
        try:
            line = self._f.readline()
        except EOFError as e:
            raise self._cut("the gzip data ends early") from e
        if not line:
            return None
        self.line += 1
        if not line.endswith(b"\n"):
            raise self._cut("the last line is cut short (no newline)")
        try:
            rec = json.loads(line, parse_constant=_refuse_constant)
        except ValueError as e:
            raise ProbeError(f"{self._where()}: not valid JSON: {e}") from e
        if not isinstance(rec, dict):
            raise ProbeError(f"{self._where()}: a record must be a JSON object")
        return rec

    def __iter__(self):
        return self

    def __next__(self):
        if self.end is not None:
            raise StopIteration
        rec = self._next_record()
        if rec is None:
            raise self._cut("no end record")
        kind = rec.get("record")
        if kind == "end":
            if rec.get("probes") != self.count:
                raise ProbeError(f"{self._where()}: end: it counts {rec.get('probes')} probes but "
                                 f"the stream holds {self.count}")
            if rec.get("last_key") != self.last_key:
                raise ProbeError(f"{self._where()}: end: last_key is {rec.get('last_key')} but "
                                 f"the last probe read is {self.last_key}")
            self.end = rec
            if self._f.readline():
                raise ProbeError(f"{self.path}:{self.line + 1}: data after the end record")
            raise StopIteration
        if kind != "probe":
            raise ProbeError(f"{self._where()}: unknown record kind {kind!r}")
        if rec.get("index") != self.count:
            raise ProbeError(f"{self._where()}: probe: index is {rec.get('index')} but "
                             f"{self.count} probes came before it")
        numel = 1
        for d in rec["shape"]:
            numel *= d
        data = None
        if "data" in rec and self.decode_data:
            data = decode_payload(rec["data"], numel, self._where())
            head = to_f32(data[:HEAD_COUNT * ELEMENT_SIZE[rec["dtype"]]], rec["dtype"])
            for i, (h, v) in enumerate(zip(rec["head"], head)):
                if np.float32(_number(h)).tobytes() != v.tobytes() and not (
                        np.isnan(v) and h == "NaN"):
                    raise ProbeError(f"{self._where()}: probe: head[{i}] = {h} disagrees with "
                                     f"element {i} of the data")
        p = Probe(rec, data)
        self.count += 1
        self.last_key = p.key
        return p


def _refuse_constant(name):
    raise ValueError(f"bare {name} is not JSON")


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

    def close(self):
        self._reader.close()

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
        self.by_key = {(p.step, p.layer, p.tag): p for p in self.probes}

    def tensor(self, step, layer, tag):
        return self.by_key[(step, layer, tag)].array()
