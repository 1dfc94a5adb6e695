#!/usr/bin/env bash
# Installs the Debian packages layerdiff needs, and only those that are missing.
# LD_BENCH_DEPS=1 adds what the benchmarks need (OpenBLAS, for the sgemm comparison);
# LD_PYTHON_DEPS=1 what make python-deps needs (python3-venv, to make .venv-py).
# LD_AARCH64_DEPS=1 what make test-aarch64 needs: Debian's cross compiler, qemu-user and the arm64
# libraries through multiarch (adds the arm64 architecture to dpkg when it is missing).
set -euo pipefail

pkgs=(cmake make gcc g++ pkg-config libcjson-dev zlib1g-dev libcmocka-dev libutf8proc-dev
      libonig-dev python3 python3-numpy python3-jsonschema)
if [[ "${LD_BENCH_DEPS:-0}" == 1 ]]; then
  pkgs+=(libopenblas-dev)
fi
if [[ "${LD_PYTHON_DEPS:-0}" == 1 ]]; then
  pkgs+=(python3-venv)
fi
add_arm64=0
if [[ "${LD_AARCH64_DEPS:-0}" == 1 ]]; then
  pkgs+=(gcc-aarch64-linux-gnu qemu-user-static libcjson-dev:arm64 zlib1g-dev:arm64
         libcmocka-dev:arm64 libutf8proc-dev:arm64 libonig5:arm64)
  if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    add_arm64=1
  fi
fi

missing=()
for p in "${pkgs[@]}"; do
  # A package without an architecture means the native one or an 'all' one (an arm64 copy of a
  # -dev package does not count: some cannot be installed for two architectures at once).
  want="($(dpkg --print-architecture)|all)"
  [[ $p == *:* ]] && want=${p##*:}
  if ! dpkg-query -W -f='${Status} ${Architecture}\n' "${p%%:*}" 2>/dev/null |
    grep -Eq "^install ok installed $want\$"; then
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
if [[ $add_arm64 == 1 ]]; then
  echo "deps: dpkg --add-architecture arm64 (for the arm64 libraries of the aarch64 cross build)"
  dpkg --add-architecture arm64
fi
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
echo "deps: installed ${missing[*]}"
