#!/usr/bin/env bash
# test_prompt_cli.sh — 'layerdiff run --prompt TEXT / --prompt-file F' on gen-model's checkpoint:
# the header records the text and its ids (valid under the schema), a text run equals the --tokens
# run of those ids, the token text on stderr, and each bad input refused with exit 2 and a message
# that names it: invalid UTF-8, no tokenizer.json, a tokenizer that is not byte-level BPE, a merge
# of an unknown token, an oversize tokenizer.json, an empty prompt, --tokens with --prompt. Needs
# LD_BIN and LD_SRC.
set -u
bin=${LD_BIN:?LD_BIN is not set}
py=${LD_PYTHON:-python3}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/ld-prompt-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# check NAME WANT_RC WANT_TEXT CMD...: tests/e2e/lib.sh
# shellcheck source=SCRIPTDIR/../lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

m=$tmp/m
"$bin" gen-model "$m" --preset tiny >/dev/null || { echo "FAIL gen-model"; exit 1; }
text=$'<|im_start|>user\nHello world! 2026 caf\u00e9<|im_end|>'
check help 0 "--prompt-file F" "$bin" run --help
check prompt 0 'run: prompt: 510 "<|im_start|>", 446 "user", 198 "\n"' \
    "$bin" run --model "$m" --prompt "$text" --decode 2 --probes "$tmp/p.jsonl"
# The header: the text as given and its ids (hand-checked against gen-model's vocabulary:
# <|im_start|> is 510, "user" 446, "\n" 198, "2" 17, "0" 15, "6" 21, <|im_end|> 511).
ids=$("$py" - "$tmp/p.jsonl" "$text" "${LD_SRC:?LD_SRC is not set}" <<'PY'
import json, sys, jsonschema
rec = json.loads(open(sys.argv[1]).readline())
schema = json.load(open(sys.argv[3] + "/schemas/probe.schema.json"))
jsonschema.Draft202012Validator(schema).validate(rec)
h = rec["input"]
assert h["text"] == sys.argv[2], h
t = h["tokens"]
assert t[:3] == [510, 446, 198] and t[-1] == 511 and t[11:15] == [17, 15, 17, 21], t
print(",".join(map(str, t)))
PY
) || { echo "FAIL header: $ids"; fails=$((fails + 1)); }
printf '%s' "$text" >"$tmp/prompt.txt"
a=$("$bin" run --model "$m" --prompt-file "$tmp/prompt.txt" --decode 2 --quiet)
b=$("$bin" run --model "$m" --tokens "$ids" --decode 2 --quiet)
if [ -n "$a" ] && [ "$a" == "$b" ]; then echo "ok   same-as-tokens: $a"
else echo "FAIL same-as-tokens: '$a' != '$b'"; fails=$((fails + 1)); fi
check tokens-text 0 "run: tokens: " "$bin" run --model "$m" --tokens 302,317 --decode 1
# A code point Unicode 14 had not assigned (CJK Extension H, Unicode 15): HF may split it
# otherwise (docs/tokenizer.md); said once, and not for text without one (nor with --quiet).
check unclassed-note 0 "run: note: the prompt holds U+31350, which Unicode 14 had not assigned" \
    "$bin" run --model "$m" --prompt $'ab \U00031350\U00031351 c' --decode 0
notes=$("$bin" run --model "$m" --prompt "$text" --decode 0 2>&1 >/dev/null); rc1=$?
notes+=$("$bin" run --model "$m" --prompt $'x\U00031350' --decode 0 --quiet 2>&1 >/dev/null)
rc2=$?
if [[ $rc1 -ne 0 || $rc2 -ne 0 ]] || grep -q "note: the prompt" <<<"$notes"; then
  echo "FAIL unclassed-note: exits $rc1 and $rc2 (want 0), or a note for text without such a"
  echo "    code point, or under --quiet: $notes"
  fails=$((fails + 1))
else echo "ok   no unclassed-note without one, nor under --quiet"; fi
check tokens-none 0 "run: tokens: -1 (no finite logit)" \
    "$bin" run --model "$m" --tokens 302,317 --inject nan=final_norm
