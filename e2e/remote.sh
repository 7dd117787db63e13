#!/usr/bin/env bash
# shellcheck disable=SC1083  # {url} {} {out} {rel.} are fanout placeholders, literal on purpose
# fanout's remote end-to-end case: real tools over a dataset in a bucket of a real S3 server
# (SeaweedFS, started here on free loopback ports), every result read back with pyarrow's S3
# file system (e2e/remote_check.py), never through fanout.
#
#   bash e2e/remote.sh            # or through e2e/run.sh (case r)
#
# 1. DuckDB (httpfs, from {url}) sorts a hive-partitioned parquet dataset in place (-i) by id;
#    then polars (from {url}) sorts it by id descending, in place again.
# 2. CSV -> parquet from s3://raw to s3://clean with -u: all, then 0 jobs, then after one
#    source object changes exactly 1.
#
# Tools: .ci/servers.sh's environment (weed, pyarrow, duckdb + duckdb-extension-httpfs, polars,
# boto3). Environment: E2E_FANOUT (the binary; default target/release/fanout, built),
# E2E_JOBS (default 2). Ends with `remote: N checks passed, M failed`; exit 1 when a check
# failed, 2 when the setup failed.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
say() { printf '%s\n' "$*"; }

servers="$(bash .ci/servers.sh | tail -n 1)" || { say "remote: .ci/servers.sh failed"; exit 2; }
PY="$servers/bin/python"
T="$root/e2e/transforms"
RC="$root/e2e/remote_check.py"
JOBS="${E2E_JOBS:-2}"
if [ -n "${E2E_FANOUT:-}" ]; then
  FANOUT="$E2E_FANOUT"
else
  cargo build --release --quiet || { say "remote: cargo build --release failed"; exit 2; }
  FANOUT="$root/target/release/fanout"
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/fanout-e2e-remote.XXXXXX")"
weed_pid=
cleanup() {
  if [ -n "$weed_pid" ]; then
    kill -KILL -- "-$weed_pid" 2>/dev/null || kill -KILL "$weed_pid" 2>/dev/null || true
    wait "$weed_pid" 2>/dev/null || true
    rm -f /tmp/seaweedfs-*-grpc-"$grpc_s3".sock /tmp/seaweedfs-*-grpc-"$grpc_m".sock \
      /tmp/seaweedfs-*-grpc-"$grpc_v".sock /tmp/seaweedfs-*-grpc-"$grpc_f".sock
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# --- SeaweedFS on free ports -----------------------------------------------------------------
read -r p1 grpc_m p3 grpc_v p5 grpc_f p7 grpc_s3 < <("$PY" - <<'PYEOF'
import socket
socks = [socket.socket() for _ in range(8)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])
PYEOF
)
key=fanout-e2e secret=fanout-e2e-secret
printf '{"identities":[{"name":"e2e","credentials":[{"accessKey":"%s","secretKey":"%s"}],"actions":["Admin","Read","List","Tagging","Write"]}]}' \
  "$key" "$secret" >"$work/s3.json"
mkdir -p "$work/weed"
setsid env TMPDIR="$work/weed" "$servers/bin/weed" server -ip=127.0.0.1 -ip.bind=127.0.0.1 -dir="$work/weed" \
  -master.port="$p1" -master.port.grpc="$grpc_m" -volume.port="$p3" -volume.port.grpc="$grpc_v" \
  -filer -filer.port="$p5" -filer.port.grpc="$grpc_f" -s3 -s3.port="$p7" -s3.port.grpc="$grpc_s3" \
  -s3.config="$work/s3.json" -s3.port.iceberg=0 -s3.port.lance=0 -master.telemetry=false \
  -volume.preStopSeconds=0 -master.volumeSizeLimitMB=64 -volume.max=0 \
  -filer.localSocket="$work/weed/filer.sock" -s3.localSocket="$work/weed/s3.sock" \
  >"$work/weed.log" 2>&1 &
weed_pid=$!
export AWS_ENDPOINT_URL="http://127.0.0.1:$p7" AWS_ALLOW_HTTP=true AWS_REGION=us-east-1 \
  AWS_ACCESS_KEY_ID="$key" AWS_SECRET_ACCESS_KEY="$secret" AWS_EC2_METADATA_DISABLED=true
unset AWS_PROFILE AWS_SESSION_TOKEN
export AWS_CONFIG_FILE="$work/no-aws-config" AWS_SHARED_CREDENTIALS_FILE="$work/no-aws-credentials"
if ! "$PY" "$root/tests/it/objtool.py" wait --pid "$weed_pid" --timeout 60 --write; then
  say "remote: SeaweedFS did not come up:"; tail -n 20 "$work/weed.log"; exit 2
