#!/usr/bin/env bash
# Listing one flat prefix of FLAT objects (s3://bench/flat/part-000000.parquet …, no
# "directories") on a SeaweedFS server started here on loopback: `fanout -n` against
# `rclone lsf`, and against an older fanout when OLD is given (a build that lists a prefix in
# one sequence of pages, before the key-range listing), in alternating rounds. Writes
# bench/results/remote-flat.md.
#
#   bash bench/remote/flat.sh [FANOUT [OLD]]   # FANOUT: default target/release/fanout (built)
#
# Environment: ROUNDS (default 7), FLAT (30000), FILL_THREADS (64), WORK (kept; see
# seaweed.sh), RESULTS (default bench/results/remote-flat.md). Needs hyperfine and the servers
# of `bash .ci/servers.sh` (SeaweedFS, rclone, boto3), which it runs first.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
if [ -n "${1:-}" ]; then
  FANOUT="$(realpath "$1")"
else
  (cd "$root" && cargo build --release --locked --quiet)
  FANOUT="$root/target/release/fanout"
fi
OLD="${2:+$(realpath "$2")}"
ROUNDS="${ROUNDS:-7}"
FLAT="${FLAT:-30000}"
FILL_THREADS="${FILL_THREADS:-64}"
RESULTS="${RESULTS:-$root/bench/results/remote-flat.md}"
command -v hyperfine >/dev/null || { echo "bench/remote: hyperfine is required" >&2; exit 1; }
servers="$(cd "$root" && bash .ci/servers.sh | tail -n 1)"
weed="$servers/bin/weed" rclone="$servers/bin/rclone" py="$servers/bin/python"

. "$root/bench/remote/seaweed.sh"

filled="$(FILL_LAYOUT=flat "$py" "$root/bench/remote/fill.py" "$endpoint" "$key" "$secret" \
  bench flat/ "$FLAT" 0 "$FILL_THREADS" | tail -n 1)"
say "uploading $FLAT objects took ${filled} s"

# Every lister lists every key once.
for cmd in "$FANOUT" ${OLD:+"$OLD"}; do
  got="$("$cmd" -n s3://bench/flat/ -- true 2>/dev/null | sort -u | wc -l)"
  [ "$got" = "$FLAT" ] || { say "$cmd listed $got distinct keys, want $FLAT"; exit 1; }
done
got="$("$rclone" lsf sw:bench/flat/ | wc -l)"
[ "$got" = "$FLAT" ] || { say "rclone listed $got keys, want $FLAT"; exit 1; }

say "listing $FLAT objects in one prefix, $ROUNDS rounds"
rows=("rclone lsf" "$rclone lsf sw:bench/flat/ >/dev/null")
[ -z "$OLD" ] || rows+=("fanout -n (one sequence)" "$OLD -n s3://bench/flat/ -- true >/dev/null")
rows+=("fanout -n" "$FANOUT -n s3://bench/flat/ -- true >/dev/null")
table="$(bash "$root/bench/alternate/run.sh" "$ROUNDS" "${rows[@]}")"
echo "$table"
{
  echo "# Listing one flat prefix (bench/remote/flat.sh)"
  echo
  echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "- machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), $(free -g | awk '/Mem:/ {print $2}') GiB, load average at the end $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "- $("$FANOUT" --version), $("$rclone" version | head -n 1), SeaweedFS $("$weed" version 2>/dev/null | head -n 1 | awk '{print $3}') on loopback"
  echo "- $FLAT empty objects s3://bench/flat/part-000000.parquet … (1,000 keys a page: $((FLAT / 1000)) pages in one sequence); filled in $filled s"
  echo "- $ROUNDS alternating rounds (bench/alternate/run.sh); ratios are medians of per-round ratios to the first row"
  echo
  echo "$table"
} >"$RESULTS"
say "wrote $RESULTS"