check one-each 0 ", 1 prompt token + 1 decode step, " "$bin" run --model "$m" --tokens 302 --decode 1
"$bin" run --model "$m" --tokens 302 --quiet --probes "$tmp/one.jsonl" >/dev/null
check one-step 0 "Argmax tokens agree at the one step." "$bin" compare "$tmp/one.jsonl" "$tmp/one.jsonl"
# The text from standard input ('-'), a pipe and a process substitution: the same tokens.
c=$("$bin" run --model "$m" --prompt-file - --decode 2 --quiet <"$tmp/prompt.txt")
d=$(cat "$tmp/prompt.txt" | "$bin" run --model "$m" --prompt-file /dev/stdin --decode 2 --quiet)
e=$("$bin" run --model "$m" --prompt-file <(cat "$tmp/prompt.txt") --decode 2 --quiet)
if [ "$c" == "$b" ] && [ "$d" == "$b" ] && [ "$e" == "$b" ]; then echo "ok   stdin-pipe: $c"
else echo "FAIL stdin-pipe: '$c' '$d' '$e' != '$b'"; fails=$((fails + 1)); fi
check stdin-empty 2 "--prompt-file: the text gives no tokens" \
    "$bin" run --model "$m" --prompt-file - </dev/null
check stream-too-long 2 "--prompt-file: /dev/zero: more than 67108864 bytes" \
    "$bin" run --model "$m" --prompt-file /dev/zero

# Token text in the reports: every position of this prompt holds a token that needs escaping (an
# ESC, markup, a table bar, a backtick), so whichever element is worst, its text must come out
# escaped: nothing raw in Markdown or HTML, no ESC byte on the terminal.
evil=$(printf '<>|`\033%.0s' 1 2 3 4 5 6 7 8)
"$bin" run --model "$m" --prompt "$evil" --payload full --probes "$tmp/r.jsonl" \
    2>"$tmp/run.err" >/dev/null
if grep -q $'\033' "$tmp/run.err" || ! grep -qF '"\u{001B}"' "$tmp/run.err"; then
    echo "FAIL run-escaped: $(head -n 1 "$tmp/run.err")"; fails=$((fails + 1))
else echo "ok   run-escaped: $(head -c 90 "$tmp/run.err")"; fi
"$bin" run --model "$m" --prompt "$evil" --payload full --probes "$tmp/c.jsonl" --quiet \
    --emulate bf16 --inject qk_norm_block@2=16 >/dev/null
"$bin" compare "$tmp/r.jsonl" "$tmp/c.jsonl" --tokenizer "$m/tokenizer.json" --md "$tmp/r.md" \
    --html "$tmp/r.html" --json "$tmp/r.json" >"$tmp/r.txt" 2>&1
check compare-text 0 'Worst element: token ' \
    grep -o 'Worst element: token [0-9]* (position [0-9]*, "' "$tmp/r.txt"
for f in r.txt r.md r.html; do
    w=$(grep -o 'Worst element: token [0-9]* (position [0-9]*, \("\|&quot;\)[^)]*)' "$tmp/$f" |
        head -n 1)
    case $f in
    r.txt) bad=$'\033' ;;
    *) bad='[<>`]' ;;
    esac
    if [ -z "$w" ] || grep -q "$bad" <<<"$w" || grep -q $'\033' "$tmp/$f"; then
        echo "FAIL escaped-$f: '$w'"; fails=$((fails + 1))
    else echo "ok   escaped-$f: $w"; fi
done
"$bin" compare "$tmp/r.jsonl" "$tmp/c.jsonl" >"$tmp/plain.txt" 2>&1
check compare-no-tokenizer 0 'Worst element: token ' \
    grep -o 'Worst element: token [0-9]* (position [0-9]*)' "$tmp/plain.txt"
"$bin" compare "$tmp/r.jsonl" "$tmp/c.jsonl" --model "$m" >"$tmp/model.txt" 2>&1
check compare-model-dir 0 'Worst element: token ' \
    grep -o 'Worst element: token [0-9]* (position [0-9]*, "' "$tmp/model.txt"
check compare-bad-tokenizer 2 "nope.json" \
    "$bin" compare "$tmp/r.jsonl" "$tmp/c.jsonl" --tokenizer "$tmp/nope.json"

