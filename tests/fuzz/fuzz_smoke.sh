#!/usr/bin/env bash
# A short libFuzzer run of one fuzz target, as a ctest: the probe record parser
# (tests/fuzz/fuzz_probe_reader.c), the tokenizer (tests/fuzz/fuzz_tokenizer.c) or the other input
# files (tests/fuzz/fuzz_inputs.c: checkpoints, fault specs, compare's policy, map, baseline and
# floor files). Builds the target with clang whatever compiler the project uses, seeds the corpus
# (probe_reader: real writer output and the hostile samples in tests/data/probes/; tokenizer:
# gen-model's tokenizer.json and the texts of tests/data/tokenizer/corpus.json; inputs: gen-model's
# configs, a one-layer checkpoint, fault specs, the policy and map of tests/e2e/compare/, and a
# baseline and a floor written by layerdiff), and fuzzes for a few seconds.
# Exit 77 (skipped) when clang or its libFuzzer runtime is missing; 1 on any crash, leak or
# sanitizer report, leaving the reproducer in BUILD/fuzz-artifacts/.
#   usage: fuzz_smoke.sh probe_reader SRC_DIR BUILD_DIR LD_PROBE_SAMPLE [SECONDS]
#          fuzz_smoke.sh tokenizer    SRC_DIR BUILD_DIR LAYERDIFF       [SECONDS]
#          fuzz_smoke.sh inputs       SRC_DIR BUILD_DIR LAYERDIFF       [SECONDS]
set -uo pipefail
target=$1 src=$2 build=$3 seeder=$4 seconds=${5:-10}
case $target in
  probe_reader)
    # Probe library sources only (probes/*.c; subfolders hold other code), without OpenMP.
    sources=("$src"/probes/*.c "$src"/common/*.c) libs=(-lz -lm) ;;
  tokenizer)
    sources=("$src"/tokenizer/*.c "$src"/model/json_pull.c "$src"/common/*.c)
    libs=(-lutf8proc -lonig -lpthread -lm) ;;
  inputs)
    sources=("$src"/model/*.c "$src"/common/*.c "$src"/probes/*.c)
    for c in policy keymap baseline floor jsonfile compare_result emit metrics; do
      sources+=("$src/compare/$c.c")
    done
    libs=(-lcjson -lz -lm) ;;
  *) echo "fuzz_smoke: unknown target '$target' (probe_reader, tokenizer or inputs)"; exit 2 ;;
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
      -I"$src/tokenizer/include" -I"$src/tokenizer" -I"$src/model" -I"$src/compare" \
      -I"$src/reference" -I"$build/generated" \
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
elif [[ $target == inputs ]]; then
  # Seeds: the mode byte of fuzz_inputs.c, then the file.
  seed() { { printf "\\x$(printf %02x "$1")"; cat "$2"; } >"$work/corpus/$3"; }
  L=$seeder
  "$L" gen-model "$work/tiny" --preset tiny >/dev/null || exit 1
  "$L" gen-model "$work/small" --preset small --untied --dtype f32 >/dev/null || exit 1
  seed 0 "$work/tiny/config.json" config_tiny
  seed 0 "$work/small/config.json" config_small
  # Numbers with every digit significant, a null head_dim and rope_parameters: the round trip
  # must keep them.
  sed -e 's/"rms_norm_eps": [^,]*/"rms_norm_eps": 1.2345678901234567e-06/' \
      -e 's/"rope_theta": [^,]*/"rope_parameters": {"rope_type": "default", "rope_theta": 12345.678901}/' \
      -e 's/"head_dim": [^,]*/"head_dim": null/' "$work/tiny/config.json" >"$work/config_odd.json"
  seed 0 "$work/config_odd.json" config_odd
  python3 - "$work" <<'PY' || exit 1
import json, struct, sys
# A one-layer checkpoint small enough for a fuzz input: H 8, 2 / 1 heads, D 4, I 16, V 16.
w = sys.argv[1]
cfg = {"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "hidden_size": 8,
       "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1,
       "head_dim": 4, "intermediate_size": 16, "vocab_size": 16,
       "max_position_embeddings": 64, "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
       "tie_word_embeddings": True, "torch_dtype": "bfloat16"}
p = "model.layers.0."
shapes = {"model.embed_tokens.weight": [16, 8], "model.norm.weight": [8],
          p + "input_layernorm.weight": [8], p + "post_attention_layernorm.weight": [8],
          p + "self_attn.q_proj.weight": [8, 8], p + "self_attn.k_proj.weight": [4, 8],
          p + "self_attn.v_proj.weight": [4, 8], p + "self_attn.o_proj.weight": [8, 8],
          p + "self_attn.q_norm.weight": [4], p + "self_attn.k_norm.weight": [4],
          p + "mlp.gate_proj.weight": [16, 8], p + "mlp.up_proj.weight": [16, 8],
          p + "mlp.down_proj.weight": [8, 16]}
head, data = {"__metadata__": {"format": "pt"}}, b""
for name, shape in sorted(shapes.items()):
    n = 2
    for d in shape:
        n *= d
    head[name] = {"dtype": "BF16", "shape": shape, "data_offsets": [len(data), len(data) + n]}
    data += bytes((i * 7) % 251 for i in range(n))
h = json.dumps(head, separators=(",", ":")).encode()
h += b" " * (-len(h) % 8)
st = struct.pack("<Q", len(h)) + h + data
c = json.dumps(cfg).encode()
open(f"{w}/corpus/safetensors_micro", "wb").write(b"\x01" + st)
open(f"{w}/corpus/model_micro", "wb").write(b"\x05" + struct.pack("<I", len(c)) + c + st)
PY
  printf '\x02qk_norm_block@1=16\nrope_theta=10000\nnan=q_norm@2\nattn_scale=0.125@0' \
    >"$work/corpus/faults"
  printf '\x02softmax_bf16\nrmsnorm_eps=1e-3@3\nswap_gate_up@1\n' >"$work/corpus/faults2"
  seed 3 "$src/tests/e2e/compare/policy_good.json" policy
  seed 4 "$src/tests/e2e/compare/foreign_map.json" map
  "$L" run --model "$work/tiny" --tokens 1,2 --tags logits,q_norm --layers 0-1 --quiet \
    --probes "$work/r.jsonl" || exit 1
  "$L" run --model "$work/tiny" --tokens 1,2 --tags logits,q_norm --layers 0-1 --quiet \
    --emulate bf16 --probes "$work/c.jsonl" || exit 1
  "$L" compare "$work/r.jsonl" "$work/c.jsonl" --baseline "$work/base.json" --update-baseline \
    --quiet || exit 1
  seed 6 "$work/base.json" baseline
  "$L" calibrate --model "$work/tiny" --tokens 1,2 --dtype bf16 --variants 2 --quiet \
    -o "$work/floor.json" || exit 1
  seed 7 "$work/floor.json" floor
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
