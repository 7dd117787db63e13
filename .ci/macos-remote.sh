#!/usr/bin/env bash
# The default build (with `remote`) checked for both Apple targets. ring, its TLS, compiles C
# for the target, which needs a C compiler that knows macOS: zig's (PyPI `ziglang`, which ships
# the macOS headers), in a virtual environment under target/. cc-rs spells the target as
# `--target=arm64-apple-macosx`, which zig does not take: a small wrapper per target drops it
# and passes zig's own `-target`.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=target/zig-venv
if ! "$venv/bin/python" -m ziglang version >/dev/null 2>&1; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check 'ziglang==0.17.1'
fi
zig_python="$(cd "$venv" && pwd)/bin/python"
wrappers="$(pwd)/target/zig-cc"
mkdir -p "$wrappers"

for pair in aarch64-apple-darwin:aarch64-macos x86_64-apple-darwin:x86_64-macos; do
  rust_target="${pair%%:*}"
  zig_target="${pair##*:}"
  cc="$wrappers/cc-$rust_target"
  cat > "$cc" <<WRAP
#!/bin/sh
for a; do
  shift
  case "\$a" in --target=*) ;; *) set -- "\$@" "\$a" ;; esac
done
exec "$zig_python" -m ziglang cc -target $zig_target "\$@"
WRAP
  chmod +x "$cc"
  ar="$wrappers/ar"
  printf '#!/bin/sh\nexec "%s" -m ziglang ar "$@"\n' "$zig_python" > "$ar"
  chmod +x "$ar"
  var="${rust_target//-/_}"
  env "CC_$var=$cc" "AR_$var=$ar" \
    cargo clippy --target "$rust_target" --all-targets --locked -- -D warnings
done
