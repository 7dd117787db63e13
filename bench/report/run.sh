#!/usr/bin/env bash
# `fanout report` on a large run: makes a real journal of N jobs (default 100,000: `test -s`
# over N files, 1 in 100 empty so that it fails), then measures the report's size, how long
# `fanout report` takes (hyperfine), and how long headless Chromium takes to load and draw the
# page: the page's own clock (data-render-ms: navigation start to drawn, read with --dump-dom)
# and the whole `chromium --headless --screenshot` process against an empty page's (hyperfine,
# browser start included). (--dump-dom itself is not timed: serialising the page's 10 MB data
# block back out takes seconds and says nothing about the page.)
#
# Usage: bash bench/report/run.sh [FANOUT]
#   FANOUT  the binary (default: `cargo build --release`, target/release/fanout)
# Environment:
#   REPORT_JOBS=N   jobs in the run (default 100000)
#   REPORT_RUNS=N   hyperfine runs (default 5)
#   REPORT_KEEP=DIR keep the journal and the page in DIR
#   TMPDIR          where the inputs are made
# Needs hyperfine and chromium (apt-get install -y hyperfine chromium).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
JOBS="${REPORT_JOBS:-100000}"
RUNS="${REPORT_RUNS:-5}"
for t in hyperfine chromium python3; do
    command -v "$t" >/dev/null || { echo "error: $t is missing" >&2; exit 1; }
done
FANOUT="${1:-}"
if [[ -z "$FANOUT" ]]; then
    cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml"
    FANOUT="$ROOT/target/release/fanout"
fi

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
OUT="${REPORT_KEEP:-$WORK}"
mkdir -p "$OUT"

echo "==> $JOBS files" >&2
python3 - "$WORK/in" "$JOBS" <<'PY'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    d = os.path.join(root, f"d{i // 1000:03d}")
    if i % 1000 == 0:
        os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"part-{i:06d}.txt"), "w") as f:
        if i % 100 != 99:
            f.write("x")
PY

echo "==> the run (test -s over every file, 1 in 100 fails)" >&2
"$FANOUT" --summary "$OUT/run.jsonl" -q "$WORK/in" -- test -s {} || true

echo "==> fanout report" >&2
hyperfine --runs "$RUNS" --warmup 1 --export-markdown "$WORK/report.md" \
    "'$FANOUT' report '$OUT/run.jsonl' -o '$OUT/run.html'"

PROFILE="$WORK/profile"
load() {
    chromium --headless --no-sandbox --disable-gpu --no-first-run \
        --user-data-dir="$PROFILE" --dump-dom "file://$OUT/run.html" 2>/dev/null
}
echo "==> chromium --headless --screenshot (an empty page first: the browser's own start)" >&2
echo '<!doctype html><title>empty</title><body>' > "$WORK/empty.html"
shot() {
    echo "chromium --headless --no-sandbox --disable-gpu --no-first-run --user-data-dir='$PROFILE' --window-size=1280,900 --screenshot='$WORK/shot.png' 'file://$1' >/dev/null 2>&1"
}
hyperfine --runs "$RUNS" --warmup 1 --export-markdown "$WORK/chromium.md" \
    "$(shot "$WORK/empty.html")" "$(shot "$OUT/run.html")"
drawn=()
for _ in $(seq "$RUNS"); do
    dom="$(load)"
    grep -q 'data-rendered="1"' <<<"$dom" || { echo "error: the page did not render" >&2; exit 1; }
    if grep -q '<body[^>]*data-errors' <<<"$dom"; then echo "error: the page had script errors" >&2; exit 1; fi
    drawn+=("$(grep -o 'data-render-ms="[0-9]*"' <<<"$dom" | grep -o '[0-9]*')")
done

records=$(grep -c '"type":"file"' "$OUT/run.jsonl")
echo
echo "jobs in the journal:      $records"
echo "journal size:             $(du -h "$OUT/run.jsonl" | cut -f1)"
echo "report size:              $(du -h "$OUT/run.html" | cut -f1) ($(stat -c %s "$OUT/run.html") bytes)"
echo "page drawn after (ms):    ${drawn[*]}  (navigation start to drawn, the page's clock)"
echo
cat "$WORK/report.md"
echo
cat "$WORK/chromium.md"
