#!/usr/bin/env bash
# A short libFuzzer run of the probe record parser (tests/fuzz/fuzz_probe_reader.c), as a ctest.
# Builds the target with clang whatever compiler the project uses, seeds the corpus with real
# writer output and the hostile samples in tests/data/probes/, and fuzzes for a few seconds.
# Exit 77 (skipped) when clang or its libFuzzer runtime is missing; 1 on any crash, leak or
# sanitizer report, leaving the reproducer in BUILD/fuzz-artifacts/.
#   usage: fuzz_smoke.sh SRC_DIR BUILD_DIR LD_PROBE_SAMPLE [SECONDS]
set -uo pipefail
src=$1 build=$2 sample=$3 seconds=${4:-10}

cc=""
for c in clang clang-18 clang-17 clang-16 clang-15 clang-14; do
  if command -v "$c" >/dev/null 2>&1; then cc=$c; break; fi
done
if [[ -z $cc ]]; then
  echo "fuzz_smoke: no clang found: skipped"
  exit 77
fi

work=$build/fuzz-smoke
rm -rf "$work"
mkdir -p "$work/corpus" "$build/fuzz-artifacts"
exe=$work/fuzz_probe_reader
# Probe library sources only (probes/*.c; subfolders hold other code), without OpenMP.
if ! "$cc" -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined \
      -fno-sanitize-recover=undefined -Wno-unknown-pragmas \
      -I"$src/probes/include" -I"$src/probes" -I"$src/common" -I"$src/common/include" -I"$build/generated" \
      "$src/tests/fuzz/fuzz_probe_reader.c" "$src"/probes/*.c "$src"/common/*.c \
      -lz -lm -o "$exe" 2>"$work/build.log"; then
  if grep -q -e "libclang_rt.fuzzer" -e "fsanitize=fuzzer" "$work/build.log"; then
    echo "fuzz_smoke: $cc has no libFuzzer runtime: skipped"
    exit 77
  fi
  cat "$work/build.log"
  echo "fuzz_smoke: building the fuzz target failed"
  exit 1
fi

"$sample" "$work/corpus" || exit 1
if compgen -G "$src/tests/data/probes/*.jsonl" >/dev/null; then
  cp "$src"/tests/data/probes/*.jsonl "$work/corpus/"
fi

echo "fuzz_smoke: $cc, ${seconds}s, corpus of $(ls "$work/corpus" | wc -l) files"
if ! "$exe" "$work/corpus" -max_total_time="$seconds" -max_len=65536 -timeout=10 \
      -rss_limit_mb=2048 -artifact_prefix="$build/fuzz-artifacts/" -print_final_stats=1 \
      >"$work/fuzz.log" 2>&1; then
  tail -n 60 "$work/fuzz.log"
  echo "fuzz_smoke: the fuzzer found a problem; reproducer(s) in $build/fuzz-artifacts/"
  exit 1
fi
grep -E "stat::number_of_executed_units|stat::peak_rss_mb" "$work/fuzz.log"
echo "fuzz_smoke: no crash"
exit 0
