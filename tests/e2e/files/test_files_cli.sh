#!/usr/bin/env bash
# test_files_cli.sh — what layerdiff does with hostile files around it (issue 15): an output that
# is an input or a checkpoint file (tokenizer.json too; isolate's --work streams) is refused
# before anything is written (exit 2, both paths named); a FIFO as config.json, index, shard or
# JSON input is refused at once, not waited on; a pipe given to 'compare --model' (read twice)
# is refused up front; a checkpoint truncated or rewritten during a run ends it with a message
# naming the file (exit 2) and the stream with an error end record naming the last key. Needs
# LD_BIN (set by ctest).
set -u
bin=${LD_BIN:?LD_BIN is not set}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/ld-files-cli-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# check NAME WANT_RC WANT_TEXT CMD...: tests/e2e/lib.sh; CMD is killed after 20 s, so that a hang
# fails instead of stalling CI.
# shellcheck source=SCRIPTDIR/../lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
check_timeout=20
check_lines=20
cd "$tmp" || exit 1
# intact NAME FILE COPY: FILE still has the bytes of COPY.
intact() {
    if ! cmp -s "$2" "$3"; then
        echo "FAIL $1: $2 was changed"
        fails=$((fails + 1))
    fi
}

"$bin" gen-model m >/dev/null && "$bin" gen-model ms --shards 2 >/dev/null &&
    "$bin" run --model m --tokens 1,2 --decode 1 --probes r.jsonl --payload full --quiet \
        >/dev/null || { echo "FAIL: cannot set up"; exit 1; }
cp -r m m.orig && cp -r ms ms.orig && cp r.jsonl r.orig && cp r.jsonl c.jsonl
"$bin" compare r.jsonl c.jsonl --json base.json --quiet || { echo "FAIL: setup compare"; exit 1; }
cp base.json base.orig
same="is the same file as the input"

# ---- outputs that are inputs ----
check run-probes-shard 2 "--probes: m/model.safetensors $same m/model.safetensors" \
    "$bin" run --model m --tokens 1,2 --probes m/model.safetensors --quiet
check run-probes-config 2 "--probes: m/config.json $same m/config.json" \
    "$bin" run --model m --tokens 1,2 --probes m/config.json --quiet
check run-probes-index 2 "$same ms/model.safetensors.index.json" \
    "$bin" run --model ms --tokens 1,2 --probes ms/model.safetensors.index.json --quiet
check run-probes-shard2 2 "$same ms/model-00002-of-00002.safetensors" \
    "$bin" run --model ms --tokens 1,2 --probes ms/model-00002-of-00002.safetensors --quiet
check run-probes-follow 2 "--probes: c.jsonl $same c.jsonl" \
    "$bin" run --model m --tokens 1,2 --follow c.jsonl --probes c.jsonl --quiet
ln -s m/model.safetensors link.safetensors
check run-env-symlink 2 "LAYERDIFF_PROBES: link.safetensors $same m/model.safetensors" \
    env LAYERDIFF_PROBES=link.safetensors "$bin" run --model m --tokens 1,2 --quiet
check compare-json-cand 2 "--json: c.jsonl $same c.jsonl" \
    "$bin" compare r.jsonl c.jsonl --json c.jsonl
check compare-html-ref 2 "--html: r.jsonl $same r.jsonl" \
    "$bin" compare r.jsonl c.jsonl --html r.jsonl
check compare-md-policy 2 "--md: base.json $same base.json" \
    "$bin" compare r.jsonl c.jsonl --baseline base.json --md base.json
check compare-update-baseline 2 "--update-baseline: r.jsonl $same r.jsonl" \
    "$bin" compare r.jsonl c.jsonl --baseline r.jsonl --update-baseline
check compare-junit-model 2 "--junit: m/config.json $same m/config.json" \
    "$bin" compare r.jsonl c.jsonl --model m --junit m/config.json
ln c.jsonl hard.json
check compare-json-hardlink 2 "--json: hard.json $same c.jsonl" \
    "$bin" compare r.jsonl c.jsonl --json hard.json
check compare-exact-md 2 "--md: c.jsonl $same c.jsonl" \
    "$bin" compare r.jsonl c.jsonl --exact --md c.jsonl
check extract-npy 2 "--npy: r.jsonl $same r.jsonl" \
    "$bin" extract r.jsonl S0.L0.q_proj --npy r.jsonl
