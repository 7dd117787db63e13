#!/usr/bin/env bash
# fanout benchmarks: fanout against the fork/exec floor, find|xargs, fd,
# rust-parallel and GNU parallel. Installs nothing; see bench/README.md.
#
# Environment:
#   BENCH_RUNS=N            hyperfine runs per command (default 5)
#   BENCH_PARALLEL_RUNS=N   runs for GNU parallel, which is slow (default 2)
#   BENCH_SKIP_PARALLEL=1   leave GNU parallel out
#   BENCH_QUICK=1           smoke test: 1,000 / 10,000 files, 2 runs
#   FANOUT_BIN=PATH         benchmark this binary instead of building fanout
#                           (e.g. the floor, as a stand-in while fanout doesn't build)
#   BENCH_ONLY="a b c d e"  the workloads to run (default: all): a spawn, b walk + echo,
#                           c batches, d walk alone (warm, cold, per-directory latency),
#                           e peak memory with 200,000 inputs
#   BENCH_RESULTS=DIR       where results go (default bench/results)
#   BATCH_PERFILE_RUNS=N    runs of per-file fanout in workload c (default 1: 100,000 jobs)
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$BENCH_DIR/.." && pwd)"
RESULTS="${BENCH_RESULTS:-$BENCH_DIR/results}"
ONLY="${BENCH_ONLY:-a b c d e}"
want() { [[ " $ONLY " == *" $1 "* ]]; }

say() { printf '==> %s\n' "$*" >&2; }
skip() { printf 'SKIP: %s\n' "$*" >&2; }

if [[ "${BENCH_QUICK:-0}" == 1 ]]; then
    FLAT_FILES=1000 TREE_FILES=10000 RUNS=2 PARALLEL_RUNS=2 BATCH_FILES=10000
else
    FLAT_FILES=5000 TREE_FILES=100000 RUNS="${BENCH_RUNS:-5}" PARALLEL_RUNS="${BENCH_PARALLEL_RUNS:-2}"
    BATCH_FILES=100000
fi
TREE_DIRS=1000
((TREE_FILES % TREE_DIRS == 0)) || { echo "TREE_FILES must be a multiple of $TREE_DIRS" >&2; exit 1; }

# ---------------------------------------------------------------- tools
missing=()
if ! command -v hyperfine >/dev/null; then
    echo "error: hyperfine is required and not installed." >&2
    echo "       install it with: apt-get install -y hyperfine" >&2
    exit 1
fi
for t in python3 find xargs cargo; do
    command -v "$t" >/dev/null || { echo "error: $t is required and not installed" >&2; exit 1; }
done

FD=""
if command -v fdfind >/dev/null; then FD=fdfind
elif command -v fd >/dev/null && [[ "$(fd --version 2>/dev/null || true)" == fd* ]]; then FD=fd
else missing+=("fd (apt-get install -y fd-find)"); skip "fd: neither fdfind nor fd found"
fi

RP=""
if command -v rust-parallel >/dev/null; then RP=rust-parallel
else missing+=("rust-parallel (cargo install rust-parallel)"); skip "rust-parallel: not found"
fi

GNUPAR=""
if [[ "${BENCH_SKIP_PARALLEL:-0}" == 1 ]]; then
    skip "GNU parallel: BENCH_SKIP_PARALLEL=1"
elif command -v parallel >/dev/null && [[ "$(parallel --version 2>/dev/null || true)" == "GNU parallel"* ]]; then
    GNUPAR=parallel
elif command -v parallel >/dev/null; then
    missing+=("GNU parallel (apt-get install -y parallel)")
    skip "GNU parallel: 'parallel' is not GNU parallel (moreutils?)"
else
    missing+=("GNU parallel (apt-get install -y parallel)"); skip "GNU parallel: not found"
fi

# ---------------------------------------------------------------- builds
if [[ -n "${FANOUT_BIN:-}" ]]; then
    FANOUT="$(cd "$(dirname "$FANOUT_BIN")" && pwd)/$(basename "$FANOUT_BIN")"
    say "using FANOUT_BIN=$FANOUT instead of building fanout"
else
    say "building fanout (cargo build --release)"
    if ! (cd "$ROOT" && cargo build --release --quiet); then
        echo "error: fanout does not build; fix it, or set FANOUT_BIN to benchmark another binary" >&2
        exit 1
    fi
    FANOUT="$ROOT/target/release/fanout"
