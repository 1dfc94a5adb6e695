#!/usr/bin/env bash
# make python-deps: the project-local virtual environment .venv-py with the layerdiff Python
# package and its torch + transformers extras from PyPI (for the py_torch test, the HF runner and
# the Python benchmark; transformers brings tokenizers, for the tokenizer tests), and dashscope's
# copy of Qwen's vocabulary (tok_hf_qwen, the tokenizer benchmark). Not the C build's
# dependencies (scripts/deps.sh).
# Cost, measured: about 5 minutes and 5.6 GB (the PyPI torch wheel brings CUDA libraries).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${LD_PYTHON_VENV:-.venv-py}
# Room first: pip fails halfway on a full disk ("[Errno 28] No space left on device"), leaving a
# broken environment and its unpacked wheels in $TMPDIR. Checked only while torch is missing (a
# complete environment costs nothing more); the venv's and pip's temporary directories count.
need_kb=$((7 * 1024 * 1024))
if ! { [[ -x $venv/bin/python ]] && "$venv/bin/python" -c "import torch, transformers" 2>/dev/null; }; then
  for dir in "$(dirname "$(realpath -m "$venv")")" "${TMPDIR:-/tmp}"; do
    free_kb=$(df -Pk "$dir" | awk 'NR == 2 { print $4 }')
    if [[ -z $free_kb || $free_kb -lt $need_kb ]]; then
      echo "python-deps: $dir has $((${free_kb:-0} / 1024)) MiB free; installing torch and" \
           "transformers into $venv needs about $((need_kb / 1024)) MiB there (measured: 5.6 GB" \
           "installed, plus the unpacked wheels). Free some space, or set LD_PYTHON_VENV (and" \
           "TMPDIR) to a roomier filesystem." >&2
      exit 1
    fi
  done
fi
if [[ ! -x $venv/bin/python ]]; then
  /usr/bin/python3 -m venv "$venv"
fi
# pip skips what is installed already; the package itself is reinstalled (small, never stale)
"$venv/bin/pip" install --quiet "./python[hf]"
# Qwen's real vocabulary for the tokenizer tests and benchmark (qwen.tiktoken, Apache-2.0): only
# that file is read, so the package goes in without its (server-side) dependencies
"$venv/bin/pip" install --quiet --no-deps "dashscope==2.0.2"
"$venv/bin/python" -c "import torch, transformers; print('python-deps: torch', torch.__version__, \
'transformers', transformers.__version__)"
