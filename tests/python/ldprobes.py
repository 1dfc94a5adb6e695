"""ldprobes — the tests' reader of probe streams: the layerdiff package's (python/layerdiff/
probes.py, pure Python + numpy, sharing no code with the C library, so a test that reads C output
through it checks the format, not the library against itself). Only the names the tests use."""

import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python"))
from layerdiff.probes import Stream, key_name, to_f32  # noqa: E402,F401  (re-exported)
from layerdiff import probes as _probes  # noqa: E402


def decode_payload(data, shape):
    """The probe's data as a float64 array of its logical shape (bf16/f16 widened exactly)."""
    numel = int(np.prod(shape)) if shape else 1
    raw = _probes.decode_payload(data, numel)
    return to_f32(raw, data["dtype"]).astype(np.float64).reshape(shape)
