#!/usr/bin/env python3
"""Validates real probe-writer output against schemas/probe.schema.json with a real JSON Schema
validator (Draft 2020-12), checks that the schema refuses what the reader refuses, and that the
schema's tag lists equal the C tag table.

usage: test_probe_schema.py LD_PROBE_SAMPLE   (the helper program; LD_SRC names the source root)
"""
import copy
import json
import os
import shutil
import subprocess
import sys
import tempfile

import jsonschema


def main():
    sample = sys.argv[1]
    src = os.environ.get("LD_SRC") or os.path.join(os.path.dirname(__file__), "..", "..", "..")
    with open(os.path.join(src, "schemas", "probe.schema.json"), encoding="utf-8") as f:
        schema = json.load(f)
    jsonschema.Draft202012Validator.check_schema(schema)
    v = jsonschema.Draft202012Validator(schema)
    failures = []

    # 1. The tag lists: the schema's, in order, against the C table.
    out = subprocess.run([sample, "--tags"], check=True, capture_output=True, text=True).stdout
    c_tags = [line.split() for line in out.splitlines()]
    names = [t for t, _ in c_tags]
    per_layer = [t for t, p in c_tags if p == "1"]
    model_level = [t for t, p in c_tags if p == "0"]
    defs = schema["$defs"]
    if defs["tableTags"]["enum"] != names:
        failures.append(f"tableTags {defs['tableTags']['enum']} != C table {names}")
    if defs["perLayerTags"]["enum"] != per_layer:
        failures.append(f"perLayerTags {defs['perLayerTags']['enum']} != C {per_layer}")
    if defs["modelLevelTags"]["enum"] != model_level:
        failures.append(f"modelLevelTags {defs['modelLevelTags']['enum']} != C {model_level}")

    # 2. Every line of real writer output is valid; every kind, dtype and encoding is seen.
    seen = set()
    with tempfile.TemporaryDirectory() as d:
        subprocess.run([sample, d], check=True)
        shutil.copy(os.path.join(src, "tests", "data", "probes", "v1_golden.jsonl"), d)
        records = {}
        for name in sorted(os.listdir(d)):
            with open(os.path.join(d, name), encoding="utf-8") as f:
                for n, line in enumerate(f, 1):
                    rec = json.loads(line)
                    records.setdefault(rec["record"], rec)
                    errors = sorted(v.iter_errors(rec), key=lambda e: list(e.path))
                    for e in errors:
                        failures.append(f"{name}:{n}: {e.message} at {list(e.path)}")
                    seen.add(rec["record"])
                    if rec["record"] == "probe":
                        seen.add("dtype " + rec["dtype"])
                        seen.add("layer" if "layer" in rec else "no layer")
                        if "data" in rec:
                            seen.add("encoding " + rec["data"]["encoding"])
                        if "NaN" in rec["head"]:
                            seen.add("NaN in head")
                        if rec["tag"] not in names:
                            seen.add("custom tag")
                    if rec["record"] == "end":
                        seen.add("end " + rec["status"])
        want = {"header", "probe", "end", "dtype f32", "dtype bf16", "dtype f16", "layer",
                "no layer", "encoding base64", "encoding zlib+base64",
                "encoding shuffle+zlib+base64", "NaN in head", "custom tag", "end ok", "end error"}
        if want - seen:
            failures.append(f"sample output lacks {sorted(want - seen)}")

        # 3. The schema is not vacuous: it refuses what the reader refuses.
        probe = next(r for r in (json.loads(l) for l in open(os.path.join(d, "full_base64.jsonl")))
                     if r["record"] == "probe" and r.get("layer") == 0 and r["tag"] == "q_proj")
        header, end = records["header"], records["end"]

        def bad(what, rec):
            if v.is_valid(rec):
                failures.append(f"schema accepts {what}")

        def good(what, rec):
            errs = [e.message for e in v.iter_errors(rec)]
            if errs:
                failures.append(f"schema refuses {what}: {errs}")

        good("the probe as written", probe)
        r = copy.deepcopy(probe); del r["layer"]; bad("a per-layer tag without layer", r)
        r = copy.deepcopy(probe); r["tag"] = "logits"; bad("a model-level tag with a layer", r)
        r = copy.deepcopy(probe); r["tag"] = "my_tag"; good("a custom tag with a layer", r)
        r = copy.deepcopy(probe); r["tag"] = "my_tag"; del r["layer"]; good("a custom tag without layer", r)
        r = copy.deepcopy(probe); r["tag"] = "q norm"; bad("a tag with a space", r)
        r = copy.deepcopy(probe); r["tag"] = "x" * 129; bad("a 129-character tag", r)
        r = copy.deepcopy(probe); r["extra"] = 1; bad("an unknown probe field", r)
        r = copy.deepcopy(probe); r["dtype"] = "f64"; bad("dtype f64", r)
        r = copy.deepcopy(probe); r["shape"] = [1, 1, 1, 1, 1]; bad("five dimensions", r)
        r = copy.deepcopy(probe); r["shape"] = [-1]; bad("a negative dimension", r)
        r = copy.deepcopy(probe); r["index"] = 1.5; bad("a fractional index", r)
        r = copy.deepcopy(probe); r["stats"]["min"] = "nan"; bad("lower-case nan", r)
        r = copy.deepcopy(probe); r["stats"]["min"] = "-Infinity"; good("-Infinity in stats", r)
        r = copy.deepcopy(probe); del r["stats"]["inf"]; bad("stats without inf", r)
        r = copy.deepcopy(probe); r["head"] = list(range(17)); bad("17 head values", r)
        r = copy.deepcopy(probe); r["data"]["b64"] = "AA*A"; bad("bad base64 characters", r)
        r = copy.deepcopy(probe); r["data"]["b64"] = "AAA"; bad("base64 of a bad length", r)
        r = copy.deepcopy(probe); r["data"]["encoding"] = "lz4"; bad("encoding lz4", r)
        r = copy.deepcopy(probe); r["data"]["crc32"] = 2 ** 32; bad("crc32 2^32", r)
        r = copy.deepcopy(header); r["version"] = 2; bad("version 2", r)
        r = copy.deepcopy(header); r["format"] = "other"; bad("another format", r)
        r = copy.deepcopy(header); del r["input"]; bad("a header without input", r)
        r = copy.deepcopy(header); r["input"]["tokens"] = [-1]; bad("a negative token", r)
        r = copy.deepcopy(header); r["created"] = "yesterday"; bad("created 'yesterday'", r)
        r = copy.deepcopy(end); r["status"] = "error"; r.pop("message", None); bad("error without message", r)
        r = copy.deepcopy(end); r["status"] = "fine"; bad("status 'fine'", r)
        r = copy.deepcopy(end); r["last_key"] = "L3.q_norm"; bad("a last_key without step", r)
        bad("an unknown record kind", {"record": "trace"})

    for f in failures:
        print("FAIL:", f)
    print(f"{len(failures)} failures; saw {len(seen)} kinds of record content")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