check invalid-utf8 2 "--prompt: invalid UTF-8 at byte offset 3 (0xff)" \
    "$bin" run --model "$m" --prompt $'abc\xff'
printf 'ok\xc3' >"$tmp/bad.txt"
check invalid-utf8-file 2 "--prompt-file: invalid UTF-8 at byte offset 2 (0xc3)" \
    "$bin" run --model "$m" --prompt-file "$tmp/bad.txt"
check empty 2 "--prompt: the text gives no tokens" "$bin" run --model "$m" --prompt ""
check both 2 "--tokens, --prompt and --prompt-file exclude each other" \
    "$bin" run --model "$m" --prompt x --tokens 1
check none 2 "missing the prompt" "$bin" run --model "$m"
check no-file 2 "$tmp/nope.txt" "$bin" run --model "$m" --prompt-file "$tmp/nope.txt"

mkdir -p "$tmp/n"
cp "$m/config.json" "$m/model.safetensors" "$tmp/n/"
check no-tokenizer 2 "has no tokenizer.json: --prompt needs the checkpoint's tokenizer" \
    "$bin" run --model "$tmp/n" --prompt hi
check no-tokenizer-ids 0 "" "$bin" run --model "$tmp/n" --tokens 1
sed 's/"type": "BPE"/"type": "WordPiece"/' "$m/tokenizer.json" >"$tmp/n/tokenizer.json"
check wordpiece 2 "model type WordPiece is not supported (only byte-level BPE)" \
    "$bin" run --model "$tmp/n" --prompt hi
check wordpiece-ids 0 "run: note: token text not shown: $tmp/n/tokenizer.json: line " \
    "$bin" run --model "$tmp/n" --tokens 1
sed 's/"merges": \[/"merges": [["zz", "q"], /' "$m/tokenizer.json" >"$tmp/n/tokenizer.json"
check unknown-merge 2 'merge 0 ("zz" "q") references the unknown token "zz"' \
    "$bin" run --model "$tmp/n" --prompt hi
rm "$tmp/n/tokenizer.json"
truncate -s $((64 * 1024 * 1024 + 1)) "$tmp/n/tokenizer.json"
check oversize 2 "tokenizer.json" "$bin" run --model "$tmp/n" --prompt hi
check oversize-size 2 "67108865" "$bin" run --model "$tmp/n" --prompt hi

# calibrate takes the prompt as run does (one reader of a command's prompt).
check calibrate-prompt 0 "calibrate: 71 keys" \
    "$bin" calibrate --model "$m" --prompt "Hello world" --dtype bf16 -o "$tmp/floor.json" \
    --variants 2
check calibrate-prompt-ids 0 '[302, 317' "$py" -c \
    'import json, sys; print(json.load(open(sys.argv[1]))["input"]["tokens"])' "$tmp/floor.json"
check calibrate-empty 2 "--prompt: the text gives no tokens" \
    "$bin" calibrate --model "$m" --prompt "" --dtype bf16 -o "$tmp/floor2.json"
check calibrate-both 2 "--tokens, --prompt and --prompt-file exclude each other" \
    "$bin" calibrate --model "$m" --prompt x --tokens 1 --dtype bf16 -o "$tmp/floor2.json"
check calibrate-none 2 "needs --model, the prompt" \
    "$bin" calibrate --model "$m" --dtype bf16 -o "$tmp/floor2.json"

# The JSON report names the argmax tokens by text with a tokenizer (escaped: ESC never raw), and
# not without one.
check json-token-text 0 "ok" "$py" - "$tmp/r.json" "$tmp/plain.json" "$bin" "$tmp" <<'PY'
import json, subprocess, sys
r, plain, b, t = sys.argv[1:]
subprocess.run([b, "compare", t + "/r.jsonl", t + "/c.jsonl", "--json", plain],
               capture_output=True)
steps = json.load(open(r))["argmax"]["steps"]
s0 = steps[0]
assert isinstance(s0["reference_text"], str) and "\x1b" not in s0["reference_text"], s0
assert all("reference_text" not in s for s in json.load(open(plain))["argmax"]["steps"])
print("ok", s0["reference"], s0["reference_text"])
PY

if [ "$fails" -ne 0 ]; then echo "$fails failures"; exit 1; fi
echo "all ok"
