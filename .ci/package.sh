#!/usr/bin/env bash
# fanout as data people and servers get it, checked from a clean clone:
#   wheel   the Python wheel (maturin, `bindings = "bin"`), built as `pip install ./fanout`
#           builds it, installed into a fresh virtual environment; `fanout --version` and one
#           real run over fixtures/ from there
#   static  the static musl binary (`just static`): no dynamic dependency, `--version` and the
#           same real run
# Usage: bash .ci/package.sh [wheel] [static]   (both when none is named)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
work="$root/target/package-check"
what=("$@")
[ ${#what[@]} -gt 0 ] || what=(wheel static)

log() { printf '\n== %s\n' "$*"; }

# One real run over the fixture dataset with the fanout at $1: every parquet file gets a
# record `ok` in the journal, and the job's output names each file.
real_run() {
  local fanout=$1 journal="$work/$2.jsonl" want got
  want=$(find fixtures/dataset -name '*.parquet' | wc -l)
  "$fanout" -q -k -e parquet fixtures/dataset --summary "$journal" -- wc -c {} >"$work/$2.out"
  got=$(python3 - "$journal" <<'PY'
import json, sys
records = [json.loads(l) for l in open(sys.argv[1])]
files = [r for r in records if r.get("type") == "file"]
assert all(r["status"] == "ok" for r in files), files
print(len(files))
PY
)
  [ "$got" = "$want" ] || { echo "$2: $got ok records, want $want" >&2; exit 1; }
  [ "$(wc -l <"$work/$2.out")" = "$want" ] || { echo "$2: output lines differ" >&2; exit 1; }
  echo "$2: $got files ok"
}

rm -rf "$work"
mkdir -p "$work"
for step in "${what[@]}"; do
  case $step in
  wheel)
    log "wheel: pip wheel . (maturin, a release build)"
    python3 -m venv "$work/build"
    start=$SECONDS
    "$work/build/bin/pip" wheel --quiet --no-deps --wheel-dir "$work/wheels" .
    echo "wheel built in $((SECONDS - start)) s: $(basename "$work"/wheels/fanout-*.whl)"
    log "wheel: install into a fresh virtual environment, run from there"
    python3 -m venv "$work/venv"
    "$work/venv/bin/pip" install --quiet "$work"/wheels/fanout-*.whl
    # On the environment's PATH, as a user's shell sees it once the environment is active.
    PATH="$work/venv/bin:$PATH" command -v fanout | grep -qx "$work/venv/bin/fanout"
    PATH="$work/venv/bin:$PATH" fanout --version
    real_run "$work/venv/bin/fanout" wheel
    ;;
  static)
    log "static: cargo build --target x86_64-unknown-linux-musl"
    rustup target add x86_64-unknown-linux-musl
    # ring (the TLS of remote datasets) compiles C for the target: musl-gcc (Debian's
    # musl-tools) is that compiler.
    if ! command -v musl-gcc >/dev/null 2>&1; then
      if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        apt-get install -y -q musl-tools >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q musl-tools >/dev/null; }
      else
        echo "static: musl-gcc is missing (apt-get install musl-tools)" >&2
        exit 1
      fi
    fi
    export CC_x86_64_unknown_linux_musl=musl-gcc
    start=$SECONDS
    cargo build --release --locked --target x86_64-unknown-linux-musl
    echo "static binary built in $((SECONDS - start)) s"
    bin=target/x86_64-unknown-linux-musl/release/fanout
    # No interpreter, no shared library: it runs on any Linux x86_64.
    if readelf -l "$bin" | grep -q INTERP || readelf -d "$bin" | grep -q NEEDED; then
      echo "static: $bin is dynamically linked" >&2
      exit 1
    fi
    "$bin" --version
    real_run "$root/$bin" static
    ;;
  *)
    echo "usage: bash .ci/package.sh [wheel] [static]" >&2
    exit 2
    ;;
  esac
done
