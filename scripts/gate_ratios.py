#!/usr/bin/env python3
"""gate_ratios.py — how a candidate's error compares with a baseline's, probe by probe, in a line.

    python3 scripts/gate_ratios.py REPORT.json [--label TEXT] [--max-median M]

REPORT.json is what `layerdiff compare REF CAND --baseline B.json --json REPORT.json` wrote: its
"baseline" object holds, per probe, the candidate's relative L2 error against the reference (new)
and the baseline candidate's (old). scripts/gpu_check.sh gives it the CUDA path's report against
transformers' bf16 as the baseline: a ratio under 1 is a probe where ours is closer to the fp32
reference than transformers'.

Prints, over the judged probes (those both sides compared), the median, the 90th percentile and
the largest of new/old (linear interpolation between order statistics, as numpy's default), where
the largest is, how many probes are over 1, and the probes where new NaN/Inf disagreements with
the reference appear. Exit 0 when the median is at most M (default 1) and no probe has more
NaN/Inf disagreements than in the baseline; 1 otherwise, or when no probe was judged (a judge
that cannot judge fails); 2 on bad usage or a file that is not such a report, naming it.
Standard library only: it runs where scripts/gpu_check.sh does.
"""
import argparse
import json
import math
import sys

NUMBERS = {"Infinity": math.inf, "-Infinity": -math.inf, "NaN": math.nan}


class Unreadable(Exception):
    pass


def number(v, what):
    if isinstance(v, str) and v in NUMBERS:
        return NUMBERS[v]
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise Unreadable(f"{what} is {v!r}, not a number")
    return float(v)


def quantile(sorted_values, q):
    """Linear interpolation between the order statistics around q·(n-1); an infinite neighbour
    makes the result infinite (never inf - inf)."""
    pos = q * (len(sorted_values) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    a, b = sorted_values[lo], sorted_values[hi]
    if pos == lo or a == b:
        return a
    if math.isinf(a) or math.isinf(b):
        return math.inf
    return a + (b - a) * (pos - lo)


def read(path):
    """[(key, ratio, more NaN/Inf disagreements than the baseline)] of the judged probes, and
    the number of unjudged ones."""
    try:
        with open(path, encoding="utf-8") as f:
            report = json.load(f)
    except OSError as e:
        raise Unreadable(f"cannot read it: {e.strerror}") from e
    except ValueError as e:
        raise Unreadable(f"not JSON: {e}") from e
    gate = report.get("baseline") if isinstance(report, dict) else None
    if not isinstance(gate, dict) or not isinstance(gate.get("probes"), list):
        raise Unreadable("no \"baseline\" object with \"probes\": not the --json report of a "
                         "compare run with --baseline")
    judged, unjudged = [], 0
    for i, p in enumerate(gate["probes"]):
        if not isinstance(p, dict) or not isinstance(p.get("key"), str):
            raise Unreadable(f"baseline.probes[{i}] is not a probe with a key")
        status = p.get("status")
        if status == "unjudged":
            unjudged += 1
            continue
        if status not in ("regressed", "improved", "within"):
            raise Unreadable(f"baseline.probes[{i}] ({p['key']}): status {status!r}")
        what = f"baseline.probes[{i}] ({p['key']})"
        r = number(p.get("ratio"), what + ".ratio")
        if math.isnan(r):
            raise Unreadable(f"{what}.ratio is NaN")
        grew = number(p.get("new_nonfinite"), what + ".new_nonfinite") > \
            number(p.get("old_nonfinite"), what + ".old_nonfinite")
        judged.append((p["key"], r, grew))
    return judged, unjudged


def fmt(x):
    return "inf" if math.isinf(x) else f"{x:.3g}"


def main(argv=None):
    ap = argparse.ArgumentParser(prog="gate_ratios.py", description=__doc__.splitlines()[0])
    ap.add_argument("report", metavar="REPORT.json")
    ap.add_argument("--label", default="new/old", help="what the ratio is (default new/old)")
    ap.add_argument("--max-median", type=float, default=1.0, metavar="M",
                    help="the largest median that passes (default 1)")
    a = ap.parse_args(argv)
    if not a.max_median > 0:
        ap.error("--max-median must be a positive number")
    try:
        judged, unjudged = read(a.report)
    except Unreadable as e:
        print(f"gate_ratios.py: {a.report}: {e}", file=sys.stderr)
        return 2
    if not judged:
        print(f"{a.label}: no probe judged ({unjudged} unjudged): nothing to compare")
        return 1
    ratios = sorted(r for _, r, _ in judged)
    median, p90 = quantile(ratios, 0.5), quantile(ratios, 0.9)
    worst = max(judged, key=lambda j: j[1])
    over = sum(r > 1 for r in ratios)
    grew = [k for k, _, g in judged if g]
    print(f"{a.label} rel_l2 over {len(judged)} probes: median {fmt(median)}, p90 {fmt(p90)}, "
          f"max {fmt(worst[1])} at {worst[0]}; over 1 at {over} "
          f"({100.0 * over / len(judged):.1f} %)" +
          (f"; {unjudged} unjudged" if unjudged else ""))
    if grew:
        print(f"  more NaN/Inf disagreements than the baseline at {len(grew)}: "
              f"{', '.join(grew[:5])}{' ...' if len(grew) > 5 else ''}")
    if median > a.max_median:
        print(f"  the median is over {fmt(a.max_median)}")
    return 0 if median <= a.max_median and not grew else 1


if __name__ == "__main__":
    sys.exit(main())