fi
say "building the floor (bench/floor)"
cargo build --release --quiet --manifest-path "$BENCH_DIR/floor/Cargo.toml"
FLOOR="$BENCH_DIR/floor/target/release/floor"
[[ -x "$FANOUT" ]] || { echo "error: $FANOUT is not executable" >&2; exit 1; }

# ---------------------------------------------------------------- data
TMP="$(mktemp -d "${TMPDIR:-/tmp}/fanout-bench.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT
FLAT="$TMP/flat"
TREE="$TMP/tree"

say "generating $FLAT_FILES files and a tree of $TREE_FILES files in $TREE_DIRS directories under $TMP"
# Prints: total parquet files, and parquet files not ignored by the tree's .gitignore.
read -r PARQUET_ALL PARQUET_KEPT < <(python3 - "$FLAT" "$FLAT_FILES" "$TREE" "$TREE_FILES" "$TREE_DIRS" <<'EOF'
import os, sys
flat, nflat, tree, ntree, ndirs = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
os.makedirs(flat)
for i in range(nflat):
    open(os.path.join(flat, f"f{i:05}.dat"), "w").close()
os.makedirs(os.path.join(tree, ".git"))          # so fd and fanout honour .gitignore
with open(os.path.join(tree, ".gitignore"), "w") as f:
    f.write("# every 10th directory is build output\nbuild-*/\n# scratch files\n*.tmp\n")
per = ntree // ndirs
allp = kept = 0
for d in range(ndirs):
    ignored_dir = d % 10 == 9
    name = f"build-{d:04}" if ignored_dir else f"d{d:04}"
    os.mkdir(os.path.join(tree, name))
    for j in range(per):
        # ~10% parquet, ~4% ignored *.tmp, the rest csv
        ext = "parquet" if j % 10 == 0 else "tmp" if j % 25 == 1 else "csv"
        open(os.path.join(tree, name, f"part-{j:04}.{ext}"), "w").close()
        if ext == "parquet":
            allp += 1
            kept += not ignored_dir
print(allp, kept)
EOF
)
# Workload c: BATCH_FILES small files (a few bytes each), 1,000 to a directory.
BATCH="$TMP/batch"
python3 - "$BATCH" "$BATCH_FILES" <<'EOF'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    d = os.path.join(root, f"b{i // 1000:03}")
    if i % 1000 == 0:
        os.makedirs(d)
    with open(os.path.join(d, f"s{i:06}.txt"), "w") as f:
        f.write(f"{i}\n")
EOF

# ---------------------------------------------------------------- bookkeeping
mkdir -p "$RESULTS"
# Only the workloads run now are replaced: the others' results stay in the report.
for w in $ONLY; do
    rm -f "$RESULTS/$w"-*.json
    for t in commands checks; do
        [[ -f "$RESULTS/$t.tsv" ]] && { grep -v "^$w" "$RESULTS/$t.tsv" > "$RESULTS/$t.tmp" || true; mv "$RESULTS/$t.tmp" "$RESULTS/$t.tsv"; }
    done
done
want e && rm -f "$RESULTS/rss.tsv"
rm -f "$RESULTS/machine.txt"

ver() { "$@" 2>&1 | head -1 || true; }
{
    echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//' || echo unknown)"
    echo "nproc: $(nproc)"
    echo "memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
    echo "kernel: $(uname -sr)"
    echo "filesystem: $(df -T "$TMP" | awk 'NR==2 {print $2}') ($TMP)"
    echo "flat files: $FLAT_FILES"
    echo "tree files: $TREE_FILES in $TREE_DIRS dirs; $PARQUET_ALL *.parquet, $PARQUET_KEPT not gitignored"
    echo "batch files: $BATCH_FILES small files, 1,000 a directory"
    echo "workloads: $ONLY"
    echo "runs: $RUNS (GNU parallel: $PARALLEL_RUNS), warmup 1"
    echo "version fanout: $(ver "$FANOUT" --version)"
    echo "version hyperfine: $(ver hyperfine --version)"
    echo "version xargs: $(ver xargs --version)"
    echo "version find: $(ver find --version)"
    if [[ -n "$FD" ]]; then echo "version fd: $(ver "$FD" --version)"; fi
    if [[ -n "$RP" ]]; then echo "version rust-parallel: $(ver "$RP" --version)"; fi
    if [[ -n "$GNUPAR" ]]; then echo "version GNU parallel: $(ver "$GNUPAR" --version)"; fi
    echo "version rustc: $(ver rustc --version)"
    for m in "${missing[@]}"; do echo "missing: $m"; done
} > "$RESULTS/machine.txt"

