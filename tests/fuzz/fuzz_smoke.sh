#!/usr/bin/env bash
# A short libFuzzer run of one fuzz target, as a ctest: the probe record parser
# (tests/fuzz/fuzz_probe_reader.c) or the tokenizer (tests/fuzz/fuzz_tokenizer.c). Builds the target
# with clang whatever compiler the project uses, seeds the corpus (probe_reader: real writer output
# and the hostile samples in tests/data/probes/; tokenizer: gen-model's tokenizer.json and the
# texts of tests/data/tokenizer/corpus.json), and fuzzes for a few seconds.
# Exit 77 (skipped) when clang or its libFuzzer runtime is missing; 1 on any crash, leak or
# sanitizer report, leaving the reproducer in BUILD/fuzz-artifacts/.
#   usage: fuzz_smoke.sh probe_reader SRC_DIR BUILD_DIR LD_PROBE_SAMPLE [SECONDS]
#          fuzz_smoke.sh tokenizer    SRC_DIR BUILD_DIR LAYERDIFF       [SECONDS]
set -uo pipefail
target=$1 src=$2 build=$3 seeder=$4 seconds=${5:-10}
case $target in
  probe_reader)
    # Probe library sources only (probes/*.c; subfolders hold other code), without OpenMP.
    sources=("$src"/probes/*.c "$src"/common/*.c) libs=(-lz -lm) ;;
  tokenizer)
    sources=("$src"/tokenizer/*.c "$src"/model/json_pull.c "$src"/common/*.c)
    libs=(-lutf8proc -lonig -lpthread -lm) ;;
  *) echo "fuzz_smoke: unknown target '$target' (probe_reader or tokenizer)"; exit 2 ;;
esac

cc=""
for c in clang clang-18 clang-17 clang-16 clang-15 clang-14; do
  if command -v "$c" >/dev/null 2>&1; then cc=$c; break; fi
done
if [[ -z $cc ]]; then
  echo "fuzz_smoke: no clang found: skipped"
  exit 77
fi

work=$build/fuzz-smoke-$target
rm -rf "$work"
mkdir -p "$work/corpus" "$build/fuzz-artifacts"
exe=$work/fuzz_$target
if ! "$cc" -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined \
      -fno-sanitize-recover=undefined -Wno-unknown-pragmas \
      -I"$src/probes/include" -I"$src/probes" -I"$src/common" -I"$src/common/include" \
      -I"$src/tokenizer/include" -I"$src/tokenizer" -I"$src/model" -I"$build/generated" \
      "$src/tests/fuzz/fuzz_$target.c" "${sources[@]}" "${libs[@]}" -o "$exe" \
      2>"$work/build.log"; then
  if grep -q -e "libclang_rt.fuzzer" -e "fsanitize=fuzzer" "$work/build.log"; then
    echo "fuzz_smoke: $cc has no libFuzzer runtime: skipped"
    exit 77
  fi
  cat "$work/build.log"
  echo "fuzz_smoke: building the fuzz target failed"
  exit 1
fi

if [[ $target == probe_reader ]]; then
  "$seeder" "$work/corpus" || exit 1
  if compgen -G "$src/tests/data/probes/*.jsonl" >/dev/null; then
    cp "$src"/tests/data/probes/*.jsonl "$work/corpus/"
  fi
else
  # Seeds: byte 0 + a tokenizer.json (the loader), byte 1 + a text (the encoder, with the same
  # tokenizer.json as $LD_FUZZ_TOKENIZER).
  "$seeder" gen-model "$work/model" --preset small >/dev/null || exit 1
  export LD_FUZZ_TOKENIZER=$work/model/tokenizer.json
  { printf '\0'; cat "$LD_FUZZ_TOKENIZER"; } >"$work/corpus/tokenizer"
  python3 - "$src/tests/data/tokenizer/corpus.json" "$work/corpus" <<'PY' || exit 1
import json, sys
for i, text in enumerate(json.load(open(sys.argv[1]))):
    with open(f"{sys.argv[2]}/text{i:03d}", "wb") as f:
        f.write(b"\x01" + text.encode())
PY
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
