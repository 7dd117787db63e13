#!/usr/bin/env bash
# Records that need no process, and stopping with many inputs queued: how fast fanout turns
# inputs into records without starting a job (a --resume that skips everything, a dry run,
# the not-started records after a stop), and how long Ctrl-C, --halt soon and a closed
# stdout take with 100,000 and 1,000,000 inputs still queued. See bench/README.md.
#
# Usage: bash bench/records/run.sh [NEW [OLD]]
#   NEW  the fanout binary to measure (default: `cargo build --release`, target/release/fanout)
#   OLD  optional: a second binary measured the same way, for comparison
#
# Environment:
#   RECORDS_SIZES="N ..."   queued inputs per case (default "100000 1000000")
#   RECORDS_DISTINCT=N      also resume over N distinct files in a tree (default 100000; 0: skip)
#   RECORDS_RUNS=N          runs per case of NEW (default 5)
#   RECORDS_RUNS_LARGE=N    runs per case of NEW at 1,000,000 inputs or more (default 3)
#   RECORDS_OLD_RUNS=N      runs per case of OLD (default 1: it is slow)
#   RECORDS_TIMEOUT=S       a run that takes longer is stopped and reported as "> S s" (default 60)
#   RECORDS_NOTE="..."      a line for the report, e.g. what else the machine was doing
#   RECORDS_QUICK=1         smoke test: 10,000 and 100,000 inputs, 2 runs, 20 s timeout
#   RECORDS_OUT=DIR         where records.md and records.tsv go (default bench/results)
#   TMPDIR                  where the inputs and journals are made
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ROOT="$(cd "$BENCH_DIR/.." && pwd)"
OUT="${RECORDS_OUT:-$BENCH_DIR/results}"

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

if [[ "${RECORDS_QUICK:-0}" == 1 ]]; then
    SIZES=(10000 100000) DISTINCT=10000 RUNS=2 RUNS_LARGE=2 OLD_RUNS=1 TIMEOUT=20
else
    read -r -a SIZES <<< "${RECORDS_SIZES:-100000 1000000}"
    DISTINCT="${RECORDS_DISTINCT:-100000}" RUNS="${RECORDS_RUNS:-5}"
    RUNS_LARGE="${RECORDS_RUNS_LARGE:-3}" OLD_RUNS="${RECORDS_OLD_RUNS:-1}"
    TIMEOUT="${RECORDS_TIMEOUT:-60}"
fi

for t in hyperfine python3 timeout; do
    command -v "$t" >/dev/null || die "$t is required (hyperfine: apt-get install -y hyperfine)"
done
# `wait -n -p` times a stop without polling.
((BASH_VERSINFO[0] > 5 || (BASH_VERSINFO[0] == 5 && BASH_VERSINFO[1] >= 1))) ||
    die "bash 5.1 or later is required (wait -n -p)"

