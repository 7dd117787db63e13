#!/usr/bin/env bash
# The screenshot in the README (docs/report.png): a run over the fixtures (fixtures/dataset and
# fixtures/broken, 9 parquet files) that checks each file's PAR1 magic while it holds memory in
# proportion to the file, three at a time; the broken files fail with a message on stderr.
# Then `fanout report` and headless Chromium's screenshot of the page.
#
# Usage: bash bench/report/screenshot.sh [FANOUT]   (default: target/debug/fanout, built)
# Needs chromium and python3.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
FANOUT="${1:-}"
if [[ -z "$FANOUT" ]]; then
    cargo build --quiet
    FANOUT="$ROOT/target/debug/fanout"
fi
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
# The page's header shows the command line and the directory: run `fanout` by name, in a copy
# of the fixtures, so that neither names where this checkout or its build lives.
mkdir -p "$WORK/bin" "$WORK/demo"
ln -s "$(realpath "$FANOUT")" "$WORK/bin/fanout"
cp -r fixtures "$WORK/demo/"
(
    cd "$WORK/demo"
    PATH="$WORK/bin:$PATH" fanout -s --summary run.jsonl -j 3 -e parquet fixtures -- \
        'python3 fixtures/bin/alloc.py size:3 0.3 {} &&
     head -c4 {} | grep -q PAR1 && tail -c4 {} | grep -q PAR1 ||
     { echo "not a parquet file: no PAR1 magic at both ends" >&2; exit 3; }' || true
    PATH="$WORK/bin:$PATH" fanout report run.jsonl
)
chromium --headless --no-sandbox --disable-gpu --no-first-run --hide-scrollbars \
    --user-data-dir="$WORK/profile" --window-size=1280,900 \
    --screenshot="$ROOT/docs/report.png" "file://$WORK/demo/run.html" 2>/dev/null
echo "wrote docs/report.png" >&2
