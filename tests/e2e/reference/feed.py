#!/usr/bin/env python3
"""Teacher forcing end to end (run --feed, issue 19) on the tiny model: a candidate with a fault
at one op, fed the reference's output of that op, recovers downstream (only the faulty op's own
probes fail, every step); fed everything, an emulated-bf16 candidate shows each op's error on
exact inputs only where the fault is; the records say "fed" exactly for the fed keys and the
header names the feed; and a feed of another model or prompt, without a fed key, without
payloads or cut short is refused with its exit code (2, 2, 2, 2, 3) and a message naming it."""
import json
import os
import subprocess
import sys
import tempfile

LD_BIN = os.environ["LD_BIN"]
PROMPT = "17,3,250,41,9,128,77"


def ld(args, rc=0, needle=None):
    p = subprocess.run([LD_BIN] + args, capture_output=True, text=True)
    if p.returncode != rc or (needle and needle not in p.stderr):
        sys.exit(f"feed: layerdiff {' '.join(args)} gave {p.returncode} (want {rc}"
                 f"{', ' + repr(needle) if needle else ''}):\n{p.stderr}")
    return p


def failing(tmp, ref, cand, fed=None):
    out = os.path.join(tmp, "c.json")
    ld(["compare", ref, cand, "--json", out, "--brief"], rc=1)
    report = json.load(open(out))
    if fed is not None:  # the report says which rows were fed, and that the candidate was
        got = sorted(p["key"] for p in report["probes"] if p["fed"])
        assert got == fed, f"report's fed rows {got}, want {fed}"
        assert any(n["code"] == "fed" for n in report["notes"]), report["notes"]
    return sorted(p["key"] for p in report["probes"] if p["status"] != "pass")


def stats_ref(tmp, m):
    path = os.path.join(tmp, "stats.jsonl")
    ld(["run", "--model", m, "--tokens", PROMPT, "--decode", "3", "--probes", path, "--quiet"])
    return path


def records(path):
    with open(path) as f:
        lines = [json.loads(x) for x in f]
    return lines[0], [x for x in lines if x["record"] == "probe"]


def main():
    with tempfile.TemporaryDirectory() as tmp:
        m, m2 = os.path.join(tmp, "m"), os.path.join(tmp, "m2")
        ld(["gen-model", m, "--preset", "tiny", "--dtype", "bf16", "--seed", "5"])
        ld(["gen-model", m2, "--preset", "tiny", "--dtype", "bf16", "--seed", "6"])
        ref = os.path.join(tmp, "ref.jsonl")
        ld(["run", "--model", m, "--tokens", PROMPT, "--decode", "3", "--payload", "full",
            "--probes", ref, "--quiet"])
        base = ["run", "--model", m, "--tokens", PROMPT, "--payload", "full", "--quiet"]

        # Unfed, the fault's error flows into everything after it.
        c0 = os.path.join(tmp, "c0.jsonl")
        ld(base + ["--inject", "silu_as_gelu@2", "--follow", ref, "--probes", c0])
        assert len(failing(tmp, ref, c0)) > 8, "the unfed fault should spread downstream"
        # Fed the reference's L2.mlp_act, everything downstream recovers exactly.
        c1 = os.path.join(tmp, "c1.jsonl")
        ld(base + ["--inject", "silu_as_gelu@2", "--feed", ref, "--feed-tags", "mlp_act",
                   "--feed-layers", "2", "--probes", c1])
        want = [f"S{s}.L2.mlp_act" for s in range(4)]
        got = failing(tmp, ref, c1, fed=want)
        assert got == want, f"fed mlp_act: failing {got}, want {want}"
        header, probes = records(c1)
        assert header["feed"] == {"path": ref, "tags": "mlp_act", "layers": "2", "steps": "*"}, \
            header["feed"]
        fed = sorted(f"S{p['step']}.L{p['layer']}.{p['tag']}" for p in probes if p.get("fed"))
        assert fed == want, f"fed records {fed}, want {want}"
        # Everything fed into an emulated-bf16 candidate: only the faulty op fails.
        c2 = os.path.join(tmp, "c2.jsonl")
        ld(base + ["--emulate", "bf16", "--inject", "silu_as_gelu@2", "--feed", ref,
                   "--probes", c2])
        got = failing(tmp, ref, c2)
        assert got == want, f"all fed, bf16: failing {got}, want {want}"
        assert all(p.get("fed") for p in records(c2)[1])

        # isolate: the op wrong on exact inputs, the rest recovering once its output is fed.
        p = ld(["isolate", ref, "--model", m, "--emulate", "bf16", "--inject", "silu_as_gelu@2"],
               1)
        assert "conclusion: S0.L2.mlp_act (SiLU(gate)*up) is wrong itself" in p.stdout, p.stdout
        assert "feeding its output clears every later probe" in p.stdout, p.stdout
        p = ld(["isolate", ref, "--model", m, "--key", "S0.L3.down_proj", "--inject",
                "silu_as_gelu@2"], 1)
        assert "S0.L3.down_proj inherits its error" in p.stdout and \
            "the first op wrong on exact inputs is S0.L2.mlp_act" in p.stdout, p.stdout
        p = ld(["isolate", ref, "--model", m, "--emulate", "bf16"], 0)
        assert "No probe diverges" in p.stdout, p.stdout
        ld(["isolate", ref, "--model", m2], 2, "are not the ones the reference stream")
        ld(["isolate", stats_ref(tmp, m), "--model", m, "--inject", "silu_as_gelu@2"], 2,
           "holds no payload")
        ld(["isolate", ref, "--model", m, "--key", "S0.L9.q_norm"], 2, "holds no such probe")

        # Refusals.
        ld(["run", "--model", m2, "--tokens", PROMPT, "--feed", ref, "--quiet"], 2,
           "the feed is a stream of another model")
        ld(["run", "--model", m, "--tokens", "1,2,3", "--feed", ref, "--quiet"], 2,
           "--feed " + ref + ": that stream's prompt differs from --tokens")
        refq = os.path.join(tmp, "refq.jsonl")
        ld(["run", "--model", m, "--tokens", PROMPT, "--payload", "full", "--tags", "q_*",
            "--probes", refq, "--quiet"])
        ld(base + ["--feed", refq], 2, "the feed has no probe S0.embed")
        ld(base + ["--feed", stats_ref(tmp, m)], 2, "probe S0.embed holds no payload")
        cut = os.path.join(tmp, "cut.jsonl")
        with open(ref, "rb") as f, open(cut, "wb") as g:
            g.write(f.read()[:300000])
        cc = os.path.join(tmp, "cc.jsonl")
        ld(base + ["--feed", cut, "--follow", ref, "--probes", cc], 3, "stream truncated")
        with open(cc) as f:
            end = json.loads(f.read().splitlines()[-1])
        assert end["record"] == "end" and end["status"] == "error", end
        ld(["run", "--model", m, "--tokens", PROMPT, "--feed-tags", "x", "--quiet"], 2,
           "need --feed")
        ld(base + ["--feed", ref, "--feed-layers", "x"], 2, "--feed: layers: bad range")
    print("feed: ok")


if __name__ == "__main__":
    main()
