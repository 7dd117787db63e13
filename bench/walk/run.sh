#!/usr/bin/env bash
# The walk alone, side by side in alternating rounds: find, fd, and fanout's dry run (`-n`),
# this build against another (OLD), over a tree of 100,000 files in 1,000 directories: every
# file a job, and `-e parquet` (10,000 of them). Warm cache, cold cache (the page cache dropped
# before every run; root only) and 1 ms added to every directory's first open (delay.c, as on
# a network file system). Every command runs once per round, so a noisy neighbour hits all
# alike; the table gives each one's median and the medians of per-round ratios.
#
#   bash bench/walk/run.sh OLD [NEW] > bench/results/walk.md
#
# OLD, NEW: fanout binaries (NEW defaults to this tree's target/release/fanout, built here).
# Environment: WALK_ROUNDS (warm, default 11), WALK_COLD_ROUNDS (default 5),
# WALK_DELAY_ROUNDS (default 5), WALK_ONLY="warm cold delay" (default all), TMPDIR.
set -euo pipefail
BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ROOT="$(cd "$BENCH_DIR/.." && pwd)"
OLD="$(realpath "${1:?usage: run.sh OLD [NEW]}")"
if [[ -n "${2:-}" ]]; then
    NEW="$(realpath "$2")"
else
    (cd "$ROOT" && cargo build --release --quiet)
    NEW="$ROOT/target/release/fanout"
fi
ONLY="${WALK_ONLY:-warm cold delay}"
want() { [[ " $ONLY " == *" $1 "* ]]; }
FD=""
if command -v fdfind >/dev/null; then FD=fdfind; elif command -v fd >/dev/null; then FD=fd; fi
for t in hyperfine python3 find cc; do
    command -v "$t" >/dev/null || { echo "error: $t is required" >&2; exit 1; }
done
[[ -n "$FD" ]] || { echo "error: fd is required (apt-get install -y fd-find)" >&2; exit 1; }

TMP="$(mktemp -d "${TMPDIR:-/tmp}/fanout-walk.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT
TREE="$TMP/tree"
python3 - "$TREE" <<'EOF'
import os, sys
tree = sys.argv[1]
os.makedirs(os.path.join(tree, ".git"))          # so fd and fanout honour .gitignore
with open(os.path.join(tree, ".gitignore"), "w") as f:
    f.write("# every 10th directory is build output\nbuild-*/\n# scratch files\n*.tmp\n")
for d in range(1000):
    name = f"build-{d:04}" if d % 10 == 9 else f"d{d:04}"
    os.mkdir(os.path.join(tree, name))
    for j in range(100):
        ext = "parquet" if j % 10 == 0 else "tmp" if j % 25 == 1 else "csv"
        open(os.path.join(tree, name, f"part-{j:04}.{ext}"), "w").close()
EOF
cc -O2 -shared -fPIC -o "$TMP/delay.so" "$BENCH_DIR/walk/delay.c" -ldl -lpthread

# Each listing must have as many lines as its walker has files: fd and fanout honour the
# tree's .gitignore (86,400 files, 9,000 *.parquet), find does not (100,001 files with the .gitignore, 10,000 *.parquet).
check() { # expect command
    local got
    got="$(bash -c "$2" 2>/dev/null | wc -l)"
    [[ "$got" == "$1" ]] || { echo "error: $2 listed $got, expected $1" >&2; exit 1; }
}
check 86400 "$NEW -q -n $TREE -- echo"
check 9000 "$NEW -q -n -e parquet $TREE -- echo"
check 86400 "$OLD -q -n $TREE -- echo"
check 100001 "find $TREE -type f"
check 86400 "$FD -t f . $TREE"
check 9000 "$FD -e parquet . $TREE"
cmp <("$OLD" -n "$TREE" -- echo '{#}' '{%}' '{}' 2>&1) <("$NEW" -n "$TREE" -- echo '{#}' '{%}' '{}' 2>&1) \
    || { echo "error: the two builds list differently" >&2; exit 1; }

