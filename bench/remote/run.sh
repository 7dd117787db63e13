#!/usr/bin/env bash
# fanout on a bucket against rclone, on a SeaweedFS server started here on loopback:
#   1. listing MANY objects: `fanout -n s3://bench/many/ -- true` against `rclone lsf -R`, in
#      alternating rounds, and the peak RSS of each at 10,000 and at MANY objects;
#   2. TRANSFORM objects of 4 KiB through `tr a-z A-Z` at -j J for each J in JOBS: fanout
#      (`{}` staged, `-o s3://…/{rel}` uploaded, a --summary record per object) against the
#      rclone glue (`rclone copy` down, `find | xargs -0 -P J` the transform, `rclone copy` up
#      with --transfers J).
# Every comparison is one alternating run (bench/alternate/run.sh): the table gives medians and
# the median of the per-round ratios to the first command (rclone). Writes bench/results/remote.md.
#
#   bash bench/remote/run.sh [FANOUT]     # FANOUT: default target/release/fanout (built)
#
# Environment: ROUNDS (default 7), MANY (100000; the first 10,000 are also listed alone, for
# memory), LIST_BYTES (their size, default 0: a loaded SeaweedFS takes them faster), TRANSFORM
# (1000), JOBS ("2 8"), FILL_THREADS (64), WORK (default a new directory under $TMPDIR, removed
# at the end; a WORK given is kept, and its server's objects are used again), RESULTS (default bench/results/remote.md). Needs hyperfine, GNU time (/usr/bin/time)
# and the servers of `bash .ci/servers.sh` (SeaweedFS, rclone, boto3), which it runs first.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
if [ -n "${1:-}" ]; then
  FANOUT="$(realpath "$1")"
else
  (cd "$root" && cargo build --release --locked --quiet)
  FANOUT="$root/target/release/fanout"
fi
ROUNDS="${ROUNDS:-7}"
MANY="${MANY:-100000}"
LIST_BYTES="${LIST_BYTES:-0}"
TRANSFORM="${TRANSFORM:-1000}"
JOBS="${JOBS:-2 8}"
FILL_THREADS="${FILL_THREADS:-64}"
RESULTS="${RESULTS:-$root/bench/results/remote.md}"
command -v hyperfine >/dev/null || { echo "bench/remote: hyperfine is required" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "bench/remote: GNU time (/usr/bin/time) is required" >&2; exit 1; }
servers="$(cd "$root" && bash .ci/servers.sh | tail -n 1)"
weed="$servers/bin/weed" rclone="$servers/bin/rclone" py="$servers/bin/python"

# --- SeaweedFS on free loopback ports (bench/remote/seaweed.sh) ---
. "$root/bench/remote/seaweed.sh"

# --- the bucket: MANY small objects to list, TRANSFORM CSVs of 4 KiB to transform ---
fill() { # PREFIX N BYTES: prints the seconds the upload took
  "$py" "$root/bench/remote/fill.py" "$endpoint" "$key" "$secret" bench "$1" "$2" "$3" "$FILL_THREADS" | tail -n 1
}
fill_many="$(fill many/ "$MANY" "$LIST_BYTES")"
secs() { [ "$1" = reused ] && echo "none (they were there)" || echo "$1 s"; }
say "uploading $MANY objects of $LIST_BYTES bytes took $(secs "$fill_many")"
fill_in="$(fill in/ "$TRANSFORM" 4096)"
say "uploading $TRANSFORM objects of 4 KiB took $(secs "$fill_in")"

# The listings: many/ (MANY objects) and many/p0/ (its first 10,000). Both list every object.
few="many/p0/"
count() { "$@" 2>/dev/null | wc -l; }
for prefix in "$few" many/; do
  want=$([ "$prefix" = "$few" ] && echo $((MANY < 10000 ? MANY : 10000)) || echo "$MANY")
  got_f="$(count "$FANOUT" -n "s3://bench/$prefix" -- true)"
  got_r="$(count "$rclone" lsf -R --files-only "sw:bench/$prefix")"
  [ "$got_f" = "$want" ] && [ "$got_r" = "$want" ] ||
    { say "listing $prefix: fanout $got_f lines, rclone $got_r, want $want"; exit 1; }
