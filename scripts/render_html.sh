#!/usr/bin/env bash
# Renders a 'layerdiff compare --html' report to a PNG with headless Chromium, to check by eye
# that the self-contained page (inline CSS and SVG, no script, no network) draws as intended.
#   scripts/render_html.sh REPORT.html OUT.png [WIDTH [HEIGHT]]      (default 1400 x 2400)
# Needs Debian's chromium ('apt-get install chromium'); it is not a dependency of 'make test'.
# The browser runs with networking pointed nowhere, so a report that tried to fetch anything
# would render without it.
set -euo pipefail

if [[ $# -lt 2 || $# -gt 4 ]]; then
  echo "usage: $0 REPORT.html OUT.png [WIDTH [HEIGHT]]" >&2
  exit 2
fi
html=$1
png=$2
width=${3:-1400}
height=${4:-2400}
[[ -f $html ]] || { echo "$0: $html: no such file" >&2; exit 2; }

browser=""
for b in chromium chromium-browser google-chrome; do
  if command -v "$b" >/dev/null 2>&1; then
    browser=$b
    break
  fi
done
if [[ -z $browser ]]; then
  echo "$0: no chromium found; install it with: apt-get install chromium" >&2
  exit 2
fi

abs=$(cd "$(dirname "$html")" && pwd)/$(basename "$html")
out=$(cd "$(dirname "$png")" && pwd)/$(basename "$png")
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
# --no-sandbox: needed when running as root (CI containers); the page is our own file.
"$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars \
  --user-data-dir="$profile" --proxy-server="http://127.0.0.1:9" --proxy-bypass-list="<-loopback>" \
  --window-size="${width},${height}" --screenshot="$out" "file://$abs" >/dev/null 2>&1 || true
if [[ ! -s $out ]]; then
  echo "$0: $browser wrote no screenshot" >&2
  exit 1
fi
echo "$out"