# ---------------------------------------------------------------- binaries
abs() { echo "$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"; }
if (($# >= 1)); then
    NEW="$(abs "$1")"
else
    say "building fanout (cargo build --release)"
    (cd "$ROOT" && cargo build --release --quiet) || die "fanout does not build"
    NEW="$ROOT/target/release/fanout"
fi
OLD=""
if (($# >= 2)); then OLD="$(abs "$2")"; fi
BINS=(NEW)
[[ -x "$NEW" ]] || die "$NEW is not executable"
if [[ -n "$OLD" ]]; then
    [[ -x "$OLD" ]] || die "$OLD is not executable"
    BINS+=(OLD)
fi
bin() { if [[ $1 == NEW ]]; then echo "$NEW"; else echo "$OLD"; fi; }
runs_for() { # binary size
    if [[ $1 == OLD ]]; then echo "$OLD_RUNS"
    elif (($2 >= 1000000)); then echo "$RUNS_LARGE"
    else echo "$RUNS"; fi
}

# ---------------------------------------------------------------- data
TMP="$(mktemp -d "${TMPDIR:-/tmp}/fanout-records.XXXXXX")"
KIDS=()   # the jobs of the fanout being stopped, which a killed fanout may leave behind
MY_GROUP="$(cut -d' ' -f5 /proc/$$/stat)"
any_alive() { local k; for k; do kill -0 "$k" 2>/dev/null && return 0; done; return 1; }
# Kills what is left of KIDS: each job's process group (fanout gives every job its own).
kill_jobs() {
    local k g
    for k in "${KIDS[@]}"; do
        g="$(cut -d' ' -f5 "/proc/$k/stat" 2>/dev/null)" || continue
        if [[ -n "$g" && "$g" != "$MY_GROUP" ]]; then kill -KILL -- "-$g" 2>/dev/null || true
        else kill -KILL "$k" 2>/dev/null || true; fi
    done
    KIDS=()
}
cleanup() {
    kill_jobs
    rm -rf "$TMP"
}
trap cleanup EXIT
mkdir -p "$OUT"
TSV="$OUT/records.tsv"
MD="$OUT/records.md"

# One empty file; the inputs are its path repeated N times on stdin. fanout does not
# deduplicate standard input, so every line is an input of its own.
FILE="$TMP/f"
: > "$FILE"
say "making the inputs and journals under $TMP"
"$NEW" -q --no-progress --summary "$TMP/journal-1" "$FILE" -- true ||
    die "$NEW cannot run one job"
for n in "${SIZES[@]}"; do
    awk -v p="$FILE" -v n="$n" 'BEGIN { for (i = 0; i < n; i++) print p }' > "$TMP/list-$n"
    # The journal a resume starts from: N records of the path, written by NEW itself
    # (a resume of the one-job journal: each input is recorded as skipped, which counts as done).
    "$NEW" -q --no-progress --resume "$TMP/journal-1" --summary "$TMP/journal-$n" - -- true \
        < "$TMP/list-$n"
done

# N distinct files in a tree (1,000 per directory), with a journal that records them all ok.
# Running N real jobs just to write it would take minutes, so the journal is fanout's own
# record of one real job, copied for every file with that file's size and mtime.
if ((DISTINCT > 0)); then
    "$NEW" -q --no-progress --summary "$TMP/template" "$FILE" -- true
    python3 - "$TMP" "$DISTINCT" <<'EOF'
import json, os, sys
tmp, n = sys.argv[1], int(sys.argv[2])
with open(os.path.join(tmp, "template")) as f:
    template = next(json.loads(l) for l in f if '"type":"file"' in l)
tree = os.path.join(tmp, "tree")
with open(os.path.join(tmp, "list-distinct"), "w") as lst, \
        open(os.path.join(tmp, "journal-distinct"), "w") as jr:
    for i in range(n):
        d = os.path.join(tree, f"d{i // 1000:04}")
        if i % 1000 == 0:
            os.makedirs(d)
        p = os.path.join(d, f"f{i:07}")
        open(p, "w").close()
        st = os.stat(p)
        rec = dict(template, job=i + 1, path=p, command=["true", p],
                   file_size=st.st_size, file_mtime_ns=st.st_mtime_ns)
        jr.write(json.dumps(rec, separators=(",", ":")) + "\n")
        lst.write(p + "\n")
EOF
fi

# ---------------------------------------------------------------- bookkeeping
ver() { "$@" 2>&1 | head -1 || true; }
facts() { # binary-label path
    local sum commit=""
    sum="$(sha256sum "$2" | cut -c1-12)"
    if [[ "$2" == "$ROOT/target/release/fanout" ]]; then
        commit=", the checkout is at $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')"
        git -C "$ROOT" diff --quiet HEAD -- src Cargo.toml Cargo.lock 2>/dev/null ||
            commit+=" with changes to src"
    fi
    echo "# binary $1: $(ver "$2" --version) ($2, sha256 $sum$commit)"
}
{
    echo "# date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "# cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//' || echo unknown)"
    echo "# nproc: $(nproc)"
    echo "# memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
    echo "# kernel: $(uname -sr)"
    echo "# filesystem: $(df -T "$TMP" | awk 'NR==2 {print $2}')"
    echo "# load at start: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "# runs: NEW $RUNS ($RUNS_LARGE at 1,000,000 inputs or more), OLD $OLD_RUNS; timeout $TIMEOUT s"
    echo "# hyperfine: $(ver hyperfine --version)"
    facts NEW "$NEW"
    if [[ -n "$OLD" ]]; then facts OLD "$OLD"; fi
    if [[ -n "${RECORDS_NOTE:-}" ]]; then echo "# note: $RECORDS_NOTE"; fi
    printf 'binary\tcase\tinputs\trun\tseconds\texit_code\tcommand\n'
} > "$TSV"

# Adds hyperfine's runs (its JSON export) to the TSV.
add_runs() { # binary case inputs json command
    python3 - "$@" >> "$TSV" <<'EOF'
import json, sys
label, case, n, path, command = sys.argv[1:6]
r = json.load(open(path))["results"][0]
for i, (t, code) in enumerate(zip(r["times"], r["exit_codes"]), 1):
    print(f"{label}\t{case}\t{n}\t{i}\t{t:.4f}\t{code}\t{command}")
EOF
}

# The command as the report shows it.
shown() { local c="${1//$TMP/\$TMP}"; c="${c//$NEW/fanout}"; [[ -n "$OLD" ]] && c="${c//$OLD/fanout}"; echo "$c"; }

# Times one case with hyperfine. Each run is bounded by `timeout`: exit code 124 (or 137)
# in the TSV means the run was stopped, and the report says "> TIMEOUT s".
timed() { # binary case inputs prepare command
    local label="$1" case="$2" n="$3" prepare="$4" cmd="$5" runs warm=()
    runs="$(runs_for "$label" "$n")"
    # A warm-up is worth its time only where runs are short.
    [[ $label == NEW ]] && ((n < 1000000)) && warm=(--warmup 1)
    local full="timeout -k 5 $TIMEOUT $cmd"
    local args=(--runs "$runs" "${warm[@]}" --ignore-failure --shell bash --style none
        --output null --export-json "$TMP/h.json")
    [[ -n "$prepare" ]] && args+=(--prepare "$prepare")
    say "$label $case, $n inputs ($runs runs)"
    hyperfine "${args[@]}" "set -o pipefail; $full"
    add_runs "$label" "$case" "$n" "$TMP/h.json" "$(shown "$cmd")"
}

# Checks the journal a skip-everything resume wrote: N records, all skipped.
check_skipped() { # journal inputs
    python3 - "$1" "$2" <<'EOF' || die "the resume did not skip every input (see $1)"
import json, sys
path, n = sys.argv[1], int(sys.argv[2])
with open(path) as f:
    last = json.loads(f.read().splitlines()[-1])
assert last["type"] == "summary" and last["total"] == n and last["skipped"] == n, last
EOF
}

# Ctrl-C with N inputs queued: fanout -j 2 runs two jobs that sleep; once both run, SIGINT
# goes to fanout alone (as a terminal's Ctrl-C does: jobs run in their own process groups),
# and the time until fanout has exited is measured.
sigint_runs() { # binary inputs
    local label="$1" n="$2" b runs i
    b="$(bin "$label")"
    runs="$(runs_for "$label" "$n")"
    ((runs < 5)) && [[ $label == NEW ]] && runs=5
    local cmd="$b -q --no-progress -j 2 - -- sh -c 'sleep 60' _ {} < $TMP/list-$n"
    say "$label sigint, $n inputs ($runs runs)"
    for ((i = 1; i <= runs; i++)); do
        "$b" -q --no-progress -j 2 - -- sh -c 'sleep 60' _ {} < "$TMP/list-$n" >/dev/null 2>&1 &
        local pid=$! kids=() start=$EPOCHSECONDS f k
        while :; do
            kids=()
            for f in /proc/"$pid"/task/*/children; do
                read -r -a k < "$f" 2>/dev/null || true
                kids+=("${k[@]}")
            done
            ((${#kids[@]} >= 2)) && break
            kill -0 "$pid" 2>/dev/null || die "$label exited before two jobs ran"
            ((EPOCHSECONDS - start > 60)) && die "$label did not start two jobs within 60 s"
            sleep 0.01
        done
        KIDS=("${kids[@]}")
        sleep "$TIMEOUT" & local dog=$!
        local t0=$EPOCHREALTIME which="" rc=0
        kill -INT "$pid"
        wait -n -p which "$pid" "$dog" || rc=$?
        local t1=$EPOCHREALTIME
        if [[ "$which" == "$dog" ]]; then
            kill -KILL "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
            rc=124
        else
            kill "$dog" 2>/dev/null || true
            wait "$dog" 2>/dev/null || true
        fi
        if ((rc != 124)) && any_alive "${kids[@]}"; then
            echo "WARNING: $label left a job running after SIGINT" >&2
        fi
        kill_jobs
        printf '%s\tsigint\t%s\t%s\t%s\t%s\t%s\n' "$label" "$n" "$i" \
            "$(python3 -c "print(f'{$t1 - $t0:.4f}')")" "$rc" "$(shown "$cmd")" >> "$TSV"
    done
}

# ---------------------------------------------------------------- cases
for n in "${SIZES[@]}"; do
    list="$TMP/list-$n" journal="$TMP/journal-$n" sum="$TMP/summary-out"
    for label in "${BINS[@]}"; do
        b="$(bin "$label")"
        timed "$label" resume "$n" "" \
            "$b -q --no-progress --resume $journal - -- true < $list"
        if [[ $label == NEW ]]; then
            # The same from a one-record journal: the record pipeline without loading a journal.
            timed "$label" resume-small-journal "$n" "" \
                "$b -q --no-progress --resume $TMP/journal-1 - -- true < $list"
        fi
        timed "$label" resume-summary "$n" "rm -f $sum" \
            "$b -q --no-progress --resume $journal --summary $sum - -- true < $list"
        if [[ $label == NEW ]]; then check_skipped "$sum" "$n"; fi
        timed "$label" dry-run "$n" "" "$b -n - -- true < $list > /dev/null 2>&1"
        sigint_runs "$label" "$n"
        timed "$label" halt-soon "$n" "" \
            "$b -q --no-progress -j 2 --halt soon - -- false < $list"
        timed "$label" head-1 "$n" "" \
            "$b -q --no-progress -j 2 - -- echo < $list | head -1 > /dev/null"
    done
done
if ((DISTINCT > 0)); then
    list="$TMP/list-distinct" journal="$TMP/journal-distinct" sum="$TMP/summary-out"
    for label in "${BINS[@]}"; do
        b="$(bin "$label")"
        timed "$label" resume-distinct "$DISTINCT" "" \
            "$b -q --no-progress --resume $journal - -- true < $list"
        timed "$label" resume-distinct-summary "$DISTINCT" "rm -f $sum" \
            "$b -q --no-progress --resume $journal --summary $sum - -- true < $list"
        if [[ $label == NEW ]]; then check_skipped "$sum" "$DISTINCT"; fi
    done
fi

sed -i "0,/^# runs:/s|^# runs:|# load at end: $(cut -d' ' -f1-3 /proc/loadavg)\n# runs:|" "$TSV"
python3 "$BENCH_DIR/records/report.py" "$TSV" "$MD" "$TIMEOUT"
say "done: $MD"
