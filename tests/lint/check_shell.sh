#!/usr/bin/env bash
# Every shell script under tests/ and scripts/ parses (bash -n), the ones that cannot run here (the
# CUDA ones without a GPU) included; with shellcheck installed, none has an error-level finding
# (sourced files followed, -x). usage: check_shell.sh SOURCE_DIR
set -uo pipefail
src=${1:?SOURCE_DIR}
fails=0
mapfile -t files < <(find "$src/tests" "$src/scripts" -name '*.sh' -type f | sort)
if [[ ${#files[@]} -lt 20 ]]; then
  echo "FAIL: only ${#files[@]} shell scripts under $src/tests and $src/scripts"
  exit 1
fi
for f in "${files[@]}"; do
  if ! bash -n "$f"; then
    echo "FAIL bash -n: ${f#"$src"/}"
    fails=$((fails + 1))
  fi
done
echo "bash -n: ${#files[@]} scripts"
if command -v shellcheck >/dev/null; then
  for f in "${files[@]}"; do
    if ! (cd "$(dirname "$f")" && shellcheck -x -S error "$(basename "$f")"); then
      echo "FAIL shellcheck: ${f#"$src"/}"
      fails=$((fails + 1))
    fi
  done
  echo "shellcheck -S error: ${#files[@]} scripts"
else
  echo "shellcheck is not installed: bash -n only"
fi
exit $((fails > 0))
