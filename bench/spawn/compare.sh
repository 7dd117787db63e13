#!/usr/bin/env bash
# The spawn loop, 5,000 × `true`, at -j 2 and -j 8: the floor, fd -x and fanout binaries side by
# side in alternating rounds with CPU counts (bench/spawn/run.sh), e.g. this build against the
# build of an older commit (from a detached worktree of it):
#
#   bash bench/spawn/compare.sh [ROUNDS] NAME=FANOUT_BINARY [NAME=FANOUT_BINARY]...
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
rounds=5
if [[ "${1:-}" =~ ^[0-9]+$ ]]; then rounds="$1"; shift; fi
(($#)) || { echo "usage: compare.sh [ROUNDS] NAME=FANOUT_BINARY..." >&2; exit 2; }
cargo build --release --quiet --manifest-path "$here/../floor/Cargo.toml"
floor="$here/../floor/target/release/floor"
fd=""; command -v fdfind >/dev/null && fd=fdfind; [[ -z "$fd" ]] && command -v fd >/dev/null && fd=fd
tmp="$(mktemp -d "${TMPDIR:-/tmp}/fanout-spawn.XXXXXX")"; trap 'rm -rf "$tmp"' EXIT
python3 -c "
import sys
for i in range(5000): open(f'{sys.argv[1]}/f{i:05}.dat', 'w').close()" "$tmp"
echo "date: $(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) CPUs; $(uname -sr); load: $(cut -d' ' -f1-3 /proc/loadavg)"
[[ -n "$fd" ]] && echo "fd: $("$fd" --version)"
for J in 2 8; do
    cmds=("floor -j$J" "$floor -j $J $tmp -- true")
    [[ -n "$fd" ]] && cmds+=("fd -x -j$J" "$fd . $tmp -t f -j $J -x true")
    for nb in "$@"; do
        cmds+=("${nb%%=*} -j$J" "${nb#*=} -q --no-progress -j $J $tmp -- true")
    done
    echo; echo "### -j $J"; echo
    JOBS=5000 bash "$here/run.sh" "$rounds" "${cmds[@]}"
done