# An output's temporary is always a new file (O_EXCL): a file already named like one (here the
# input itself, as OUT.tmp) is neither truncated nor followed, and the output is written.
ln r.jsonl x.npy.tmp
check extract-npy-tmp 0 "wrote x.npy" "$bin" extract r.jsonl S0.L0.q_proj --npy x.npy
intact extract-npy-tmp r.jsonl r.orig
rm x.npy.tmp x.npy
# ... also through a link: the output a symlink to t.json, the input named t.json.tmp.
echo old >t.json && ln -s t.json lt && cp c.jsonl t.json.tmp
check compare-json-link-tmp 0 "" "$bin" compare r.jsonl t.json.tmp --json lt --quiet
intact compare-json-link-tmp t.json.tmp c.jsonl
[[ -L lt && $(head -c 28 t.json) == '{"format":"layerdiff-report"' ]] || {
    echo "FAIL compare-json-link-tmp: lt was replaced or t.json does not hold the report"
    fails=$((fails + 1))
}
# ... and a link planted where a temporary used to go is not written through.
echo keep >k.txt && ln -s k.txt s.json.tmp
check compare-json-planted-link 0 "" "$bin" compare r.jsonl c.jsonl --json s.json --quiet
[[ $(cat k.txt) == keep && -s s.json ]] || {
    echo "FAIL compare-json-planted-link: k.txt was written through s.json.tmp, or no s.json"
    fails=$((fails + 1))
}
# Two reports of one run, one named like the other's old temporary: both are kept.
check compare-json-md-tmp-name 0 "" "$bin" compare r.jsonl c.jsonl --json R.tmp --md R --quiet
[[ $(head -c 1 R.tmp) == '{' && $(head -c 1 R) == '#' ]] || {
    echo "FAIL compare-json-md-tmp-name: one report was lost (R.tmp must hold JSON, R Markdown)"
    fails=$((fails + 1))
}
rm -f t.json lt t.json.tmp k.txt s.json.tmp s.json R.tmp R
# An output in a directory that does not exist is refused before the work (calibrate: minutes).
check calibrate-out-no-dir 2 "-o: nodir/f.json: the directory nodir does not exist" \
    "$bin" calibrate --model m --tokens 1,2 --dtype bf16 -o nodir/f.json --quiet
# The prompt's file is an input of run and calibrate.
printf 'ab' >p.txt && cp p.txt p.orig && ln p.txt p-hard.txt
check run-probes-prompt-file 2 "--probes: p-hard.txt $same p.txt" \
    "$bin" run --model m --prompt-file p.txt --probes p-hard.txt --quiet
check calibrate-out-prompt-file 2 "-o: ./p.txt $same p.txt" \
    "$bin" calibrate --model m --prompt-file p.txt --dtype bf16 -o ./p.txt --quiet
intact prompt-file p.txt p.orig
rm -f p-hard.txt
# Two reports on one file through a link whose target does not exist yet: refused, not one lost.
ln -s r2.json lr2
check compare-json-md-dangling-link 2 "--json and --md both name lr2" \
    "$bin" compare r.jsonl c.jsonl --json r2.json --md lr2 --quiet
[[ ! -e r2.json ]] || { echo "FAIL compare-json-md-dangling-link: r2.json written"; fails=$((fails + 1)); }
# ... and one report through such a link creates the link's target; the link stays.
check compare-json-dangling-link 0 "" "$bin" compare r.jsonl c.jsonl --json lr2 --quiet
[[ -L lr2 && $(head -c 1 r2.json) == '{' ]] || {
    echo "FAIL compare-json-dangling-link: lr2 was replaced, or r2.json does not hold the report"
    fails=$((fails + 1))
}
rm -f lr2 r2.json
check calibrate-out 2 "-o: m/model.safetensors $same m/model.safetensors" \
    "$bin" calibrate --model m --tokens 1,2 --dtype bf16 -o m/model.safetensors --quiet
# The checkpoint's tokenizer.json is an input too (prompts are encoded and tokens named by it),
# and so is compare's --tokenizer file.
check run-probes-tokenizer 2 "--probes: m/tokenizer.json $same m/tokenizer.json" \
    "$bin" run --model m --tokens 1,2 --probes m/tokenizer.json --quiet
check run-prompt-tokenizer 2 "--probes: ./m/tokenizer.json $same m/tokenizer.json" \
    "$bin" run --model m --prompt ab --probes ./m/tokenizer.json --quiet
check compare-json-model-tokenizer 2 "--json: m/tokenizer.json $same m/tokenizer.json" \
    "$bin" compare r.jsonl c.jsonl --model m --json m/tokenizer.json
check compare-md-tokenizer 2 "--md: m/tokenizer.json $same m/tokenizer.json" \
    "$bin" compare r.jsonl c.jsonl --tokenizer m/tokenizer.json --md m/tokenizer.json
