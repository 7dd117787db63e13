#!/usr/bin/env bash
# Installs the object-store servers that fanout's remote tests start (SeaweedFS, moto, Azurite),
# an independent client for their checks (boto3, azure-storage-blob), rclone, and pyarrow, DuckDB
# (with its httpfs extension, for s3://) and polars, all into one directory:
#
#   bash .ci/servers.sh          # into ${FANOUT_SERVERS:-$PWD/target/servers}
#
# The directory is a Python virtual environment (.ci/servers-requirements.txt) whose bin/ also
# holds azurite-blob (npm package azurite, installed under node/). The tests (tests/it/servers.rs)
# look there, or in $FANOUT_SERVERS, before PATH. Nothing is downloaded at run time: DuckDB loads
# httpfs from the duckdb-extension-httpfs package: `duckdb_extensions.import_extension("httpfs")`
# installs it into DuckDB's extension directory, then `LOAD httpfs` (or autoloading) works.
#
# Idempotent: when the directory already holds exactly these pins it returns in well under a
# second. Prints the directory's path on its last line.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
req="$here/servers-requirements.txt"
dir="${FANOUT_SERVERS:-$PWD/target/servers}"
python="${FANOUT_SERVERS_PYTHON:-python3}"
azurite_version=3.37.0
stamp="$dir/.servers-stamp"
want="$(cat "$req"; echo "azurite@$azurite_version")"

say() { printf '.ci/servers.sh: %s\n' "$*" >&2; }

# Each tool answers, and DuckDB loads httpfs offline (into a scratch extension directory, so the
# check leaves the user's ~/.duckdb alone).
check() {
  "$dir/bin/weed" version >/dev/null 2>&1 &&
    "$dir/bin/moto_server" --help >/dev/null 2>&1 &&
    "$dir/bin/rclone" version >/dev/null 2>&1 &&
    "$dir/bin/azurite-blob" --version >/dev/null 2>&1 &&
    "$dir/bin/python" - <<'PY' >&2
import tempfile
import boto3, azure.storage.blob, pyarrow, polars, duckdb, duckdb_extensions
with tempfile.TemporaryDirectory() as ext:
    con = duckdb.connect(config={"extension_directory": ext, "autoinstall_known_extensions": "false"})
    duckdb_extensions.import_extension("httpfs", con=con)
    con.sql("LOAD httpfs")
    assert con.sql("select loaded from duckdb_extensions() where extension_name = 'httpfs'").fetchone()[0]
PY
}

# The quick answer when nothing changed: the stamp of the last complete install, and each tool.
installed() {
  local tool
  for tool in python weed moto_server rclone azurite-blob; do
    [ -x "$dir/bin/$tool" ] || return 1
  done
}

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && installed; then
  echo "$dir"
  exit 0
fi

command -v "$python" >/dev/null || { say "$python not found (set FANOUT_SERVERS_PYTHON)"; exit 2; }
command -v npm >/dev/null || { say "npm not found (Azurite is a Node.js package: apt-get install nodejs npm)"; exit 2; }
if [ ! -x "$dir/bin/python" ]; then
  say "creating the virtual environment $dir"
  mkdir -p "$(dirname "$dir")"
  "$python" -m venv "$dir" || { say "'$python -m venv' failed (on Debian: apt-get install python3-venv)"; exit 2; }
fi
rm -f "$stamp"
say "pip install -r $req"
"$dir/bin/python" -m pip install --quiet --disable-pip-version-check --no-input -r "$req"
say "npm install azurite@$azurite_version"
mkdir -p "$dir/node"
npm install --prefix "$dir/node" --no-audit --no-fund --silent "azurite@$azurite_version"
ln -sfn ../node/node_modules/.bin/azurite-blob "$dir/bin/azurite-blob"
check || { say "the installed tools do not answer (see above)"; exit 2; }
printf '%s' "$want" >"$stamp"
echo "$dir"
