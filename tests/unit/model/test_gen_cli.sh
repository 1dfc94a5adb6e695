#!/usr/bin/env bash
# test_gen_cli.sh — 'layerdiff gen-model' as a user types it: help, option errors (exit 2, one
# line), a generated checkpoint that reopens, byte-identical repeats, refusal to overwrite
# without --force. Needs LD_BIN (set by ctest).
set -u
bin=${LD_BIN:?LD_BIN is not set}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/ld-gen-cli-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# check NAME WANT_RC WANT_TEXT CMD...: tests/e2e/lib.sh
# shellcheck source=SCRIPTDIR/../../e2e/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../../e2e/lib.sh"

check help 0 "--shards N" "$bin" gen-model --help
check help-presets 0 "qwen3-0.6b" "$bin" gen-model --help
check missing-dir 2 "layerdiff gen-model: missing DIR" "$bin" gen-model
check unknown-option 2 "unknown option '--bogus'" "$bin" gen-model "$tmp/x" --bogus
check missing-value 2 "needs a value" "$bin" gen-model "$tmp/x" --preset
check bad-preset 2 "unknown preset 'huge' (presets: tiny, small, qwen3-0.6b)" "$bin" gen-model "$tmp/x" --preset huge
check bad-dtype 2 "--dtype 'f64': use bf16, f16 or f32" "$bin" gen-model "$tmp/x" --dtype f64
check bad-seed 2 "--seed '-1': not an integer" "$bin" gen-model "$tmp/x" --seed -1
check bad-shards 2 "--shards 'two': not an integer in [1, 99999]" "$bin" gen-model "$tmp/x" --shards two
check too-many-shards 2 "--shards 99: must be 1 to 46 for preset tiny" "$bin" gen-model "$tmp/x" --shards 99
check tied-untied 2 "--tied and --untied exclude each other" "$bin" gen-model "$tmp/x" --tied --untied
check two-dirs 2 "unexpected argument" "$bin" gen-model "$tmp/x" "$tmp/y"
check empty-dir 2 "an empty DIR" "$bin" gen-model ""
mkdir -p "$tmp/dd/tokenizer.json"
check force-dir-in-the-way 2 "dd/tokenizer.json is a directory where a checkpoint file goes" \
    "$bin" gen-model "$tmp/dd" --force

check gen-a 0 "preset small, f16, untied, seed 5, 2 files" "$bin" gen-model "$tmp/a" --preset small --dtype f16 --untied --seed 5 --shards 2
check gen-b 0 "fingerprint" "$bin" gen-model "$tmp/b" --preset small --dtype f16 --untied --seed 5 --shards 2
if ! diff -r "$tmp/a" "$tmp/b" >/dev/null; then
    echo "FAIL identical: two runs with the same arguments differ"
    fails=$((fails + 1))
else
    echo "ok   identical: two runs with the same arguments wrote the same bytes"
fi
check no-overwrite 2 "already holds a checkpoint" "$bin" gen-model "$tmp/a"
check force 0 "preset tiny, bf16, tied, seed 0, 1 file" "$bin" gen-model "$tmp/a" --force
if ls "$tmp/a" | grep -q "of-00002"; then
    echo "FAIL force: old shards left behind: $(ls "$tmp/a")"
    fails=$((fails + 1))
fi
# A --force run that dies halfway (killed by the file size limit while writing a shard) leaves the
# old checkpoint whole: the new one is written aside and moved into place only when complete.
cp -r "$tmp/a" "$tmp/a.orig"
{ (ulimit -f 64; exec "$bin" gen-model "$tmp/a" --preset small --force) >/dev/null; rc=$?; } 2>/dev/null
rm -rf "$tmp"/a/.gen-model-* # what the killed run had written aside
if [[ $rc == 0 ]] || ! diff -r "$tmp/a" "$tmp/a.orig" >/dev/null; then
    echo "FAIL force-killed: exit $rc, and the old checkpoint is no longer whole: $(ls "$tmp/a")"
    fails=$((fails + 1))
else
    echo "ok   force-killed: exit $rc, the old checkpoint is whole"
fi
# ... and one that fails on its own (the size limit as an error, the signal ignored) leaves no
# staging directory behind either.
(trap '' XFSZ; ulimit -f 64; exec "$bin" gen-model "$tmp/a" --preset small --force) >"$tmp/out" 2>&1
rc=$?
if [[ $rc != 2 ]] || ! diff -r "$tmp/a" "$tmp/a.orig" >/dev/null || ! grep -q "write failed" "$tmp/out"; then
    echo "FAIL force-failed: exit $rc (want 2, 'write failed'), or $tmp/a changed: $(ls -A "$tmp/a")"
    head -n 3 "$tmp/out"
    fails=$((fails + 1))
else
    echo "ok   force-failed: $(head -n 1 "$tmp/out")"
fi
echo "$fails failure(s)"
[ "$fails" = 0 ]
