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
the reference appear. A probe whose ratio is NaN (an error is NaN) is counted apart; where only
the candidate's error is NaN the gate calls it regressed, and so does this. Exit 0 when the
median is at most M (default 1) and no probe regressed that way or has more NaN/Inf
disagreements than in the baseline; 1 otherwise, or when no probe has a ratio (a judge that
cannot judge fails); 2 on bad usage or a file that is not such a report, naming it.
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
    """[(key, ratio, status, more NaN/Inf disagreements than the baseline)] of the judged probes
    (ratio NaN where an error is NaN: no ratio), and the number of unjudged ones."""
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
        grew = number(p.get("new_nonfinite"), what + ".new_nonfinite") > \
            number(p.get("old_nonfinite"), what + ".old_nonfinite")
        judged.append((p["key"], r, status, grew))
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
    rated = [j for j in judged if not math.isnan(j[1])]
    unrated = len(judged) - len(rated)
    if not rated:
        print(f"{a.label}: no probe with a ratio ({unrated} judged without one, {unjudged} "
              "unjudged): nothing to compare")
        return 1
    ratios = sorted(j[1] for j in rated)
    median, p90 = quantile(ratios, 0.5), quantile(ratios, 0.9)
    worst = max(rated, key=lambda j: j[1])
    over = sum(r > 1 for r in ratios)
    print(f"{a.label} rel_l2 over {len(rated)} probes: median {fmt(median)}, p90 {fmt(p90)}, "
          f"max {fmt(worst[1])} at {worst[0]}; over 1 at {over} "
          f"({100.0 * over / len(rated):.1f} %)" +
          (f"; {unrated} without a ratio (a NaN error)" if unrated else "") +
          (f"; {unjudged} unjudged" if unjudged else ""))
    # The gate's own verdicts that no ratio shows: NaN/Inf disagreements the baseline did not
    # have, and an error the candidate alone cannot measure (NaN rel_l2: regressed, no ratio).
    bad = {"more NaN/Inf disagreements than the baseline":
           [k for k, _, _, grew in judged if grew],
           "a NaN error where the baseline's is a number":
           [k for k, r, st, grew in judged if math.isnan(r) and st == "regressed" and not grew]}
    for what, keys in bad.items():
        if keys:
            print(f"  {what} at {len(keys)}: {', '.join(keys[:5])}"
                  f"{' ...' if len(keys) > 5 else ''}")
    if median > a.max_median:
        print(f"  the median is over {fmt(a.max_median)}")
    return 0 if median <= a.max_median and not any(bad.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