done

# --- 1. listing: time (alternating rounds) and peak RSS ---
say "listing $MANY objects, $ROUNDS rounds"
list_table="$(bash "$root/bench/alternate/run.sh" "$ROUNDS" \
  "rclone lsf -R" "$rclone lsf -R sw:bench/many/ >/dev/null" \
  "rclone lsf -R --fast-list" "$rclone lsf -R --fast-list sw:bench/many/ >/dev/null" \
  "fanout -n" "$FANOUT -n s3://bench/many/ -- true >/dev/null")"
echo "$list_table"
rss() { # COMMAND...: the median of 3 peak RSS, in MiB
  for _ in 1 2 3; do
    /usr/bin/time -f %M -o rss.out "$@" >/dev/null 2>&1
    tail -n 1 rss.out
  done | sort -n | sed -n 2p | awk '{printf "%.1f", $1 / 1024}'
}
rss_rows=""
for prefix in "$few" many/; do
  n=$([ "$prefix" = "$few" ] && echo $((MANY < 10000 ? MANY : 10000)) || echo "$MANY")
  rss_rows+="| $n | $(rss "$FANOUT" -n "s3://bench/$prefix" -- true) MiB"
  rss_rows+=" | $(rss "$rclone" lsf -R "sw:bench/$prefix") MiB"
  rss_rows+=" | $(rss "$rclone" lsf -R --fast-list "sw:bench/$prefix") MiB |"$'\n'
done
echo "$rss_rows"

# --- 2. TRANSFORM objects through `tr a-z A-Z` ---
# Each run writes under a prefix of its own (fanout's uploads are create-only; rclone would
# skip what is already there), named by a counter in the work directory.
cat >fanout-transform.sh <<EOF
#!/usr/bin/env bash
set -euo pipefail
j=\$1 n=\$((\$(cat "$work/counter" 2>/dev/null || echo 0) + 1)); echo \$n >"$work/counter"
exec "$FANOUT" -q --no-progress -j "\$j" --transfers "\$j" --summary "$work/summary-\$n.jsonl" \\
  -o "s3://bench/out-f\$n/{rel}" s3://bench/in/ -- sh -c 'tr a-z A-Z < {} > {out}'
EOF
cat >glue-transform.sh <<EOF
#!/usr/bin/env bash
set -euo pipefail
j=\$1 n=\$((\$(cat "$work/counter" 2>/dev/null || echo 0) + 1)); echo \$n >"$work/counter"
t="\$(mktemp -d "$work/glue.XXXXXX")"
trap 'rm -rf "\$t"' EXIT
"$rclone" copy --transfers "\$j" sw:bench/in "\$t/in"
(cd "\$t/in" && find . -type d -print0 | (mkdir -p ../out && cd ../out && xargs -0 mkdir -p) &&
  find . -type f -print0 | xargs -0 -P "\$j" -n 1 sh -c 'tr a-z A-Z < "\$1" > "../out/\$1"' sh)
