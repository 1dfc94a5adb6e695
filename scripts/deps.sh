#!/usr/bin/env bash
# Installs the Debian packages layerdiff needs, and only those that are missing.
# LD_BENCH_DEPS=1 adds what the benchmarks need (OpenBLAS, for the sgemm comparison);
# LD_PYTHON_DEPS=1 what make python-deps needs (python3-venv, to make .venv-py).
set -euo pipefail

pkgs=(cmake make gcc g++ pkg-config libcjson-dev zlib1g-dev libcmocka-dev libutf8proc-dev
      libonig-dev python3 python3-numpy python3-jsonschema)
if [[ "${LD_BENCH_DEPS:-0}" == 1 ]]; then
  pkgs+=(libopenblas-dev)
fi
if [[ "${LD_PYTHON_DEPS:-0}" == 1 ]]; then
  pkgs+=(python3-venv)
fi

missing=()
for p in "${pkgs[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "deps: all ${#pkgs[@]} packages present"
  exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
  echo "deps: missing Debian packages: ${missing[*]}" >&2
  echo "deps: not root, so cannot install them; run: sudo apt-get install ${missing[*]}" >&2
  exit 1
fi

echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
echo "deps: installed ${missing[*]}"
