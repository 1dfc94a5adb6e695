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