"$rclone" copy --transfers "\$j" "\$t/out" "sw:bench/out-g\$n"
EOF
chmod +x fanout-transform.sh glue-transform.sh
# Both do the work: every object comes back upper-cased, and fanout writes a record per object.
check_transform() { # SCRIPT J LETTER
  "./$1" "$2"
  local n out
  n="$(cat counter)"
  out="$("$rclone" lsf -R --files-only "sw:bench/out-$3$n" | wc -l)"
  [ "$out" = "$TRANSFORM" ] || { say "$1 -j $2 wrote $out objects, want $TRANSFORM"; exit 1; }
  "$rclone" cat "sw:bench/out-$3$n/p0/d0/part-007.csv" | head -c 40 | grep -q '^7,NAME-000007,SOME' ||
    { say "$1 -j $2: the transform's output is wrong"; exit 1; }
  if [ "$3" = f ]; then
    out="$(grep -c '"status":"ok"' "summary-$n.jsonl" || true)"
    [ "$out" = "$TRANSFORM" ] || { say "fanout's journal has $out ok records, want $TRANSFORM"; exit 1; }
  fi
}
transform_tables=""
for j in $JOBS; do
  check_transform fanout-transform.sh "$j" f
  check_transform glue-transform.sh "$j" g
  say "$TRANSFORM objects through tr at -j $j, $ROUNDS rounds"
  t="$(bash "$root/bench/alternate/run.sh" "$ROUNDS" \
    "rclone glue -P $j" "$work/glue-transform.sh $j" \
    "fanout -j $j" "$work/fanout-transform.sh $j")"
  echo "$t"
  transform_tables+="**-j $j** (\`--transfers $j\` for fanout and for rclone):"$'\n\n'"$t"$'\n\n'
done

# fanout's phases, from the journal of the last fanout run: medians per object.
phases="$("$py" - "$work/summary-$(ls summary-*.jsonl | sed 's/[^0-9]//g' | sort -n | tail -n 1).jsonl" <<'PY'
import json, statistics, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
jobs = [r for r in recs if r.get("type") == "file"]
end = next((r for r in recs if r.get("type") == "summary"), {})
def med(k):
    v = [r[k] for r in jobs if isinstance(r.get(k), (int, float))]
    return f"{statistics.median(v):.0f} ms" if v else "–"
first = min(r["started_ms"] for r in jobs if r.get("started_ms") is not None)
print(f"{len(jobs)} records, wall {end.get('wall_ms', '?')} ms, first job started at {first} ms; "
      f"per object, median: download {med('down_ms')}, command {med('duration_ms')}, "
      f"upload {med('up_ms')}")
PY
)"
say "$phases"

# --- the results ---
{
  echo "# fanout on a bucket against rclone (bench/remote/run.sh)"
  echo
  echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "- machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), $(free -g | awk '/Mem:/ {print $2}') GiB, load average at the end $(cut -d' ' -f1-3 /proc/loadavg) (a shared machine)"
  echo "- $("$FANOUT" --version), $("$rclone" version | head -n 1), SeaweedFS $("$weed" version 2>/dev/null | head -n 1 | awk '{print $3}') (\`weed server\` on loopback, one process)"
  echo "- filling the bucket (boto3, $FILL_THREADS threads, one PUT each; \"reused\": a kept server's): $MANY objects of $LIST_BYTES bytes: $(secs "$fill_many"); $TRANSFORM of 4 KiB: $(secs "$fill_in")"
  echo "- $ROUNDS alternating rounds per table (bench/alternate/run.sh); ratios are medians of per-round ratios to the first row"
  echo
  echo "## 1. Listing $MANY objects (many/p0/ … many/p9/, each 10 prefixes of 1,000 keys)"
  echo
  echo "$list_table"
  echo
  echo "Peak RSS (GNU time %M, median of 3):"
  echo
  echo "| objects | fanout -n | rclone lsf -R | rclone lsf -R --fast-list |"
  echo "| ---: | ---: | ---: | ---: |"
  printf '%s' "$rss_rows"
  echo
  echo "## 2. $TRANSFORM objects of 4 KiB through \`tr a-z A-Z\`"
  echo
  echo "fanout: \`fanout -j J --transfers J --summary S -o 's3://bench/out/{rel}' s3://bench/in/ -- sh -c 'tr a-z A-Z < {} > {out}'\`."
  echo "rclone glue: \`rclone copy --transfers J\` down, \`find -print0 | xargs -0 -P J -n 1 sh -c 'tr …'\`, \`rclone copy --transfers J\` up."
  echo
  printf '%s' "$transform_tables"
  echo "fanout's journal (last run): $phases."
} >"$RESULTS"
say "wrote $RESULTS"