check calibrate-out-tokenizer 2 "-o: m/tokenizer.json $same m/tokenizer.json" \
    "$bin" calibrate --model m --tokens 1,2 --dtype bf16 -o m/tokenizer.json --quiet
# isolate writes plain.jsonl, exact.jsonl and fed.jsonl into --work: the reference may be one of
# them (it was truncated, and isolate then found "no probe diverges", exit 0).
mkdir wk && cp r.jsonl wk/exact.jsonl && cp r.jsonl rk.jsonl && ln -s ../rk.jsonl wk/fed.jsonl
check isolate-work-ref 2 "--work: wk/exact.jsonl $same ./wk/exact.jsonl" \
    "$bin" isolate ./wk/exact.jsonl --model m --work wk --inject qk_norm_skip@1
intact isolate-work-ref wk/exact.jsonl r.orig
check isolate-work-symlink 2 "--work: wk/fed.jsonl $same rk.jsonl" \
    "$bin" isolate rk.jsonl --model m --work wk --inject qk_norm_skip@1
intact isolate-work-symlink rk.jsonl r.orig
[[ -e wk/plain.jsonl ]] && {
    echo "FAIL isolate-work-ref: a run was written"
    fails=$((fails + 1))
}
# What fails only after a run used to be found after the first one had replaced plain.jsonl: a
# --key that does not parse, a REF of another checkpoint; an empty --work put the streams in /.
mkdir wk2 && echo kept >wk2/plain.jsonl && "$bin" gen-model m2 --seed 2 >/dev/null
check isolate-bad-key 2 "--key: bad probe key 'zz!!'" \
    "$bin" isolate r.jsonl --model m --work wk2 --key 'zz!!' --inject qk_norm_skip@1
check isolate-absent-key 2 "--key S0.L99.mlp_act: r.jsonl holds no such probe" \
    "$bin" isolate r.jsonl --model m --work wk2 --key S0.L99.mlp_act --inject qk_norm_skip@1
check isolate-other-model 2 "are not the ones the reference stream r.jsonl ran" \
    "$bin" isolate r.jsonl --model m2 --work wk2 --inject qk_norm_skip@1
[[ $(cat wk2/plain.jsonl) == kept ]] || {
    echo "FAIL isolate-bad-key/absent-key/other-model: wk2/plain.jsonl was replaced by a run"
    fails=$((fails + 1))
}
check isolate-empty-work 2 "--work: an empty path" \
    "$bin" isolate r.jsonl --model m --work "" --inject qk_norm_skip@1
# Two reports naming one file (one would overwrite the other): refused before anything is written,
# also through another spelling of the path and with --exact.
check compare-two-reports 2 "--json and --md both name ./two.json: each report needs its own file" \
    "$bin" compare r.jsonl c.jsonl --json two.json --md ./two.json
check compare-two-reports-dir 2 "--html and --junit both name ../$(basename "$PWD")/two.x" \
    "$bin" compare r.jsonl c.jsonl --html two.x --junit "../$(basename "$PWD")/two.x"
check compare-exact-two-reports 2 "--json and --md both name two.json" \
    "$bin" compare r.jsonl c.jsonl --exact --json two.json --md two.json
if [[ -e two.json || -e two.x ]]; then
    echo "FAIL two-reports: a report was written"; fails=$((fails + 1))
fi
# --probes none: no probes at all, even with LAYERDIFF_PROBES set; ./none is a file of that name.
check run-probes-none 0 "0 probes" \
    env LAYERDIFF_PROBES=env.jsonl "$bin" run --model m --tokens 1,2 --probes none
if [[ -e none || -e env.jsonl ]]; then
    echo "FAIL run-probes-none: a file was written"; fails=$((fails + 1))