# Checks that a command really runs once per expected file: it must print
# exactly EXPECT lines when its per-file command is `echo`. A peer that fails
# this is reported and benchmarked anyway; fanout or the floor failing it stops the run.
check() { # workload name expect command...
    local w="$1" name="$2" expect="$3"; shift 3
    local got
    got="$(bash -c "$*" </dev/null 2>/dev/null | wc -l)" || got="error"
    printf '%s\t%s\t%s\t%s\n' "$w" "$name" "$expect" "$got" >> "$RESULTS/checks.tsv"
    if [[ "$got" != "$expect" ]]; then
        echo "WARNING: $name ran $got commands, expected $expect: $*" >&2
        [[ "$name" == fanout* || "$name" == floor* ]] && exit 1
    fi
    return 0
}

# Runs hyperfine over NAME/COMMAND pairs, exporting bench/results/FILE.json.
bench() { # file runs output name cmd [name cmd]...
    local file="$1" runs="$2" output="$3"; shift 3
    local args=() w="${file%%__*}"
    while (($#)); do
        args+=(--command-name "$1" "$2")
        local shown="${2//$FLAT/\$FLAT}"; shown="${shown//$TREE/\$TREE}"
        shown="${shown//$FANOUT/fanout}"; shown="${shown//$FLOOR/floor}"
        printf '%s\t%s\t%s\n' "$w" "$1" "$shown" >> "$RESULTS/commands.tsv"
        shift 2
    done
    say "hyperfine: $file ($runs runs)"
    hyperfine --warmup 1 --runs "$runs" --output="$output" --style basic \
        --export-json "$RESULTS/$file.json" "${args[@]}"
}

# ---------------------------------------------------------------- workload a
# One `true` per file: the cost of walking, spawning and reaping.
want a && for J in 2 8; do
    w="a-j$J"
    cmds=(
        "fanout -j$J"  "$FANOUT -q --no-progress -j $J $FLAT -- true"
        "floor -j$J"   "$FLOOR -j $J $FLAT -- true"
        "xargs -P$J"   "find $FLAT -type f -print0 | xargs -0 -n1 -P $J true"
    )
    [[ -n "$FD" ]] && cmds+=("fd -j$J" "$FD . $FLAT -t f -j $J -x true")
    [[ -n "$RP" ]] && cmds+=("rust-parallel -j$J" "find $FLAT -type f | $RP -j $J true")
    if [[ $J == 2 ]]; then
        for ((i = 0; i < ${#cmds[@]}; i += 2)); do
            check a "${cmds[i]%% *}" "$FLAT_FILES" "${cmds[i+1]/% true/ echo}"
        done
        if [[ -n "$GNUPAR" ]]; then
            check a parallel "$FLAT_FILES" "find $FLAT -type f | $GNUPAR --will-cite -j $J echo"
        fi
    fi
    bench "${w}__main" "$RUNS" null "${cmds[@]}"
    if [[ -n "$GNUPAR" ]]; then
        bench "${w}__gnu-parallel" "$PARALLEL_RUNS" null \
            "GNU parallel -j$J" "find $FLAT -type f | $GNUPAR --will-cite -j $J true"
    fi
done

# ---------------------------------------------------------------- workload b
# Find the *.parquet files in a big tree and `echo` each one, at -j 2.
# fanout and fd skip what .gitignore ignores; find|xargs has no such notion.
want b && {
w=b-j2
cmds=(
    "fanout -j2"  "$FANOUT -q --no-progress -j 2 -e parquet $TREE -- echo"
    "xargs -P2"   "find $TREE -name '*.parquet' -print0 | xargs -0 -n1 -P2 echo"
)
[[ -n "$FD" ]] && cmds+=("fd -j2" "$FD -j 2 -e parquet . $TREE -x echo")
check b fanout "$PARQUET_KEPT" "${cmds[1]}"
check b xargs "$PARQUET_ALL" "${cmds[3]}"
if [[ -n "$FD" ]]; then check b fd "$PARQUET_KEPT" "${cmds[5]}"; fi
bench "${w}__main" "$RUNS" null "${cmds[@]}"
}

# ---------------------------------------------------------------- workload c
# Batches: `wc -c` over BATCH_FILES small files at -j 2, many files per command. fanout -X
# also writes a record per file (checked below); per-file fanout runs once (it is slow).
want c && {
w=c-j2
check_batch() { # name: fanout's summary must hold a record per file, all ok
    local n
    n="$(grep -c '"type":"file".*"status":"ok"' "$TMP/batch.jsonl" || true)"
    printf '%s\t%s\t%s\t%s\n' c "$1" "$BATCH_FILES" "$n" >> "$RESULTS/checks.tsv"
    [[ "$n" == "$BATCH_FILES" ]] || { echo "error: $1 recorded $n of $BATCH_FILES files ok" >&2; exit 1; }
}
"$FANOUT" -q -X -j 2 --summary "$TMP/batch.jsonl" "$BATCH" -- wc -c > /dev/null
check_batch fanout
cmds=(
    "fanout -X -j2"        "$FANOUT -q --no-progress -X -j 2 --summary $TMP/batch.jsonl $BATCH -- wc -c"
    "xargs -P2 -n1000"     "find $BATCH -type f -print0 | xargs -0 -P2 -n 1000 wc -c"
)
[[ -n "$FD" ]] && cmds+=("fd -X -j2" "$FD . $BATCH -t f -j 2 -X wc -c")
bench "${w}__main" "$RUNS" null "${cmds[@]}"
bench "${w}__perfile" "${BATCH_PERFILE_RUNS:-1}" null \
    "fanout per file -j2" "$FANOUT -q --no-progress -j 2 --summary $TMP/batch.jsonl $BATCH -- wc -c"
check_batch "fanout per file"
}

# ---------------------------------------------------------------- workload d
# The walk alone: list the tree's *.parquet (fanout: its dry run) on a warm cache, a cold
# cache (root only: the page cache is dropped before each run) and with 1 ms added to every
# directory open (bench/walk/delay.c, LD_PRELOAD), as on a network file system.
want d && {
cc -O2 -shared -fPIC -o "$TMP/delay.so" "$BENCH_DIR/walk/delay.c" -ldl -lpthread
walkers=(
    "fanout -n"    "$FANOUT -q -n -e parquet $TREE -- echo"
    "find"         "find $TREE -name '*.parquet'"
)
[[ -n "$FD" ]] && walkers+=("fd" "$FD -e parquet . $TREE")
walkers+=("fanout -n, no read-ahead" "FANOUT_READ_AHEAD=never $FANOUT -q -n -e parquet $TREE -- echo")
bench "d-warm__main" "$RUNS" null "${walkers[@]}"
if [[ $(id -u) == 0 ]]; then
    args=()
    for ((i = 0; i < ${#walkers[@]}; i += 2)); do
        args+=(--command-name "${walkers[i]}" "${walkers[i+1]}")
    done
    say "hyperfine: d-cold (page cache dropped before each run)"
    hyperfine --runs "$RUNS" --output=null --style basic --prepare 'sync; echo 3 > /proc/sys/vm/drop_caches' \
        --export-json "$RESULTS/d-cold__main.json" "${args[@]}"
else
    skip "cold-cache walk: dropping the page cache needs root"
fi
args=()
for ((i = 0; i < ${#walkers[@]}; i += 2)); do
    args+=(--command-name "${walkers[i]}" "env LD_PRELOAD=$TMP/delay.so DELAY_US=1000 ${walkers[i+1]}")
done
say "hyperfine: d-latency (1 ms per directory open)"
hyperfine --warmup 1 --runs "$RUNS" --output=null --style basic \
    --export-json "$RESULTS/d-latency__main.json" "${args[@]}"
}

# ---------------------------------------------------------------- workload e
# Peak memory (RSS, GNU time) of fanout with 200,000 inputs (the batch files twice, on
# standard input, which is not deduplicated): one `true` per input, and batched.
want e && {
find "$BATCH" -type f > "$TMP/list"
cat "$TMP/list" "$TMP/list" > "$TMP/list2"
for mode in per-file batched; do
    flag=""; [[ $mode == batched ]] && flag="-X"
    /usr/bin/time -f '%M %e' -o "$TMP/rss" "$FANOUT" -q $flag -j 2 --summary /dev/null - -- true < "$TMP/list2"
    read -r kib secs < "$TMP/rss"
    printf '%s\t%s\t%s\t%s\n' "$mode" "$(wc -l < "$TMP/list2")" "$kib" "$secs" >> "$RESULTS/rss.tsv"
    say "peak RSS, $mode: $kib KiB in $secs s"
done
}

# ---------------------------------------------------------------- report
say "writing $RESULTS/results.md and results.svg"
python3 "$BENCH_DIR/report.py" "$RESULTS"
if ((${#missing[@]})); then
    echo "Not benchmarked (missing): ${missing[*]}" >&2
fi
say "done: $RESULTS/results.md"
