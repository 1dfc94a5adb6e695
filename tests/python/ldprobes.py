"""ldprobes — a small, independent Python reader of layerdiff probe streams (record format v1,
docs/probes.md), for tests. It shares no code with the C library, so a test that reads C
output through it checks the format, not the library against itself."""

import base64
import gzip
import json
import zlib

import numpy as np

ELEMENT_SIZE = {"f32": 4, "bf16": 2, "f16": 2}


def _as_float64(raw, dtype):
    b = np.frombuffer(raw, dtype=np.uint8)
    if dtype == "f32":
        return b.view("<f4").astype(np.float64)
    if dtype == "f16":
        return b.view("<f2").astype(np.float64)
    return (b.view("<u2").astype(np.uint32) << 16).view("<f4").astype(np.float64)


def decode_payload(data, shape):
    """The probe's data as a float64 array of its logical shape (bf16/f16 widened exactly)."""
    raw = base64.b64decode(data["b64"], validate=True)
    enc = data["encoding"]
    size = ELEMENT_SIZE[data["dtype"]]
    n = int(np.prod(shape)) if shape else 1
    if enc in ("zlib+base64", "shuffle+zlib+base64"):
        raw = zlib.decompress(raw)
    if enc == "shuffle+zlib+base64":
        # byte planes: plane j holds byte j of every element
        planes = np.frombuffer(raw, dtype=np.uint8).reshape(size, n)
        raw = planes.T.copy().tobytes()
    if len(raw) != n * size:
        raise ValueError(f"payload of {len(raw)} bytes for {n} elements of {size}")
    if zlib.crc32(raw) & 0xFFFFFFFF != data["crc32"]:
        raise ValueError("crc mismatch in a probe payload")
    return _as_float64(raw, data["dtype"]).reshape(shape)


def key_name(step, layer, tag):
    return f"S{step}." + (f"L{layer}." if layer is not None else "") + tag


class Stream:
    """A whole probe stream in memory: header, probes (in order) and end record."""

    def __init__(self, path):
        opener = gzip.open if path.endswith(".gz") else open
        self.header, self.probes, self.end = None, [], None
        with opener(path, "rt") as f:
            for line in f:
                rec = json.loads(line)
                kind = rec["record"]
                if kind == "header":
                    self.header = rec
                elif kind == "probe":
                    self.probes.append(rec)
                elif kind == "end":
                    self.end = rec
        if self.header is None or self.end is None:
            raise ValueError(f"{path}: missing header or end record")
        self.by_key = {(p["step"], p.get("layer"), p["tag"]): p for p in self.probes}

    def tensor(self, step, layer, tag):
        p = self.by_key[(step, layer, tag)]
        return decode_payload(p["data"], p["shape"])