fi
for b in lake raw clean; do "$PY" "$root/tests/it/objtool.py" mkbucket "$b"; done
say "remote: $("$FANOUT" --version), SeaweedFS at $AWS_ENDPOINT_URL, -j $JOBS"

# --- checks ----------------------------------------------------------------------------------
passed=0 failed=0 rc=0
check() {
  local what=$1
  shift
  if "$@" >"$work/check.log" 2>&1; then
    say "    ok   $what: $(tail -n 1 "$work/check.log")"
    passed=$((passed + 1))
  else
    say "    FAIL $what"
    sed 's/^/           /' "$work/check.log" | tail -n 20
    failed=$((failed + 1))
  fi
}
fan() { # NAME ARGS...: fanout with its journal in $work/NAME.jsonl; exit status in $rc
  local name=$1
  shift
  rc=0
  "$FANOUT" -j "$JOBS" --stage-dir "$work" --summary "$work/$name.jsonl" "$@" >"$work/$name.out" 2>"$work/$name.err" || rc=$?
  say "  $(grep -m1 -E '^fanout: [0-9]+ files?:' "$work/$name.err" || echo "fanout: (no end report)") [exit $rc]"
  [ "$rc" -eq 0 ] || sed 's/^/    | /' "$work/$name.err" | head -n 5
}
exit_is() { [ "$rc" -eq "$1" ] || { echo "exit status $rc, expected $1"; return 1; }; echo "exit $rc"; }
rcheck() { "$PY" "$RC" "$@"; }

# --- 1. DuckDB and polars sort a hive-partitioned parquet dataset in place --------------------
say "--- DuckDB and polars sort s3://lake/events/ in place"
"$PY" "$T/gen_dataset.py" "$work/events" --files 20 >/dev/null
rcheck put "$work/events" s3://lake/events/ >/dev/null
rcheck snapshot s3://lake/events/ "$work/events.snap.json" >/dev/null
fan duckdb -i -e parquet s3://lake/events/ -- "$PY" "$T/sort_url.py" duckdb {url} {out}
check "DuckDB: exit 0" exit_is 0
check "DuckDB: all 20 objects replaced" rcheck ran "$work/duckdb.jsonl" 20
check "DuckDB: sorted by id, same rows and schema (pyarrow S3)" rcheck sorted s3://lake/events/ "$work/events.snap.json" --by id
fan polars -i -e parquet s3://lake/events/ -- "$PY" "$T/sort_url.py" polars {url} {out} --descending
check "polars: exit 0" exit_is 0
check "polars: all 20 objects replaced" rcheck ran "$work/polars.jsonl" 20
check "polars: sorted by id descending, same rows and schema (pyarrow S3)" rcheck sorted s3://lake/events/ "$work/events.snap.json" --by id --descending

# --- 2. CSV -> parquet from s3://raw to s3://clean, -u ------------------------------------
say "--- CSV -> parquet, s3://raw -> s3://clean, -u"
"$PY" "$T/gen_csv.py" "$work/csv" --files 18 >/dev/null
rcheck put "$work/csv" s3://raw/ >/dev/null
rows=$("$PY" -c 'import csv, os, sys
n = 0
for d, _, fs in os.walk(sys.argv[1]):
    for f in fs:
        with open(os.path.join(d, f), newline="") as fh:
            n += sum(1 for _ in csv.reader(fh)) - 1
print(n)' "$work/csv")
convert=(-u -e csv -o 's3://clean/{rel.}.parquet' s3://raw/ -- "$PY" "$T/csv_to_parquet.py" duckdb {} {out})
fan csv1 "${convert[@]}"
check "first run: exit 0" exit_is 0
check "first run: all 18 converted" rcheck ran "$work/csv1.jsonl" 18
check "18 parquet objects with every row (pyarrow S3)" rcheck parquet s3://clean/ 18 "$rows"
fan csv2 "${convert[@]}"
check "second run: exit 0" exit_is 0
check "second run: 0 jobs" rcheck ran "$work/csv2.jsonl" 0
one=$(cd "$work/csv" && find . -name '*.csv' | sort | head -n 1 | cut -c3-)
printf '999999,"added, later",1.5\r\n' >>"$work/csv/$one"
"$PY" "$root/tests/it/objtool.py" put raw "$one" "$work/csv/$one" >/dev/null
fan csv3 "${convert[@]}"
check "after one source object changed: exit 0" exit_is 0
check "after one source object changed: exactly 1 job" rcheck ran "$work/csv3.jsonl" 1
check "  ... and the new row is in s3://clean (pyarrow S3)" rcheck parquet s3://clean/ 18 "$((rows + 1))"
fan csv4 "${convert[@]}"
check "then nothing again" rcheck ran "$work/csv4.jsonl" 0

say "remote: $passed checks passed, $failed failed"
[ "$failed" -eq 0 ]
