# Sourced by bench/remote/run.sh and flat.sh: makes the work directory (WORK, kept; else a
# new one under $TMPDIR, removed at the end) and cds into it, then starts SeaweedFS on free
# loopback ports there (its data in $work/data) with one identity, exports the AWS_* variables
# fanout reads and rclone's remote `sw:` from the environment, waits until an object can be
# written, and makes the bucket `bench`. The server is stopped when the caller exits. Needs
# $root, $weed and $py; sets $work, $weed_pid, $endpoint, $key, $secret, $ports and `say`.
if [ -n "${WORK:-}" ]; then
  work="$WORK" keep=1
else
  work="$(mktemp -d "${TMPDIR:-/tmp}/fanout-bench-remote.XXXXXX")" keep=0
fi
mkdir -p "$work"
weed_pid=""
cleanup() {
  if [ -n "$weed_pid" ]; then
    kill "$weed_pid" 2>/dev/null && wait "$weed_pid" 2>/dev/null || true
  fi
  local p
  for p in "${ports[1]:-}" "${ports[3]:-}" "${ports[5]:-}" "${ports[7]:-}"; do
    [ -z "$p" ] || rm -f /tmp/seaweedfs-*-grpc-"$p".sock
  done
  [ "$keep" = 1 ] || rm -rf "$work"
}
trap cleanup EXIT
cd "$work"
say() { printf 'bench/remote: %s\n' "$*" >&2; }

mapfile -t ports < <("$py" -c '
import socket
s = [socket.socket() for _ in range(8)]
for x in s: x.bind(("127.0.0.1", 0))
for x in s: print(x.getsockname()[1])')
key=fanout-bench secret=fanout-bench-secret
endpoint="http://127.0.0.1:${ports[6]}"
printf '{"identities": [{"name": "bench", "credentials": [{"accessKey": "%s", "secretKey": "%s"}], "actions": ["Admin", "Read", "List", "Tagging", "Write"]}]}' \
  "$key" "$secret" >s3.json
mkdir -p data
TMPDIR="$work" "$weed" server -ip=127.0.0.1 -ip.bind=127.0.0.1 -dir="$work/data" \
  -master.port="${ports[0]}" -master.port.grpc="${ports[1]}" \
  -volume.port="${ports[2]}" -volume.port.grpc="${ports[3]}" \
  -filer -filer.port="${ports[4]}" -filer.port.grpc="${ports[5]}" \
  -s3 -s3.port="${ports[6]}" -s3.port.grpc="${ports[7]}" -s3.config="$work/s3.json" \
  -filer.localSocket="$work/filer.sock" -s3.localSocket="$work/s3.sock" \
  -s3.port.iceberg=0 -s3.port.lance=0 -master.telemetry=false -volume.preStopSeconds=0 \
  -master.volumeSizeLimitMB=64 -volume.max=0 >weed.log 2>&1 &
weed_pid=$!
export AWS_ENDPOINT_URL="$endpoint" AWS_ALLOW_HTTP=true AWS_REGION=us-east-1 \
  AWS_ACCESS_KEY_ID="$key" AWS_SECRET_ACCESS_KEY="$secret" AWS_EC2_METADATA_DISABLED=true
# rclone's remote `sw:` from the environment, no config file.
export RCLONE_CONFIG=/dev/null RCLONE_CONFIG_SW_TYPE=s3 RCLONE_CONFIG_SW_PROVIDER=SeaweedFS \
  RCLONE_CONFIG_SW_ENDPOINT="$endpoint" RCLONE_CONFIG_SW_ACCESS_KEY_ID="$key" \
  RCLONE_CONFIG_SW_SECRET_ACCESS_KEY="$secret" RCLONE_CONFIG_SW_REGION=us-east-1
ready=0
for _ in $(seq 120); do
  # Ready once an object can be written: the gateway lists before the volume server takes writes.
  if "$py" - "$endpoint" "$key" "$secret" >/dev/null 2>&1 <<'PY'; then
import sys, boto3
s3 = boto3.client("s3", endpoint_url=sys.argv[1], aws_access_key_id=sys.argv[2],
                  aws_secret_access_key=sys.argv[3], region_name="us-east-1")
try:
    s3.create_bucket(Bucket="bench")
except s3.exceptions.BucketAlreadyOwnedByYou:  # a kept WORK's server
    pass
s3.put_object(Bucket="bench", Key="ready", Body=b"")
s3.delete_object(Bucket="bench", Key="ready")
PY
    ready=1
    break
  fi
  sleep 1
done
[ "$ready" = 1 ] || { say "SeaweedFS did not start (see $work/weed.log)"; keep=1; exit 1; }
say "SeaweedFS $("$weed" version 2>/dev/null | head -n 1) at $endpoint; work in $work"