# rounds NAME PREPARE N: every command of $cmds once per round, N rounds, times in $TMP/NAME-*.
rounds() {
    local name="$1" prepare="$2" n="$3" args=()
    for ((i = 0; i < ${#cmds[@]}; i += 2)); do args+=(--command-name "${cmds[i]}" "${cmds[i+1]}"); done
    local prep=()
    [[ -n "$prepare" ]] && prep=(--prepare "$prepare")
    # Warm-up: one untimed run of each (for the warm rounds, this fills the cache).
    [[ -z "$prepare" ]] && for ((i = 1; i < ${#cmds[@]}; i += 2)); do bash -c "${cmds[i]}" >/dev/null 2>&1; done
    for ((r = 1; r <= n; r++)); do
        hyperfine --runs 1 --output=null --style none "${prep[@]}" \
            --export-json "$TMP/$name-$r.json" "${args[@]}" >/dev/null 2>&1
    done
}

cases=()
for what in all parquet; do
    if [[ $what == all ]]; then e=""; f="-type f"; fdf="-t f"; else e="-e parquet"; f="-name '*.parquet'"; fdf="-e parquet"; fi
    for mode in warm cold delay; do
        want "$mode" || continue
        [[ $mode == cold && $(id -u) != 0 ]] && { echo "cold: skipped (dropping the page cache needs root)" >&2; continue; }
        pre=""; [[ $mode == delay ]] && pre="env LD_PRELOAD=$TMP/delay.so DELAY_US=1000 "
        cmds=(
            "find" "${pre}find $TREE $f"
            "fd" "${pre}$FD $fdf . $TREE"
            "fanout -n old" "${pre}$OLD -q -n $e $TREE -- echo"
            "fanout -n new" "${pre}$NEW -q -n $e $TREE -- echo"
        )
        # The read-ahead's part where the file system waits: the new build with it never
        # started, and started at once.
        if [[ $mode != warm ]]; then
            cmds+=("new, read-ahead never" "${pre}env FANOUT_READ_AHEAD=never $NEW -q -n $e $TREE -- echo")
            cmds+=("new, read-ahead always" "${pre}env FANOUT_READ_AHEAD=always $NEW -q -n $e $TREE -- echo")
        fi
        case $mode in
            warm) n="${WALK_ROUNDS:-11}"; prep="" ;;
            cold) n="${WALK_COLD_ROUNDS:-5}"; prep="sync; echo 3 > /proc/sys/vm/drop_caches" ;;
            delay) n="${WALK_DELAY_ROUNDS:-5}"; prep="" ;;
        esac
        echo "==> $mode, $what: $n rounds" >&2
        rounds "$mode-$what" "$prep" "$n"
        cases+=("$mode-$what:$n")
    done
done

ver() { "$@" 2>&1 | head -1 || true; }
cat <<EOF
# The walk alone: find, fd and fanout's dry run, alternating rounds

\`bash bench/walk/run.sh OLD NEW\`, $(date -u '+%Y-%m-%d %H:%M UTC').

| | |
|---|---|
| machine | $(nproc) vCPU ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')), $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo), $(uname -sr), $(df -T "$TMP" | awk 'NR==2 {print $2}'); load average at the end: $(cut -d' ' -f1-3 /proc/loadavg) |
| versions | old: $(ver "$OLD" --version) ($OLD), new: $(ver "$NEW" --version) ($NEW); $(ver "$FD" --version); $(ver find --version); $(ver hyperfine --version) |
| tree | 100,000 empty files in 1,000 directories, a .gitignore (every 10th directory, \`*.tmp\`): fd and fanout list 86,400 files (9,000 \`*.parquet\`), find 100,001 (10,000) |
| commands | \`find TREE -type f\` or \`-name '*.parquet'\`; \`fd -t f . TREE\` or \`fd -e parquet . TREE\`; \`fanout -q -n [-e parquet] TREE -- echo\`; output to /dev/null |
| cold | \`sync; echo 3 > /proc/sys/vm/drop_caches\` before every run |
| delay | \`bench/walk/delay.c\` (LD_PRELOAD): 1 ms more for each directory's first open |

Each row: the median wall time over the rounds (min … max), and the medians of the per-round
ratios (every command ran once per round, one after the other).

EOF
python3 - "$TMP" "${cases[@]}" <<'PY'
import json, os, statistics, sys
d = sys.argv[1]
for case in sys.argv[2:]:
    name, n = case.rsplit(":", 1)
    rounds = [json.load(open(os.path.join(d, f"{name}-{r}.json")))["results"] for r in range(1, int(n) + 1)]
    names = [x["command"] for x in rounds[0]]
    t = {k: [next(x["mean"] for x in rr if x["command"] == k) for rr in rounds] for k in names}
    ratio = lambda a, b: statistics.median(x / y for x, y in zip(t[a], t[b]))
    mode, what = name.split("-")
    print(f"## {mode} cache, {'every file a job' if what == 'all' else '-e parquet'}" if mode != "delay"
          else f"## 1 ms per directory, {'every file a job' if what == 'all' else '-e parquet'}")
    print(f"\n{n} rounds.\n")
    print("| command | median | min … max | ÷ find | ÷ fd | ÷ fanout old |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for k in names:
        print(f"| {k} | {statistics.median(t[k])*1000:.0f} ms | {min(t[k])*1000:.0f} … {max(t[k])*1000:.0f} ms "
              f"| {ratio(k, 'find'):.2f}× | {ratio(k, 'fd'):.2f}× | {ratio(k, 'fanout -n old'):.2f}× |")
    print()
PY
