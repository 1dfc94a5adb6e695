#!/usr/bin/env bash
# test_cli_help.sh — the help texts tell the truth. For every command: the long options of its
# parser (the 'struct option' table of src/cli/cmd_*.c) are exactly the options its --help lists,
# and a letter its help does not list as a short option is refused as unknown (a long option's
# code such as 'q' must not become an undocumented '-q'). 'layerdiff --help' names --version and
# 'help CMD', which work. 'run' takes LAYERDIFF_PROBE_* as defaults that its options override,
# also when LAYERDIFF_PROBES (not --probes) names the stream; a file as --model is one message.
# Needs LD_BIN and LD_SRC (ctest).
set -u
bin=${LD_BIN:?LD_BIN is not set}
src=${LD_SRC:?LD_SRC is not set}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/ld-cli-help-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# shellcheck source=SCRIPTDIR/../lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
check_timeout=20
check_lines=20
cd "$tmp" || exit 1

# ---- every command: the options of the parser = the options of --help ----
for cmd in gen-model run compare inspect extract isolate calibrate; do
    file=$src/src/cli/cmd_${cmd//-/_}.c
    [[ -f $file ]] || { echo "FAIL $cmd: no $file"; fails=$((fails + 1)); continue; }
    help=$("$bin" "$cmd" --help) || { echo "FAIL $cmd --help: nonzero exit"; fails=$((fails + 1)); }
    # The parser's long options: {"name", no_argument|required_argument|optional_argument, ...}.
    code_opts=$(grep -oE '\{"[a-z0-9-]+", *(no|required|optional)_argument' "$file" |
        sed -E 's/^\{"([^"]+)".*/--\1/' | sort -u)
    # The options --help lists: lines that start, indented, with '--name' or '-x, --name'.
    help_opts=$(grep -oE '^ +(-[a-zA-Z], )?--[a-z0-9-]+' <<<"$help" | grep -oE -- '--[a-z0-9-]+' |
        sort -u)
    if [[ -z $code_opts || $code_opts != "$help_opts" ]]; then
        echo "FAIL $cmd: the parser's options and --help's differ:"
        diff <(echo "$code_opts") <(echo "$help_opts") | sed 's/^/    /'
        fails=$((fails + 1))
    else
        echo "ok   $cmd: $(wc -l <<<"$code_opts") options, each listed by --help"
    fi
    # Short options: those --help lists ('-h, --help', '-o, --output F'); any other letter, such
    # as the code a long option returns ({"quiet", no_argument, NULL, 'q'}), is an unknown option
    # (exit 2), not a hidden alias.
    shorts=$(grep -oE '^ +-[a-zA-Z],' <<<"$help" | grep -oE '[a-zA-Z]' | tr -d '\n')
    codes=$(grep -oE "_argument, *NULL, *'[a-zA-Z]'" "$file" | grep -oE "'[a-zA-Z]'" | tr -d "'\n")
    bad=""
    for letter in $(grep -oE "[a-zA-Z]" <<<"${codes}xyzQ"); do # the codes, and letters none uses
        [[ $shorts == *"$letter"* ]] && continue
        out=$("$bin" "$cmd" "-$letter" x y 2>&1)
        rc=$?
        [[ $rc == 2 && $out == *"unknown option '-$letter'"* ]] || bad+="-$letter(exit $rc) "
    done
    if [[ -n $bad ]]; then
        echo "FAIL $cmd: short options --help does not list are accepted: $bad"
        fails=$((fails + 1))
    else
        echo "ok   $cmd: short options only -${shorts}"
    fi
done

# ---- layerdiff --help: what it names exists ----
check top-help-version 0 "'layerdiff --version'" "$bin" --help
check top-help-help 0 "'layerdiff help <command>'" "$bin" --help
check version 0 "layerdiff " "$bin" --version
if [[ $("$bin" help compare) != "$("$bin" compare --help)" ]]; then
    echo "FAIL help-compare: 'layerdiff help compare' is not 'layerdiff compare --help'"
    fails=$((fails + 1))
else
    echo "ok   help-compare"
fi

# ---- run: LAYERDIFF_PROBE_* are defaults, options win (run --help: "options win") ----
"$bin" gen-model m >/dev/null || { echo "FAIL: cannot set up"; exit 1; }
# keys FILE: the keys of FILE's probes and whether each carries data, one per line.
keys() { "$bin" inspect "$1" | awk '/^S[0-9]/ {print $1, $NF}'; }
# want_keys NAME RC FILE WANT WHAT: the run exited 0 and FILE holds exactly the keys WANT.
want_keys() {
  check_rc "$1" 0 "$2"
  local got
  got=$(keys "$3")
  if [[ $got != "$4" ]]; then
    echo "FAIL $1: $5 wrote:"
    head -5 <<<"$got" | sed 's/^/    /'
    fails=$((fails + 1))
  else
    echo "ok   $1: $5"
  fi
}
env LAYERDIFF_PROBES=e1.jsonl LAYERDIFF_PROBE_TAGS=logits LAYERDIFF_PROBE_PAYLOAD=stats \
    "$bin" run --model m --tokens 1,2 --tags embed --payload full --quiet >/dev/null
want_keys env-stream-options $? e1.jsonl "S0.embed base64" \
    "LAYERDIFF_PROBES with --tags embed --payload full (options win over LAYERDIFF_PROBE_*)"
env LAYERDIFF_PROBES=e2.jsonl LAYERDIFF_PROBE_TAGS=logits LAYERDIFF_PROBE_LAYERS=0 \
    "$bin" run --model m --tokens 1,2 --decode 1 --steps 1 --encoding zlib+base64 \
    --payload full --quiet >/dev/null
want_keys env-stream-defaults $? e2.jsonl "S1.logits zlib+base64" \
    "the variables and the options together (variables apply where no option is given)"
env LAYERDIFF_PROBE_TAGS=logits LAYERDIFF_PROBE_PAYLOAD=stats \
    "$bin" run --model m --tokens 1,2 --tags embed --payload full --probes p1.jsonl \
    --quiet >/dev/null
want_keys probes-options $? p1.jsonl "S0.embed base64" "--probes with --tags embed --payload full"
check env-bad-value 2 "LAYERDIFF_PROBE_PAYLOAD" \
    env LAYERDIFF_PROBES=e3.jsonl LAYERDIFF_PROBE_PAYLOAD=most "$bin" run --model m --tokens 1
check env-gz-named 2 "LAYERDIFF_PROBES" \
    env LAYERDIFF_PROBES=e4.jsonl.gz "$bin" run --model m --tokens 1 --tags embed

# ---- run --model FILE: one message naming the problem (no note about its tokenizer first) ----
out=$("$bin" run --model e1.jsonl --tokens 1 2>&1)
rc=$?
if [[ $rc != 2 || $out != "layerdiff run: e1.jsonl: not a directory"* ]]; then
    echo "FAIL run-model-file: exit $rc, output:"
    sed 's/^/    /' <<<"$out"
    fails=$((fails + 1))
else
    echo "ok   run-model-file: $out"
fi

[[ $fails == 0 ]] || { echo "$fails check(s) failed"; exit 1; }
echo "all checks passed"
