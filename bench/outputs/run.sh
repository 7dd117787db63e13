#!/usr/bin/env bash
# What -o costs: (1) the collision pre-pass (with -o the walk ends and every target is computed
# and checked before the first job starts), time and peak RSS at 100,000 and 1,000,000 inputs,
# against the same dry run without -o; (2) a run of the same small jobs with and without -o
# (the commit: fsync, rename, directory fsync), and a -u run where everything is up to date.
#
#   bash bench/outputs/run.sh [FANOUT]      # FANOUT: default target/release/fanout (built)
#
# Environment: SIZES ("100000 1000000"), FILES (jobs of part 2, default 2000), RUNS (hyperfine
# runs, default 5), WORK (default a new directory under $TMPDIR). Needs hyperfine and GNU time.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
if [ -n "${1:-}" ]; then
  FANOUT="$(realpath "$1")"
else
  (cd "$root" && cargo build --release --quiet)
  FANOUT="$root/target/release/fanout"
fi
SIZES="${SIZES:-100000 1000000}"
FILES="${FILES:-2000}"
RUNS="${RUNS:-5}"
work="${WORK:-$(mktemp -d "${TMPDIR:-/tmp}/fanout-bench-outputs.XXXXXX")}"
mkdir -p "$work"
cd "$work"
echo "bench/outputs: $("$FANOUT" --version) in $work"

# A tree of N empty files, 1000 per directory (made once per size), and its path list.
tree() {
  local n=$1
  [ -f "list-$n" ] && [ -f "t$n/d0000/part-000.csv" ] && return 0
  python3 - "$n" <<'PY'
import os, sys
n = int(sys.argv[1])
with open(f"list-{n}", "w") as out:
    for i in range(n):
        d = f"t{n}/d{i // 1000:04d}"
        if i % 1000 == 0:
            os.makedirs(d, exist_ok=True)
        p = f"{d}/part-{i % 1000:03d}.csv"
        open(p, "w").close()
        out.write(p + "\n")
PY
}

measure() { # LABEL ARGS...: wall time and peak RSS of one fanout run reading list-$n on stdin
  local label=$1
  shift
  /usr/bin/time -f "%e %U %S %M" -o time.out "$FANOUT" "$@" <"list-$n" >/dev/null 2>fanout.err || true
  read -r secs user sys kib < <(tail -n 1 time.out)
  printf '%-10s %-34s %8.2f s %8.2f s %9d MiB\n' "$n" "$label" "$secs" "$(echo "$user + $sys" | bc)" $((kib / 1024))
}

echo
echo "1) pre-pass: dry run over N paths from stdin (one run each; time and peak RSS)"
printf '%-10s %-34s %10s %10s %13s\n' inputs run wall CPU "peak RSS"
for n in $SIZES; do
  tree "$n"
  measure "without -o" -n -j 2 - -- true
  measure "-o 'out/{rel.}.parquet'" -n -j 2 - -o 'out/{rel.}.parquet' -- cp {} {out}
  measure "-o collision found (exit 2)" -n -j 2 - -o 'flat/{/}' -- cp {} {out}
done

echo
echo "2) $FILES jobs (cp of a small file), -j 2: plain, -o, and -u with everything up to date"
rm -rf src && mkdir -p src
for i in $(seq 0 $((FILES - 1))); do
  d="src/d$((i / 100))"
  [ -d "$d" ] || mkdir -p "$d"
  printf 'a,b\n%d,%d\n' "$i" "$i" >"$d/f$i.csv"
done
(cd src && find . -type d | sed 's|^|../plain/|' | xargs mkdir -p)
hyperfine --runs "$RUNS" --warmup 1 --export-json hyperfine.json \
  --prepare 'rm -rf o' \
  -n plain "$FANOUT -q -j 2 src -- cp {} plain/{rel}" \
  -n "with -o" "$FANOUT -q -j 2 src -o 'o/{rel}' -- cp {} {out}"
"$FANOUT" -q -j 2 src -o 'o/{rel}' -- cp {} {out}
hyperfine --runs "$RUNS" --warmup 1 \
  -n "update: all up to date"  "$FANOUT -q -j 2 -u src -o 'o/{rel}' -- cp {} {out}"
