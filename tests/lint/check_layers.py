#!/usr/bin/env python3
"""check_layers.py SRC_DIR — holds the layout to docs/architecture.md: every #include of the product
folders points down the stack (common -> probes -> model -> reference | cuda | tokenizer -> compare
-> src), the two backends and the tokenizer never include each other, every quoted include resolves to exactly one header, and no
header includes itself back through a cycle. Prints each breach with file and line; exit 1 if any."""
import os
import re
import sys

# Bottom to top. A folder may include its own headers and those of folders with a lower rank;
# reference, cuda and tokenizer share a rank: siblings, none includes another.
RANK = {"common": 0, "probes": 1, "model": 2, "reference": 3, "cuda": 3, "tokenizer": 3,
        "compare": 4, "src": 5}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')


def folder(rel):
    return rel.split(os.sep)[0]


def main():
    src = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else ".")
    files = []
    for top in RANK:
        for dp, _, fs in os.walk(os.path.join(src, top)):
            files += [os.path.relpath(os.path.join(dp, f), src) for f in fs
                      if f.endswith((".c", ".h", ".cu", ".cuh"))]
    headers = [f for f in files if f.endswith((".h", ".cuh"))]
    problems, edges = [], {}
    for rel in sorted(files):
        with open(os.path.join(src, rel), errors="replace") as fh:
            for n, line in enumerate(fh, 1):
                m = INCLUDE.match(line)
                if not m or m.group(1) == "ld_version.h":  # generated at configure time
                    continue
                name = m.group(1)
                here = os.path.normpath(os.path.join(os.path.dirname(rel), name))
                found = [here] if here in headers else \
                    [h for h in headers if h == name or h.endswith(os.sep + name)]
                if len(found) != 1:
                    problems.append(f"{rel}:{n}: \"{name}\" resolves to {len(found)} headers "
                                    f"({', '.join(found) or 'none'}): give headers unique names")
                    continue
                target = found[0]
                edges.setdefault(rel, set()).add(target)
                a, b = folder(rel), folder(target)
                if a != b and RANK[b] >= RANK[a]:
                    problems.append(f"{rel}:{n}: includes {target}: {a}/ may include only folders "
                                    f"below it ({', '.join(k for k in RANK if RANK[k] < RANK[a])})")
    # A cycle among headers (a.h -> b.h -> a.h) makes the include order matter.
    state = {}

    def visit(h, path):
        state[h] = 1
        for t in sorted(edges.get(h, ())):
            if state.get(t) == 1:
                problems.append("include cycle: " + " -> ".join(path[path.index(t):] + [t])
                                if t in path else f"include cycle through {t}")
            elif t not in state:
                visit(t, path + [t])
        state[h] = 2

    for h in sorted(headers):
        if h not in state:
            visit(h, [h])
    for p in problems:
        print(p)
    print(f"check_layers: {len(files)} files, {sum(len(v) for v in edges.values())} includes, "
          f"{len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