fi
check run-probes-dot-none 0 "-> ./none" "$bin" run --model m --tokens 1,2 --probes ./none
[[ -s none ]] || { echo "FAIL run-probes-dot-none: ./none is missing"; fails=$((fails + 1)); }
for f in config.json model.safetensors tokenizer.json; do intact "$f" "m/$f" "m.orig/$f"; done
for f in ms.orig/*; do intact "$f" "ms/${f#ms.orig/}" "$f"; done
intact r.jsonl r.jsonl r.orig
intact c.jsonl c.jsonl r.orig
intact base.json base.json base.orig
# Outputs that are new files, or other existing files, are written as before.
check extract-new 0 "wrote x.npy" "$bin" extract r.jsonl S0.L0.q_proj --npy x.npy
check compare-baseline-update 0 "baseline base.json updated" \
    "$bin" compare r.jsonl c.jsonl --baseline base.json --update-baseline --brief
# A directory or an empty name as the output: refused before the work, not at the end.
mkdir outdir
check compare-json-dir 2 "--json: outdir is a directory, not a file to write" \
    "$bin" compare r.jsonl c.jsonl --json outdir
check compare-html-empty 2 "--html: an empty path" "$bin" compare r.jsonl c.jsonl --html ''
check calibrate-out-dir 2 "-o: outdir is a directory" \
    "$bin" calibrate --model m --tokens 1,2 --dtype bf16 -o outdir --quiet
# An output that is a device or a link to one (/dev/stdout, >(jq .)) is written in place: the
# rename beside it used to replace the link (as root: /dev/stdout, /dev/null) by a regular file.
ln -s /proc/self/fd/1 so
out=$("$bin" compare r.jsonl c.jsonl --json so --quiet)
check_rc compare-json-stdout 0 $?
[[ -L so && $out == '{"format":"layerdiff-report"'* ]] || {
    echo "FAIL compare-json-stdout: so is no longer a link, or stdout lacks the report"
    fails=$((fails + 1))
}
ln -s /dev/null dn
check extract-npy-devnull 0 "wrote dn" "$bin" extract r.jsonl S0.L0.q_proj --npy dn
[[ -L dn ]] && ! compgen -G 'dn*.tmp' >/dev/null || {
    echo "FAIL extract-npy-devnull: dn was replaced"
    fails=$((fails + 1))
}
# --npy /dev/stdout: stdout holds the .npy and nothing else (the "wrote" line goes to stderr).
"$bin" extract r.jsonl S0.L0.q_proj --npy /dev/stdout 2>/dev/null >stdout.npy
check_rc extract-npy-stdout 0 $?
cmp -s stdout.npy x.npy && [[ -L /dev/stdout ]] || {
    echo "FAIL extract-npy-stdout: stdout is not the same bytes as x.npy, or /dev/stdout was replaced"
    fails=$((fails + 1))
}
# ... and '>>' appends: what the file held before stays, the .npy follows it.
printf 'kept\n' >app.npy
"$bin" extract r.jsonl S0.L0.q_proj --npy /dev/stdout 2>/dev/null >>app.npy
check_rc extract-npy-stdout-append 0 $?
{ printf 'kept\n'; cat x.npy; } | cmp -s - app.npy || {
    echo "FAIL extract-npy-stdout-append: app.npy is not the old line followed by x.npy"
    fails=$((fails + 1))
}
# An output that is a link to a regular file: the file is replaced, the link stays.
cp base.json base2.json
ln -s base2.json blink.json
check compare-baseline-link 0 "baseline blink.json updated" \
    "$bin" compare r.jsonl c.jsonl --baseline blink.json --update-baseline --brief
[[ -L blink.json && -s base2.json ]] && ! compgen -G '*.json.*.tmp' >/dev/null || {
    echo "FAIL compare-baseline-link: the link was replaced or a temporary was left"
    fails=$((fails + 1))
}

# ---- FIFOs in place of inputs: refused at once ----
cp -r m mf && rm mf/config.json && mkfifo mf/config.json
check fifo-config 2 "mf/config.json: not a regular file" "$bin" run --model mf --tokens 1,2
cp -r ms msf && rm msf/model.safetensors.index.json && mkfifo msf/model.safetensors.index.json
check fifo-index 2 "msf/model.safetensors.index.json: not a regular file" \
    "$bin" run --model msf --tokens 1,2
cp -r ms msf2 && rm msf2/model-00001-of-00002.safetensors &&
    mkfifo msf2/model-00001-of-00002.safetensors
check fifo-shard 2 "msf2/model-00001-of-00002.safetensors: not a regular file" \
    "$bin" run --model msf2 --tokens 1,2
cp -r m mf3 && rm mf3/model.safetensors && mkfifo mf3/model.safetensors
check fifo-single 2 "mf3/model.safetensors: not a regular file" "$bin" run --model mf3 --tokens 1,2
mkfifo fifo.json
check fifo-policy 2 "fifo.json: not a regular file" \
    "$bin" compare r.jsonl c.jsonl --policy fifo.json
check fifo-map 2 "fifo.json: not a regular file" "$bin" compare r.jsonl c.jsonl --map fifo.json
check fifo-floor 2 "fifo.json: not a regular file" "$bin" compare r.jsonl c.jsonl --floor fifo.json
check fifo-baseline 2 "fifo.json: not a regular file" \
    "$bin" compare r.jsonl c.jsonl --baseline fifo.json

# ---- compare --model reads the streams twice: pipes are refused up front ----
check model-pipe 2 "--model reads both streams a second time, and /dev/fd/" \
    bash -c "\"$bin\" compare <(cat r.jsonl) <(cat c.jsonl) --model m"
check model-pipe-cand 2 "write it to a file first" \
    bash -c "\"$bin\" compare r.jsonl <(cat c.jsonl) --model m"
check model-files 0 "verdict: PASS" "$bin" compare r.jsonl c.jsonl --model m
check pipe-no-model 0 "verdict: PASS" bash -c "\"$bin\" compare <(cat r.jsonl) <(cat c.jsonl)"

# ---- the checkpoint truncated or rewritten during a run ----
# change_during_run NAME DIR CHANGE...: runs DIR's model into a FIFO, reads 300 kB of the stream
# (the run then blocks on the full pipe, mid-way), runs CHANGE, reads the rest. Leaves the
# run's exit code in $tmp/NAME.rc, its stderr in $tmp/NAME.err, the stream in $tmp/NAME.jsonl.
change_during_run() {
    local name=$1 dir=$2
    shift 2
    rm -f "$name.fifo" && mkfifo "$name.fifo"
    timeout 120 bash -c '
        bin=$1 dir=$2 name=$3
        shift 3
        "$bin" run --model "$dir" --tokens 1,2,3 --decode 20 --payload full \
            --probes "$name.fifo" --quiet >/dev/null 2>"$name.err" &
        pid=$!
        exec 3<"$name.fifo"
        head -c 300000 <&3 >"$name.jsonl"
        "$@"
        cat <&3 >>"$name.jsonl"
        wait $pid
        echo $? >"$name.rc"' _ "$bin" "$dir" "$name" "$@"
}
# stream_ends NAME WANT...: the run exited 2, its stderr and the stream's error end record carry
# each WANT, and inspect reads the stream as ended in error (exit 3).
stream_ends() {
    local name=$1 rc
    shift
    rc=$(cat "$name.rc" 2>/dev/null)
    "$bin" inspect "$name.jsonl" >"$name.inspect" 2>&1
    local irc=$?
    local end
    end=$(tail -n 1 "$name.jsonl")
    local ok=1
    [ "$rc" = 2 ] && [ "$irc" = 3 ] && grep -qF '"status":"error"' <<<"$end" || ok=0
    for want in "$@"; do
        grep -qF -- "$want" "$name.err" && grep -qF -- "$want" <<<"$end" || ok=0
    done
    if [ "$ok" = 1 ]; then
        echo "ok   $name: $(cat "$name.err")"
    else
        echo "FAIL $name: run exit ${rc:-none} (want 2), inspect exit $irc (want 3); stderr:"
        sed 's/^/    /' "$name.err"
        echo "    end record: ${end:0:300}"
        echo "    (wanted in both: $*)"
        fails=$((fails + 1))
    fi
}
"$bin" gen-model big --preset small >/dev/null && "$bin" gen-model bigs --preset small --shards 2 \
    >/dev/null || { echo "FAIL: cannot generate the small checkpoints"; exit 1; }
cp -r big big.orig && cp -r bigs bigs.orig
change_during_run truncated big truncate -s 0 big/model.safetensors
stream_ends truncated "big/model.safetensors changed during the run (truncated?)"
grep -qF "ends with an error end record after S0." truncated.err ||
    { echo "FAIL truncated: stderr names no last key"; fails=$((fails + 1)); }
cp big.orig/model.safetensors big/
change_during_run truncated-shard bigs truncate -s 100000 bigs/model-00002-of-00002.safetensors
stream_ends truncated-shard "bigs/model-00002-of-00002.safetensors changed during the run"
cp bigs.orig/* bigs/
change_during_run rewritten big touch -d 2001-01-01 big/model.safetensors
stream_ends rewritten "big/model.safetensors changed during the run (rewritten in place)"
cp big.orig/model.safetensors big/
# Replacing the file by rename leaves the mapping, and so the run, intact.
change_during_run replaced big \
    bash -c 'cp big.orig/model.safetensors big/new && mv big/new big/model.safetensors'
if [ "$(cat replaced.rc)" != 0 ] || ! tail -n 1 replaced.jsonl | grep -qF '"status":"ok"'; then
    echo "FAIL replaced: exit $(cat replaced.rc), $(cat replaced.err)"
    fails=$((fails + 1))
else
    echo "ok   replaced: a run over a checkpoint replaced by rename ends ok"
fi

if [ "$fails" -ne 0 ]; then
    echo "$fails check(s) failed"
    exit 1
fi
echo "all checks passed"
