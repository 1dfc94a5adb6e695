#!/usr/bin/env python3
"""ncu_digest.py — where the kernel time goes, from an Nsight Compute CSV log.

    python3 scripts/ncu_digest.py LOG [--steps N] [--top K]

LOG is what `ncu --csv --metrics gpu__time_duration.sum APP...` printed: one row per profiled
launch, in ncu's details layout ("Kernel Name", "Metric Name", "Metric Unit", "Metric Value") or
its raw layout (a "gpu__time_duration.sum" column and a row of units under the header). Lines
that are not ncu's CSV (its ==PROF== lines, the application's own output) are passed over.

Prints, per kernel (its name without the parameter list), the launches, the average and total
microseconds and the share of the total, the K largest first (default 12); then the total, and
with --steps N the total per step (for a log of N decode steps). Exit 0; 1 when LOG holds no
launch's duration (nothing was profiled, or it is not ncu's CSV) or a row this cannot read, naming
the file and the line; 2 on bad usage or a LOG that cannot be read. Standard library only: it runs
where scripts/gpu_check.sh does.
"""
import argparse
import csv
import sys

METRIC = "gpu__time_duration.sum"
TO_US = {"nsecond": 1e-3, "ns": 1e-3, "usecond": 1.0, "us": 1.0, "msecond": 1e3, "ms": 1e3,
         "second": 1e6, "s": 1e6}
NAME_WIDTH = 60


class Unreadable(Exception):
    pass


def short_name(name):
    """'void k<4, true>(const unsigned short *, int)' -> 'k<4, true>'."""
    name = name.strip()
    if name.startswith("void "):
        name = name[5:]
    if name.endswith(")"):
        depth = 0
        for i in range(len(name) - 1, -1, -1):
            depth += {")": 1, "(": -1}.get(name[i], 0)
            if depth == 0:
                name = name[:i].rstrip() or name
                break
    return name


def microseconds(value, unit, where):
    if unit not in TO_US:
        raise Unreadable(f"{where}: unit '{unit}' of {METRIC} is not a unit of time")
    try:
        v = float(value.replace(",", ""))
    except ValueError:
        raise Unreadable(f"{where}: '{value}' is not a number") from None
    if not v >= 0:
        raise Unreadable(f"{where}: duration '{value}' is negative or not a number")
    return v * TO_US[unit]


def launches(path, lines):
    """The (kernel, microseconds) of each launch in the log, in order."""
    header, raw_unit, out = None, None, []
    for n, line in enumerate(lines, 1):
        if not line.startswith('"'):
            continue
        row = next(csv.reader([line]))
        where = f"{path}:{n}"
        if row and row[0] == "ID":
            if "Kernel Name" not in row:
                raise Unreadable(f"{where}: a header without a 'Kernel Name' column")
            header, raw_unit = {c: i for i, c in enumerate(row)}, None
            continue
        if header is None:
            continue
        if len(row) != len(header):
            raise Unreadable(f"{where}: {len(row)} fields under a header of {len(header)}")
        kernel = row[header["Kernel Name"]]
        if METRIC in header:  # raw layout: the row under the header holds the units
            if raw_unit is None and not row[header["ID"]]:
                raw_unit = row[header[METRIC]]
                continue
            if raw_unit is None:
                raise Unreadable(f"{where}: a launch before the row of units")
            out.append((short_name(kernel), microseconds(row[header[METRIC]], raw_unit, where)))
        elif {"Metric Name", "Metric Unit", "Metric Value"} <= header.keys():
            if row[header["Metric Name"]] == METRIC:
                out.append((short_name(kernel), microseconds(row[header["Metric Value"]],
                                                             row[header["Metric Unit"]], where)))
        else:
            raise Unreadable(f"{where}: neither a '{METRIC}' column nor 'Metric Name', "
                             "'Metric Unit' and 'Metric Value'")
    return out


def digest(rows, steps, top):
    per = {}
    for k, us in rows:
        n, t = per.get(k, (0, 0.0))
        per[k] = (n + 1, t + us)
    total = sum(t for _, t in per.values())
    order = sorted(per.items(), key=lambda kv: (-kv[1][1], kv[0]))
    head = (f"kernel time: {len(rows)} launch{'es' if len(rows) != 1 else ''} of {len(per)} "
            f"kernel{'s' if len(per) != 1 else ''}, {total:.1f} us in all")
    if steps:
        head += (f", {total / steps:.1f} us per step ({steps} steps, {len(rows) / steps:g} "
                 "launches each)")
    cols = f"{'launches':>8} {'avg us':>8} {'total us':>9} {'share':>6}"
    out = [head, f"{'kernel':<{NAME_WIDTH}} {cols}"]
    for k, (n, t) in order[:top]:
        name = k if len(k) <= NAME_WIDTH else k[:NAME_WIDTH - 3] + "..."
        share = 100 * t / total if total > 0 else 0.0
        out.append(f"{name:<{NAME_WIDTH}} {n:>8} {t / n:>8.2f} {t:>9.1f} {share:>5.1f}%")
    if len(order) > top:
        rest = order[top:]
        t = sum(v[1] for _, v in rest)
        out.append(f"... {len(rest)} more kernels, {sum(v[0] for _, v in rest)} launches, "
                   f"{t:.1f} us")
    return out


def main():
    ap = argparse.ArgumentParser(description="Per-kernel time from an Nsight Compute CSV log.")
    ap.add_argument("log")
    ap.add_argument("--steps", type=int, default=0, help="the log holds N steps: time per step")
    ap.add_argument("--top", type=int, default=12, help="kernels listed (default 12)")
    a = ap.parse_args()
    if a.steps < 0 or a.top < 1:
        ap.error("--steps must be >= 0 and --top >= 1")
    try:
        with open(a.log, encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError as e:
        print(f"ncu_digest: cannot read {a.log}: {e.strerror}", file=sys.stderr)
        return 2
    try:
        rows = launches(a.log, lines)
    except Unreadable as e:
        print(f"ncu_digest: {e}", file=sys.stderr)
        return 1
    if not rows:
        print(f"ncu_digest: {a.log} holds no launch's {METRIC} (nothing profiled, or not ncu's "
              "--csv output)", file=sys.stderr)
        return 1
    print("\n".join(digest(rows, a.steps, a.top)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
