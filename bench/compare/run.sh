#!/usr/bin/env bash
# Before/after: two fanout binaries on the same workloads, in one hyperfine run each, so a
# change to how a run goes can be checked for slowdowns. Writes bench/results/compare.md.
#
#   bash bench/compare/run.sh OLD [NEW]     (NEW defaults to a fresh target/release/fanout)
#
# Workloads: 5,000 x `true` at -j 2 (the per-job cost), a 100,000-file tree walked with
# `echo` over its 10,000 *.parquet at -j 2, and the dry run of that walk (discovery alone).
# Environment: COMPARE_RUNS=N (default 5).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
OLD="$(realpath "${1:?usage: bench/compare/run.sh OLD [NEW]}")"
if [[ -n "${2:-}" ]]; then
    NEW="$(realpath "$2")"
else
    (cd "$ROOT" && cargo build --release --quiet)
    NEW="$ROOT/target/release/fanout"
fi
RUNS="${COMPARE_RUNS:-5}"
command -v hyperfine >/dev/null || { echo "error: hyperfine is required (apt-get install -y hyperfine)" >&2; exit 1; }

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/flat"
(cd "$WORK/flat" && seq 1 5000 | sed 's/^/f/' | xargs touch)
python3 - "$WORK/tree" <<'PY'
import os, sys
root = sys.argv[1]
for d in range(1000):
    p = os.path.join(root, f"d{d:04}")
    os.makedirs(p)
    for f in range(100):
        ext = "parquet" if f % 10 == 0 else "txt"
        open(os.path.join(p, f"f{f:03}.{ext}"), "w").close()
PY

OUT="$ROOT/bench/results/compare.md"
{
    echo "# Before / after: $(date -u +%Y-%m-%d)"
    echo
    echo "- machine: $(nproc) CPUs, $(free -g | awk '/Mem:/{print $2}') GiB, $(uname -r); load at start: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "- old: \`$OLD\` ($("$OLD" --version)), sha256 $(sha256sum "$OLD" | cut -c1-12)"
    echo "- new: \`$NEW\` ($("$NEW" --version)), sha256 $(sha256sum "$NEW" | cut -c1-12)"
    echo "- hyperfine, 1 warm-up, $RUNS runs; output to /dev/null"
    echo
} > "$OUT"
cd "$WORK"
run() {
    local name="$1"; shift
    hyperfine --warmup 1 --runs "$RUNS" --export-markdown "$WORK/$name.md" \
        -n old "$OLD $*" -n new "$NEW $*" >&2
    { echo "## $name: \`fanout $*\`"; echo; cat "$WORK/$name.md"; echo; } >> "$OUT"
}
run "5,000 jobs" -j 2 flat -- true
run "walk and echo" -j 2 -e parquet tree -- echo
run "dry run of the walk" -n -e parquet tree -- echo
echo "wrote $OUT" >&2
