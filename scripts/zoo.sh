#!/usr/bin/env bash
# make zoo: the fault-zoo localization table (every fault x 2 configs x f32/bf16 candidates, plus
# honest candidates), expected vs found first divergence. Exit 1 on any miss or false positive.
set -euo pipefail
build=${1:-build}
python=$(grep -E '^LD_PYTHON:' "$build/CMakeCache.txt" | cut -d= -f2)
LD_BIN="$(cd "$build" && pwd)/src/cli/layerdiff" "${python:-python3}" "$(dirname "$0")/../tests/e2e/zoo/zoo.py" "${@:2}"
