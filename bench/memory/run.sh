#!/usr/bin/env bash
# Memory-bound benchmark: fanout in auto mode against `xargs -P N` for several N, on 40 jobs
# that need between 0.2 and 2 GiB each (fixtures/bin/alloc.py size:1: 1 MiB per KiB of input,
# held for a few seconds), in input order, largest first, the two smallest first, and input
# order with one job that needs 3x what its input's size predicts (the safety net's case).
#
# Every fanout run is compared with its own memory-time bound (from its --summary journal: the
# jobs' peak memory x running time / the budget; no schedule keeping every peak inside the limit
# is faster) and with the best xargs -P that had no OOM kill and no failed job.
#
# Every run happens INSIDE a fresh memory cgroup (v2 or v1) limited to MEMBENCH_LIMIT, so an
# out-of-memory kill stays inside it and the host never runs out. Needs root. The cgroups and
# the data are removed on exit (also on Ctrl-C).
#
# Environment:
#   MEMBENCH_LIMIT=6G       memory limit of the cgroup of each run (K/M/G suffixes)
#   MEMBENCH_FILES=40       number of input files (jobs)
#   MEMBENCH_MIN_KIB=200    smallest input, KiB (= MiB of memory its job needs)
#   MEMBENCH_MAX_KIB=2000   largest input
#   MEMBENCH_HOLD=2         seconds each job holds its memory
#   MEMBENCH_P="2 3 4 5 6"  the xargs -P values to try
#   MEMBENCH_JOBS=8         fanout's -j
#   MEMBENCH_QUICK=1        smoke test: 10 files, MEMBENCH_P="3 6", hold 1 s
#   MEMBENCH_XARGS=0        skip the xargs runs (quick checks of fanout alone)
#   FANOUT_BIN=PATH         use this fanout instead of building target/release/fanout
#
# Output in bench/memory/: results.md (the table), runs.tsv, machine.txt, fanout*.jsonl (the
# --summary journals) and timeline.svg (bench/memory/plot.py on fanout's journal).
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$BENCH_DIR/../.." && pwd)"
ALLOC="$ROOT/fixtures/bin/alloc.py"

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

to_bytes() {
    local v=$1
    case "$v" in
        *[Kk]) echo $(( ${v%?} << 10 )) ;;
        *[Mm]) echo $(( ${v%?} << 20 )) ;;
        *[Gg]) echo $(( ${v%?} << 30 )) ;;
        *) echo "$v" ;;
    esac
}

LIMIT=$(to_bytes "${MEMBENCH_LIMIT:-6G}")
if [[ "${MEMBENCH_QUICK:-0}" == 1 ]]; then
    FILES=10 PS="${MEMBENCH_P:-3 6}" HOLD=${MEMBENCH_HOLD:-1}
else
    FILES=${MEMBENCH_FILES:-40} PS="${MEMBENCH_P:-2 3 4 5 6}" HOLD=${MEMBENCH_HOLD:-2}
fi
MIN_KIB=${MEMBENCH_MIN_KIB:-200}
MAX_KIB=${MEMBENCH_MAX_KIB:-2000}
JOBS=${MEMBENCH_JOBS:-8}

# ---------------------------------------------------------------- checks
[[ "$(id -u)" == 0 ]] || die "needs root, to create memory cgroups (the runs must be contained)"
for t in python3 xargs find awk; do
    command -v "$t" >/dev/null || die "$t is required and not installed"
done
avail_kib=$(awk '/^MemAvailable:/ {print $2}' /proc/meminfo)
need_kib=$(( LIMIT / 1024 + (3 << 20) ))
(( avail_kib >= need_kib )) \
    || die "only $((avail_kib >> 10)) MiB available; the cgroup limit $((LIMIT >> 20)) MiB + 3 GiB of head-room is needed"

# ---------------------------------------------------------------- the memory cgroup hierarchy
# Prefer cgroup v2 when its memory controller is there, else the v1 memory hierarchy.
CG_V2=0 CG_MOUNT="" CG_MROOT=""
while read -r _ _ _ mroot mpoint rest; do
    fstype=$(sed 's/.* - //' <<<"$rest" | awk '{print $1}')
    opts=$(sed 's/.* - //' <<<"$rest" | awk '{print $3}')
    if [[ "$fstype" == cgroup2 ]] && grep -qw memory "$mpoint/cgroup.controllers" 2>/dev/null; then
        CG_V2=1 CG_MOUNT=$mpoint CG_MROOT=$mroot
        break
    fi
    if [[ "$fstype" == cgroup && ",$opts," == *,memory,* ]]; then
        CG_MOUNT=$mpoint CG_MROOT=$mroot
    fi
