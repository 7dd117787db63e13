#!/usr/bin/env bash
# Creates the Python virtual environment of the end-to-end suite and installs the pinned tools of
# e2e/requirements.txt (pyarrow, duckdb, polars) into it, nothing else.
#
#   bash e2e/setup.sh            # venv in ${E2E_VENV:-$PWD/target/e2e-venv}
#
# Idempotent: when the venv already holds exactly these pins it returns in well under a second.
# Prints the venv's path on its last line.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
req="$here/requirements.txt"
venv="${E2E_VENV:-$PWD/target/e2e-venv}"
python="${E2E_PYTHON:-python3}"
stamp="$venv/.e2e-requirements"

if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && cmp -s "$req" "$stamp" \
    && "$venv/bin/python" -c 'import pyarrow, duckdb, polars' 2>/dev/null; then
  echo "$venv"
  exit 0
fi

if ! command -v "$python" >/dev/null; then
  echo "e2e/setup.sh: $python not found (set E2E_PYTHON to a Python >= 3.9)" >&2
  exit 2
fi
if [ ! -x "$venv/bin/python" ]; then
  echo "e2e/setup.sh: creating the virtual environment $venv" >&2
  mkdir -p "$(dirname "$venv")"
  if ! "$python" -m venv "$venv"; then
    echo "e2e/setup.sh: '$python -m venv' failed (on Debian: apt-get install python3-venv)" >&2
    exit 2
  fi
fi
echo "e2e/setup.sh: pip install -r $req" >&2
rm -f "$stamp"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input -r "$req"
"$venv/bin/python" -c 'import pyarrow, duckdb, polars' 
cp "$req" "$stamp"
echo "$venv"