done </proc/self/mountinfo
[[ -n "$CG_MOUNT" ]] || die "no memory cgroup hierarchy is mounted (cgroup v2 with memory, or v1 memory)"
if ((CG_V2)); then
    own=$(awk -F: '$1 == "0" {print $3}' /proc/self/cgroup)
else
    own=$(awk -F: '$2 ~ /(^|,)memory(,|$)/ {print $3}' /proc/self/cgroup)
fi
own=${own#"$CG_MROOT"}
OWN_DIR="$CG_MOUNT/${own#/}"
OWN_DIR=${OWN_DIR%/}

CGROUPS=()      # created and not yet removed
TMP=""
cg_pids() { cat "$1/cgroup.procs" 2>/dev/null || true; }
cg_remove() {
    local cg=$1 i
    for i in $(seq 50); do
        [[ -z "$(cg_pids "$cg")" ]] && break
        sleep 0.1
    done
    # Anything still inside was started by this script: stop it.
    for pid in $(cg_pids "$cg"); do kill -KILL "$pid" 2>/dev/null || true; done
    for i in $(seq 50); do
        rmdir "$cg" 2>/dev/null && return 0
        [[ -d "$cg" ]] || return 0
        sleep 0.1
    done
    printf 'warning: could not remove cgroup %s\n' "$cg" >&2
}
cleanup() {
    local cg
    for cg in "${CGROUPS[@]}"; do [[ -n "$cg" ]] && cg_remove "$cg"; done
    [[ -n "$TMP" ]] && rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Creates a cgroup limited to LIMIT: a child of our own cgroup, else of the hierarchy root.
# Sets CG to its directory (not in a subshell: CGROUPS must remember it for the cleanup).
cg_create() {
    local name=$1 parent dir
    CG=""
    for parent in "$OWN_DIR" "$CG_MOUNT"; do
        if ((CG_V2)) && ! grep -qw memory "$parent/cgroup.subtree_control" 2>/dev/null; then
            echo +memory >"$parent/cgroup.subtree_control" 2>/dev/null || true
        fi
        dir="$parent/$name"
        mkdir "$dir" 2>/dev/null || continue
        CGROUPS+=("$dir")
        if ((CG_V2)); then
            echo "$LIMIT" >"$dir/memory.max" 2>/dev/null || true
            echo 0 >"$dir/memory.swap.max" 2>/dev/null || true
            [[ "$(cat "$dir/memory.max" 2>/dev/null)" == "$LIMIT" ]] && { CG=$dir; return 0; }
        else
            echo "$LIMIT" >"$dir/memory.limit_in_bytes" 2>/dev/null || true
            [[ "$(cat "$dir/memory.limit_in_bytes" 2>/dev/null)" == "$LIMIT" ]] && { CG=$dir; return 0; }
        fi
        cg_forget "$dir"
    done
    return 1
}
# Removes a cgroup this script created and forgets it.
cg_forget() {
    local keep=() c
    cg_remove "$1"
    for c in "${CGROUPS[@]}"; do [[ "$c" == "$1" ]] || keep+=("$c"); done
    CGROUPS=("${keep[@]}")
}
cg_peak() {
    if ((CG_V2)); then cat "$1/memory.peak"; else cat "$1/memory.max_usage_in_bytes"; fi
}
cg_ooms() {
    if ((CG_V2)); then
        awk '$1 == "oom_kill" {print $2}' "$1/memory.events"
    else
        awk '$1 == "oom_kill" {print $2}' "$1/memory.oom_control"
    fi
}
cg_reset_peak() {
    if ((CG_V2)); then echo 0 >"$1/memory.peak" 2>/dev/null || true
    else echo 0 >"$1/memory.max_usage_in_bytes"; fi
}

# ---------------------------------------------------------------- build and data
if [[ -n "${FANOUT_BIN:-}" ]]; then
    FANOUT="$(cd "$(dirname "$FANOUT_BIN")" && pwd)/$(basename "$FANOUT_BIN")"
else
    say "building fanout (cargo build --release)"
    (cd "$ROOT" && cargo build --release --quiet) || die "fanout does not build; set FANOUT_BIN"
    FANOUT="$ROOT/target/release/fanout"
fi
[[ -x "$FANOUT" ]] || die "$FANOUT is not executable"

TMP="$(mktemp -d "${TMPDIR:-/tmp}/fanout-membench.XXXXXX")"
DATA="$TMP/data"
mkdir -p "$DATA"
# Deterministic sizes, spread evenly between MIN and MAX KiB, in shuffled name order.
python3 - "$DATA" "$FILES" "$MIN_KIB" "$MAX_KIB" <<'EOF'
import random, sys
data, n, lo, hi = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
sizes = [lo + (hi - lo) * i // max(n - 1, 1) for i in range(n)]
random.Random(4).shuffle(sizes)
for i, kib in enumerate(sizes):
    with open(f"{data}/in{i:02d}.bin", "wb") as f:
        f.truncate(kib * 1024)
EOF
# The same inputs in an adversarial order for a learner: the two smallest first (fanout learns
# from them), then the rest largest first.
DATA_ADV="$TMP/small-first"
mkdir -p "$DATA_ADV"
python3 - "$DATA" "$DATA_ADV" <<'EOF'
import os, sys
src, dst = sys.argv[1], sys.argv[2]
files = sorted(os.listdir(src), key=lambda n: os.path.getsize(os.path.join(src, n)))
order = files[:2] + sorted(files[2:], key=lambda n: -os.path.getsize(os.path.join(src, n)))
for i, name in enumerate(order):
    os.link(os.path.join(src, name), os.path.join(dst, f"adv{i:02d}.bin"))
EOF
# The same inputs once more, in input order, where the input nearest 700 KiB needs 3x the memory
# its size predicts (alloc.py reads a first line `mult:3`).
DATA_MIS="$TMP/mispredicted"
mkdir -p "$DATA_MIS"
MIS_NAME=$(python3 - "$DATA" "$DATA_MIS" <<'EOF'
import os, sys
src, dst = sys.argv[1], sys.argv[2]
files = sorted(os.listdir(src))
odd = min(files, key=lambda n: abs(os.path.getsize(os.path.join(src, n)) - 700 * 1024))
for name in files:
    if name == odd:
        size = os.path.getsize(os.path.join(src, name))
        with open(os.path.join(dst, name), "wb") as f:
            f.write(b"mult:3\n")
            f.truncate(size)
    else:
        os.link(os.path.join(src, name), os.path.join(dst, name))
print(odd)
EOF
)
TOTAL_MIB=$(find "$DATA" -type f -printf '%s\n' | awk '{s += $1} END {print int(s / 1024)}')

cg_create "fanout-membench-probe-$$" || die "cannot create a memory cgroup under $OWN_DIR or $CG_MOUNT"
say "cgroup v$((CG_V2 ? 2 : 1)) under $(dirname "$CG"), limit $((LIMIT >> 20)) MiB per run"
cg_forget "$CG"
say "$FILES jobs, $MIN_KIB..$MAX_KIB MiB each ($TOTAL_MIB MiB in all), holding ${HOLD}s"

OUT="$BENCH_DIR"
rm -f "$OUT"/fanout*.jsonl "$OUT/runs.tsv"
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
printf 'name\tcommand\twall_s\tpeak_bytes\toom_kills\tfailed\tok\tbound_s\tpauses\trequeues\n' >"$OUT/runs.tsv"

# run NAME DESCRIPTION JOURNAL CMD...: runs CMD inside a fresh cgroup and appends a row to
# runs.tsv. Failed jobs are counted from JOURNAL (fanout's --summary) if given, else CMD writes
# one line per failed job to $FAILS.
run() {
    local name=$1 desc=$2 journal=$3; shift 3
    local cg t0 t1 wall peak ooms failed
    cg_create "fanout-membench-$name-$$" || die "cannot create a cgroup for $name"
    cg=$CG
    cg_reset_peak "$cg"
    FAILS="$TMP/$name.failed"
    : >"$FAILS"
    export FAILS
    say "$name: $desc"
    t0=$(date +%s%N)
    sh -c 'echo $$ > "$1/cgroup.procs" && shift && exec "$@"' _ "$cg" "$@" || true
    t1=$(date +%s%N)
    wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", (b - a) / 1e9}')
    peak=$(cg_peak "$cg")
    ooms=$(cg_ooms "$cg")
    cg_forget "$cg"
    if [[ -n "$journal" ]]; then
        python3 - "$journal" >>"$FAILS" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r.get("type") == "file" and r["status"] != "ok":
        print(r["path"], r["status"], r.get("signal"))
PY
    fi
    failed=$(grep -c . "$FAILS" || true)
    local net="\t\t"
    if [[ -n "$journal" ]]; then
        net=$(python3 - "$journal" <<'PY'
import json, sys
fin = [json.loads(l) for l in open(sys.argv[1]) if l.strip()][-1]
b = fin.get("mem_time_bound_ms")
print(f"{b / 1000:.2f}" if b else "", fin.get("mem_pauses", ""), fin.get("mem_requeues", ""), sep="\t")
PY
)
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%b\n' "$name" "$desc" "$wall" "$peak" "${ooms:-0}" "$failed" \
        $((FILES - failed)) "$net" >>"$OUT/runs.tsv"
    printf '    wall %ss, cgroup peak %s MiB, OOM kills %s, failed jobs %s\n' \
        "$wall" $((peak >> 20)) "${ooms:-0}" "$failed" >&2
}

for order in input largest-first; do
    name=fanout
    [[ $order == input ]] || name=fanout-$order
    run "$name" "fanout -j $JOBS --order $order DIR -- python3 alloc.py size:1 $HOLD" "$OUT/$name.jsonl" \
        "$FANOUT" -q -j "$JOBS" --order "$order" --summary "$OUT/$name.jsonl" "$DATA" \
        -- python3 "$ALLOC" size:1 "$HOLD"
done

run fanout-small-first \
    "fanout -j $JOBS DIR2 -- python3 alloc.py size:1 $HOLD (DIR2: the 2 smallest inputs first, then the largest)" \
    "$OUT/fanout-small-first.jsonl" \
    "$FANOUT" -q -j "$JOBS" --summary "$OUT/fanout-small-first.jsonl" "$DATA_ADV" \
    -- python3 "$ALLOC" size:1 "$HOLD"

run fanout-mispredicted \
    "fanout -j $JOBS DIR3 -- python3 alloc.py size:1 $HOLD (DIR3: input order, $MIS_NAME needs 3x what its size predicts)" \
    "$OUT/fanout-mispredicted.jsonl" \
    "$FANOUT" -q -j "$JOBS" --summary "$OUT/fanout-mispredicted.jsonl" "$DATA_MIS" \
    -- python3 "$ALLOC" size:1 "$HOLD"

[[ "${MEMBENCH_XARGS:-1}" == 0 ]] && PS=""
for p in $PS; do
    # A job killed by a signal would make xargs stop at once (exit 125): the wrapper records
    # the failure and lets xargs go on, as fanout does.
    run "xargs-P$p" "find DIR -type f -print0 | sort -z | xargs -0 -n1 -P $p sh -c 'python3 alloc.py size:1 $HOLD \"\$1\" || record failure'" "" \
        sh -c 'find "$1" -type f -print0 | sort -z | xargs -0 -n1 -P "$2" sh -c '\''python3 "$0" size:1 "$1" "$2" 2>/dev/null || echo "$2 $?" >> "$FAILS"'\'' "$3" "$4"' \
        _ "$DATA" "$p" "$ALLOC" "$HOLD"
done

# ---------------------------------------------------------------- report
{
    echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "cpu: $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
    echo "nproc: $(nproc)"
    echo "memory: $(awk '/^MemTotal:/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo), swap $(awk '/^SwapTotal:/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
    echo "load average: $LOAD_BEFORE before the runs, $(cut -d' ' -f1-3 /proc/loadavg) after"
    echo "kernel: $(uname -sr)"
    echo "cgroup: v$((CG_V2 ? 2 : 1)), limit $((LIMIT >> 20)) MiB per run"
    echo "jobs: $FILES, $MIN_KIB..$MAX_KIB MiB each, $TOTAL_MIB MiB in all, hold ${HOLD}s"
    echo "fanout: $("$FANOUT" --version)"
    echo "xargs: $(xargs --version | head -1)"
} >"$OUT/machine.txt"

python3 "$BENCH_DIR/plot.py" "$OUT/fanout.jsonl" "$OUT/timeline.svg" \
    --title "fanout -j $JOBS (auto) in a $((LIMIT >> 20)) MiB cgroup: $FILES jobs of 0.2-2 GiB"
python3 "$BENCH_DIR/plot.py" "$OUT/fanout-largest-first.jsonl" "$OUT/timeline-largest-first.svg" \
    --title "fanout -j $JOBS --order largest-first in a $((LIMIT >> 20)) MiB cgroup"
python3 "$BENCH_DIR/plot.py" "$OUT/fanout-small-first.jsonl" "$OUT/timeline-small-first.svg" \
    --title "fanout -j $JOBS, the 2 smallest inputs first, in a $((LIMIT >> 20)) MiB cgroup"
python3 "$BENCH_DIR/plot.py" "$OUT/fanout-mispredicted.jsonl" "$OUT/timeline-mispredicted.svg" \
    --title "fanout -j $JOBS, one job needing 3x its prediction, in a $((LIMIT >> 20)) MiB cgroup"

python3 - "$OUT/runs.tsv" "$OUT/machine.txt" "$OUT/fanout.jsonl" >"$OUT/results.md" <<'EOF'
import csv, json, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
machine = open(sys.argv[2]).read().strip()
fin = [json.loads(l) for l in open(sys.argv[3]) if l.strip()][-1]
safe = [r for r in rows if r["name"].startswith("xargs") and int(r["oom_kills"]) == 0 and int(r["failed"]) == 0]
best = min(safe, key=lambda r: float(r["wall_s"])) if safe else None
print("# Memory-bound benchmark\n")
print("Generated by `bash bench/memory/run.sh`.\n")
print("```\n" + machine + "\n```\n")
print("| run | wall (s) | memory-time bound (s) | wall / bound | vs best safe xargs | cgroup peak (GiB) "
      "| OOM kills | failed jobs | paused / requeued | command |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
# xargs has no journal: its rows are read against the bound of fanout's input-order run (the
# same jobs; each fanout run's own bound differs from it only by how long its jobs took).
ref = next((r["bound_s"] for r in rows if r["name"] == "fanout" and r.get("bound_s")), "")
for r in rows:
    ratio = f"{float(r['wall_s']) / float(best['wall_s']):.2f}x" if best else "n/a"
    bound = r.get("bound_s") or ""
    vs_bound = f"{float(r['wall_s']) / float(bound):.2f}x" if bound else ""
    if not bound and ref and r["name"].startswith("xargs"):
        vs_bound = f"({float(r['wall_s']) / float(ref):.2f}x)"
    net = f"{r['pauses']} / {r['requeues']}" if r.get("pauses") else ""
    cmd = r["command"].replace("|", "\\|")
    print(f"| {r['name']} | {float(r['wall_s']):.1f} | {bound} | {vs_bound} | {ratio} | "
          f"{int(r['peak_bytes']) / 2**30:.2f} | {r['oom_kills']} | {r['failed']} | {net} | `{cmd}` |")
print()
print("wall / bound: each fanout run against its own memory-time bound; in parentheses, an xargs "
      "run against the bound of fanout's input-order run.\n")
if best:
    print(f"Best fixed parallelism without an OOM kill: **{best['name']}** ({float(best['wall_s']):.1f} s).\n")
else:
    print("No xargs run in this table finished without an OOM kill or a failed job.\n")
model = fin.get("model") or {}
print("fanout's final record: "
      f"budget {fin['mem_limit_bytes'] / 2**30:.2f} GiB "
      f"(available at start {fin['mem_available_bytes'] / 2**30:.2f} GiB, cgroup limit "
      f"{(fin.get('cgroup_limit_bytes') or 0) / 2**30:.2f} GiB), at most {fin['max_running']} jobs at once, "
      f"highest sampled total {fin['max_memory_bytes'] / 2**30:.2f} GiB, model "
      f"{model.get('base_bytes', 0) / 2**20:.0f} MiB + {model.get('bytes_per_weight_byte')} x weight "
      f"({model.get('observations')} observations), learned margin {fin.get('mem_margin')}.\n")
print("Running jobs and memory over time, from fanout's `--summary` journals (`plot.py`):\n")
print("![fanout, input order](timeline.svg)\n")
print("![fanout, largest first](timeline-largest-first.svg)\n")
print("![fanout, the two smallest inputs first](timeline-small-first.svg)\n")
print("![fanout, one job needing 3x its prediction](timeline-mispredicted.svg)")
EOF
say "wrote $OUT/results.md"
cat "$OUT/results.md"
