#!/usr/bin/env bash
# shellcheck disable=SC1083  # {} and {out} are fanout placeholders, literal on purpose
# fanout's end-to-end suite: real user transformations (pyarrow, DuckDB, polars) rewrite a
# generated hive-partitioned dataset of 200 parquet files in place, turn a hive-partitioned CSV
# dataset into a parquet one (-o, -u, also from a Makefile), and every case checks what fanout
# reported (--summary) against what is really on disk afterwards.
#
#   bash e2e/run.sh
#
# Environment: E2E_VENV (the venv, default target/e2e-venv), E2E_FANOUT (use this binary instead
# of building target/release/fanout), E2E_JOBS (default 2), E2E_FILES (default 200),
# E2E_CSV_FILES (CSV dataset, default 216), E2E_KEEP=1 (keep the work directory and print its
# path), E2E_CASES="c f" (run only these cases).
# Ends with `e2e: N passed, M failed`; exit 1 when a case failed, 2 when the setup failed.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
started=$SECONDS

say() { printf '%s\n' "$*"; }

# --- setup: venv with the pinned tools, fanout, the dataset ----------------------------------
venv="$(bash e2e/setup.sh | tail -n 1)" || { say "e2e: setup failed"; exit 2; }
PY="$venv/bin/python"
T="$root/e2e/transforms"
CHECK="$root/e2e/check.py"
JOBS="${E2E_JOBS:-2}"
NFILES="${E2E_FILES:-200}"
SUBSET="year=2023" # 20 files of the default dataset

if [ -n "${E2E_FANOUT:-}" ]; then
  FANOUT="$E2E_FANOUT"
else
  cargo build --release --quiet || { say "e2e: cargo build --release failed"; exit 2; }
  FANOUT="$root/target/release/fanout"
fi

say "e2e: $("$FANOUT" --version), $("$PY" -c 'import sys, pyarrow, duckdb, polars; print(f"python {sys.version.split()[0]}, pyarrow {pyarrow.__version__}, duckdb {duckdb.__version__}, polars {polars.__version__}")')"

work="$(mktemp -d "${TMPDIR:-/tmp}/fanout-e2e.XXXXXX")"
if [ "${E2E_KEEP:-0}" = 1 ]; then
  trap 'say "e2e: work directory kept: $work"' EXIT
else
  trap 'rm -rf "$work"' EXIT
fi
"$PY" "$T/gen_dataset.py" "$work/pristine" --files "$NFILES" >/dev/null
nsub=$(find "$work/pristine/$SUBSET" -name '*.parquet' | wc -l)
say "e2e: dataset of $NFILES files (subset $SUBSET: $nsub files) in $work, -j $JOBS"

# --- helpers ---------------------------------------------------------------------------------
passed=0
failed=0
fails=0 # failed checks of the current case

# fresh NAME [SUBDIR]: a copy of the pristine dataset (or of one of its directories) in
# $work/NAME with its snapshot in $work/NAME.snap.json
fresh() {
  local name=$1 sub=${2:-}
  rm -rf "${work:?}/$name"
  mkdir -p "$work/$name"
  if [ -n "$sub" ]; then
    # keep the year=… level in the path: DuckDB's hive detection reads it
    cp -a "$work/pristine/$sub" "$work/$name/"
  else
    cp -a "$work/pristine/." "$work/$name/"
  fi
  "$PY" "$CHECK" snapshot "$work/$name" "$work/$name.snap.json" >/dev/null
}

# fan NAME ARGS...: runs fanout with the summary in $work/NAME.jsonl; its exit status in $rc
rc=0
fan() {
  local name=$1
  shift
  rc=0
  "$FANOUT" -j "$JOBS" --summary "$work/$name.jsonl" "$@" >"$work/$name.out" 2>"$work/$name.err" || rc=$?
  say "    $(grep -m1 -E '^fanout: [0-9]+ files?:' "$work/$name.err" || echo "fanout: (no end report)") [exit $rc]"
}

# check WHAT CMD...: one named check of the current case; on failure shows CMD's output
check() {
  local what=$1
  shift
  local log="$work/check.log"
  if "$@" >"$log" 2>&1; then
    say "    ok   $what: $(tail -n 1 "$log")"
  else
    say "    FAIL $what"
    sed 's/^/           /' "$log" | tail -n 20
    fails=$((fails + 1))
  fi
}

rc_is() { [ "$rc" -eq "$1" ] || { echo "exit status $rc, expected $1"; return 1; }; }
exit_is() { rc_is "$@" && echo "exit $rc"; }
no_temp_files() {
  local left
  left=$(find "$1" -name '.*.fanout-*')
  [ -z "$left" ] || { echo "temporary files left behind:"; echo "$left"; return 1; }
  echo "no .*.fanout-* file under $(basename "$1")"
}
tasks_completed() { # JOURNAL N: the final record lists N Slurm array tasks, all COMPLETED
  local n
  n=$(grep '"type":"summary"' "$1" | grep -o '"state":"COMPLETED"' | wc -l)
  [ "$n" -eq "$2" ] || { echo "$n array tasks COMPLETED, expected $2"; return 1; }
  echo "$n array tasks COMPLETED"
}
at_least() { [ "$1" -ge "$2" ] || { echo "$1 $3, expected at least $2"; return 1; }; echo "$1 $3"; }
at_most() { [ "$1" -le "$2" ] || { echo "$1 $3, expected at most $2"; return 1; }; echo "$1 $3"; }
records() { "$PY" "$CHECK" records "$@"; }
pycheck() { "$PY" "$CHECK" "$@"; }

# run_case NAME FUNCTION [opt-in]: PASS when none of the function's checks failed. E2E_CASES
# (letters) selects cases; without it every case runs except the opt-in ones.
run_case() {
  local name=$1 fn=$2 optin=${3:-} t0=$SECONDS
  if [ -n "${E2E_CASES:-}" ]; then
    [[ " $E2E_CASES " == *" ${name%%)*} "* ]] || return 0
  elif [ -n "$optin" ]; then
    return 0
  fi
  fails=0
  say ""
  say "--- $name"
  "$fn"
  if [ "$fails" -eq 0 ]; then
    passed=$((passed + 1))
    say "PASS $name ($((SECONDS - t0)) s)"
  else
    failed=$((failed + 1))
    say "FAIL $name ($fails failed checks, $((SECONDS - t0)) s)"
  fi
}

# --- the cases -------------------------------------------------------------------------------

case_a() {
  local d="$work/a"
  fresh a
  fan a -i --verify parquet -e parquet "$d" -- "$PY" "$T/sort_pyarrow.py" {} {out}
  check "exit 0" exit_is 0
  check "every file replaced" records "$work/a.jsonl" --count "$NFILES" --status ok --action replaced --verify-contains parquet
  check "sorted by id, same rows, schema and compression (pyarrow)" \
    pycheck valid "$work/a.snap.json" "$d" --sorted --same-schema --same-compression
  check "no temporary file left" no_temp_files "$d"
}

case_b() {
  local d="$work/b"
  fresh b
  fan b -i --verify parquet-schema -e parquet "$d" -- "$PY" "$T/sort_duckdb.py" {} {out} --memory-limit 256MB
  check "exit 0" exit_is 0
  check "every file replaced" records "$work/b.jsonl" --count "$NFILES" --status ok --action replaced --verify-contains parquet-schema
  check "sorted by id, same rows and schema (pyarrow)" pycheck valid "$work/b.snap.json" "$d" --sorted --same-schema
  check "no temporary file left" no_temp_files "$d"
}

case_c() {
  local d="$work/c"
  fresh c "$SUBSET"
  fan c -i --verify parquet-schema -e parquet "$d" -- "$PY" "$T/sort_duckdb_hive.py" {} {out}
  check "exit 1" exit_is 1
  check "every file invalid_output, schema named" records "$work/c.jsonl" --count "$nsub" \
    --status invalid_output --action kept --verify-contains "parquet-schema: schema changed" \
    --verify-contains year --verify-contains month
  check "originals byte-identical (sha256)" pycheck identical "$work/c.snap.json" "$d"
  check "no temporary file left" no_temp_files "$d"
  # Without the schema check the same mistake goes through: same rows, two more columns.
  fresh c2 "$SUBSET"
  fan c2 -i --verify parquet -e parquet "$d"2 -- "$PY" "$T/sort_duckdb_hive.py" {} {out}
  check "with --verify parquet the mistake is replaced (exit 0)" exit_is 0
  check "  ... every file replaced" records "$work/c2.jsonl" --count "$nsub" --status ok --action replaced
  check "  ... and the files now carry year and month columns" pycheck columns "$d"2 year,month
}

case_d() {
  local d="$work/d"
  fresh d "$SUBSET"
  fan d -i --verify parquet-nulls -e parquet "$d" -- "$PY" "$T/cast_polars.py" {} {out} --column big --dtype Int8 --non-strict
  check "exit 1" exit_is 1
  check "every file invalid_output: big gained nulls" records "$work/d.jsonl" --count "$nsub" \
    --status invalid_output --action kept --verify-contains "parquet-nulls: column big gained nulls"
  check "originals byte-identical (sha256)" pycheck identical "$work/d.snap.json" "$d"
  check "no temporary file left" no_temp_files "$d"
  # The same cast with --verify parquet: the row count is unchanged, so it passes...
  fan d2 -i --verify parquet -e parquet "$d" -- "$PY" "$T/cast_polars.py" {} {out} --column big --dtype Int8 --non-strict
  check "with --verify parquet the same cast passes (exit 0)" exit_is 0
  check "  ... every file replaced, same row counts" records "$work/d2.jsonl" --count "$nsub" --status ok --action replaced
  check "  ... and the values of big are now nulls (data lost)" pycheck nulls "$work/d.snap.json" "$d" big
}

case_e() {
  local d="$work/e"
  fresh e "$SUBSET"
  fan e -i --verify parquet -e parquet "$d" -- "$PY" "$T/cast_polars.py" {} {out} --column amount --dtype Float32
  check "exit 0" exit_is 0
  check "every file replaced" records "$work/e.jsonl" --count "$nsub" --status ok --action replaced --verify-contains parquet
  check "same row counts (pyarrow)" pycheck valid "$work/e.snap.json" "$d"
  check "amount is float32 everywhere" pycheck types "$d" amount float
  check "no temporary file left" no_temp_files "$d"
  # A strict cast of a column that does not fit fails in polars: failed, originals kept.
  fresh e2 "$SUBSET"
  fan e2 -i --verify parquet -e parquet "$d"2 -- "$PY" "$T/cast_polars.py" {} {out} --column big --dtype Int8
  check "strict cast of big to Int8: exit 1" exit_is 1
  check "  ... every file failed and kept" records "$work/e2.jsonl" --count "$nsub" --status failed --action kept
  check "  ... originals byte-identical (sha256)" pycheck identical "$work/e2.snap.json" "$d"2
  check "  ... no temporary file left" no_temp_files "$d"2
}

case_f() {
  local d="$work/f"
  fresh f "$SUBSET"
  # No --verify: the default for .parquet inputs (parquet) is in effect.
  fan f -i -e parquet "$d" -- "$PY" "$T/fail_half.py" {} {out}
  check "failing transform (half written, exit 1): exit 1" exit_is 1
  check "  ... every file failed and kept" records "$work/f.jsonl" --count "$nsub" --status failed --action kept
  check "  ... originals byte-identical (sha256)" pycheck identical "$work/f.snap.json" "$d"
  check "  ... every footer readable, same row counts" pycheck valid "$work/f.snap.json" "$d"
  check "  ... no temporary file left" no_temp_files "$d"

  # Ctrl-C while a slow transform runs with -j 2: sort_pyarrow.py --sleep writes one row group,
  # pauses, then writes the second. SIGINT goes to fanout after ~1 s, at a moment when an {out}
  # is half written (waiting up to 15 s more for one on a busy machine).
  local s="$work/sigint" pid t_int partial
  fresh sigint "$SUBSET"
  rc=0
  "$FANOUT" -j "$JOBS" --summary "$work/sigint.jsonl" -i --verify parquet -e parquet "$s" \
    -- "$PY" "$T/sort_pyarrow.py" {} {out} --sleep 0.6 >"$work/sigint.out" 2>"$work/sigint.err" &
  pid=$!
  sleep 1
  for _ in $(seq 150); do
    [ -n "$(find "$s" -name '.*.fanout-*' -size +0c)" ] && break
    sleep 0.1
  done
  partial=$(find "$s" -name '.*.fanout-*' -size +0c | wc -l)
  kill -INT "$pid"
  t_int=$SECONDS
  wait "$pid" || rc=$?
  say "    $(grep -m1 -E '^fanout: [0-9]+ files?:' "$work/sigint.err" || echo "fanout: (no end report)") [exit $rc; $partial half-written {out} at SIGINT]"
  check "SIGINT mid-run: exit 130" exit_is 130
  check "  ... a half-written {out} existed when SIGINT was sent" at_least "$partial" 1 "half-written {out}"
  check "  ... fanout stopped within 6 s" at_most $((SECONDS - t_int)) 6 "s after SIGINT"
  check "  ... journal complete: ok/interrupted/not_started, stopped_by SIGINT" records "$work/sigint.jsonl" \
    --count "$nsub" --status ok,interrupted,not_started --some-status interrupted \
    --stopped-by SIGINT --exit-code 130
  check "  ... ok records: replaced" records "$work/sigint.jsonl" --where-status ok --action replaced
  check "  ... interrupted records: kept" records "$work/sigint.jsonl" --where-status interrupted --action kept
  # not_started records of an in-place run currently carry no action (null): accepted here.
  check "  ... not_started records: kept or no action" records "$work/sigint.jsonl" --where-status not_started --action kept,null
  check "  ... replaced files sorted and valid, every other file byte-identical" \
    pycheck consistent "$work/sigint.snap.json" "$s" "$work/sigint.jsonl" --sorted
  check "  ... every footer readable, same row counts" pycheck valid "$work/sigint.snap.json" "$s"
  check "  ... no temporary file left" no_temp_files "$s"
  check "  ... no transform process left running" pycheck procs "$s"
}

case_g() {
  # fanout itself SIGKILLed mid-run: no cleanup can run. Every file must still be the original
  # or a complete new one, the leftover {out} files carry fanout's marker, and the next in-place
  # run on the tree removes them (and says so).
  local s="$work/kill" pid partial left
  fresh kill "$SUBSET"
  "$FANOUT" -j "$JOBS" -q -i --verify parquet -e parquet "$s" \
    -- "$PY" "$T/sort_pyarrow.py" {} {out} --sleep 0.6 >/dev/null 2>&1 &
  pid=$!
  sleep 1
  for _ in $(seq 150); do
    [ -n "$(find "$s" -name '.*.fanout-*' -size +0c)" ] && break
    sleep 0.1
  done
  partial=$(find "$s" -name '.*.fanout-*' -size +0c | wc -l)
  kill -KILL "$pid"
  wait "$pid" 2>/dev/null || true
  # The orphaned transforms finish on their own (nobody stops them once fanout is gone).
  for _ in $(seq 100); do
    "$PY" "$CHECK" procs "$s" >/dev/null 2>&1 && break
    sleep 0.1
  done
  left=$(find "$s" -name '.*.fanout-*' | wc -l)
  say "    fanout SIGKILLed with $partial half-written {out}; $left temporary file(s) left"
  check "SIGKILL mid-run: every file the original or a complete sorted one" \
    pycheck consistent "$work/kill.snap.json" "$s" --sorted
  check "  ... the leftovers carry fanout's marker (.NAME.fanout-PID-JOB.parquet)" at_least "$left" 1 "temporary file(s)"
  fan kill2 -i --verify parquet -e parquet "$s" -- "$PY" "$T/sort_pyarrow.py" {} {out}
  check "next in-place run: exit 0" exit_is 0
  check "  ... says it removed the stale temporary files" grep -m1 "removed .* temporary file" "$work/kill2.err"
  check "  ... every file replaced" records "$work/kill2.jsonl" --count "$nsub" --status ok --action replaced
  check "  ... every file sorted, same row counts" pycheck valid "$work/kill.snap.json" "$s" --sorted
  check "  ... no temporary file left" no_temp_files "$s"
}

case_h() {
  # A transform that writes {out} as a directory
  # (DuckDB PER_THREAD_OUTPUT or PARTITION_BY, pyarrow write_dataset, polars partition_by).
  local d="$work/h"
  fresh h "$SUBSET"
  fan h -i --verify parquet -e parquet "$d" -- "$PY" "$T/sort_duckdb.py" {} {out} --per-thread-output
  check "exit 1" exit_is 1
  check "every file invalid_output and kept" records "$work/h.jsonl" --count "$nsub" --status invalid_output --action kept
  check "originals byte-identical (sha256)" pycheck identical "$work/h.snap.json" "$d"
  check "no temporary file or directory left" no_temp_files "$d"
  fan h2 -i --verify parquet -e parquet "$d" -- "$PY" "$T/sort_duckdb.py" {} {out}
  check "the next run: exit 0, every file replaced" records "$work/h2.jsonl" --count "$nsub" --status ok --action replaced
  check "  ... and no temporary file or directory left (stale ones swept)" no_temp_files "$d"
}

case_i() {
  # The output of a non-strict cast that nulls
  # values is written without column statistics, so its footer has no null counts.
  local d="$work/i"
  fresh i "$SUBSET"
  fan i -i --verify parquet-nulls -e parquet "$d" -- "$PY" "$T/cast_polars.py" {} {out} \
    --column big --dtype Int8 --non-strict --no-statistics
  check "exit 1" exit_is 1
  check "no file replaced" records "$work/i.jsonl" --count "$nsub" --action kept
  check "originals byte-identical (sha256)" pycheck identical "$work/i.snap.json" "$d"
}

# j) the same rewrites as a) and c), handed to a Slurm cluster: 4 array tasks, each with its own
# --mem. Needs the one-node cluster of .ci/slurm-cluster.sh (FANOUT_SLURM_TESTS=1).
case_j() {
  if [ "${FANOUT_SLURM_TESTS:-}" != 1 ]; then
    say "    skipped: FANOUT_SLURM_TESTS is not set (start the cluster with .ci/slurm-cluster.sh up)"
    return 0
  fi
  local d="$work/j" h="$work/jh"
  fresh j
  fan_slurm() {
    local name=$1
    shift
    rc=0
    (cd "$work" && "$FANOUT" --executor slurm --shards 4 -j 1 --mem-per-job 600M \
      --plan-dir "$work/$name.plan" --summary "$work/$name.jsonl" "$@") >"$work/$name.out" 2>"$work/$name.err" || rc=$?
    say "    $(grep -m1 -E '^fanout: [0-9]+ files?:' "$work/$name.err" || echo "fanout: (no end report)") [exit $rc]"
  }
  fan_slurm j -i --verify parquet -e parquet "$d" -- "$PY" "$T/sort_pyarrow.py" {} {out}
  check "exit 0" exit_is 0
  check "every file replaced" records "$work/j.jsonl" --count "$NFILES" --status ok --action replaced --verify-contains parquet
  check "4 array tasks, all COMPLETED" tasks_completed "$work/j.jsonl" 4
  check "sorted by id, same rows, schema and compression (pyarrow)" \
    pycheck valid "$work/j.snap.json" "$d" --sorted --same-schema --same-compression
  check "no temporary file left" no_temp_files "$d"
  fresh jh "$SUBSET"
  fan_slurm jh -i --verify parquet-schema -e parquet "$h" -- "$PY" "$T/sort_duckdb_hive.py" {} {out}
  check "exit 1" exit_is 1
  check "every file kept: schema changed" records "$work/jh.jsonl" --count "$nsub" --status invalid_output --action kept --verify-contains "schema changed"
  check "originals byte-identical (sha256)" pycheck identical "$work/jh.snap.json" "$h"
  check "no temporary file left" no_temp_files "$h"
}

# --- new datasets from old ones (-o, -u): a hive-partitioned CSV dataset becomes parquet ----

# The CSV dataset, made once; the cases below only read it (or copy it).
csv_ready=0
csv_dataset() {
  if [ "$csv_ready" = 0 ]; then
    "$PY" "$T/gen_csv.py" "$work/csv" --files "$NCSV" >/dev/null
    csv_ready=1
  fi
}
NCSV="${E2E_CSV_FILES:-216}"
CONVERT="$T/csv_to_parquet.py"

case_k() {
  csv_dataset
  local engine
  for engine in duckdb polars; do
    fan "k-$engine" -e csv "$work/csv" -o "$work/k-$engine/{rel.}.parquet" -- "$PY" "$CONVERT" "$engine" {} {out}
    check "$engine: exit 0" exit_is 0
    check "  ... every target created, checked as parquet on its own" records "$work/k-$engine.jsonl" \
      --count "$NCSV" --status ok --action created --verify-contains "output only: the input is not parquet"
    check "  ... the targets mirror the CSVs, same row counts" pycheck mirror "$work/csv" "$work/k-$engine"
    check "  ... no temporary file left" no_temp_files "$work/k-$engine"
  done
  # Flattening a hive dataset: every part-K.csv would land on one flat/part-K.parquet.
  fan k-flat -e csv "$work/csv" -o "$work/flat/{/}" -- "$PY" "$CONVERT" polars {} {out}
  check "-o flat/{/}: exit 2" exit_is 2
  check "  ... names colliding inputs" grep -m1 -o "'[^']*part-0.csv' and '[^']*part-0.csv' both write '[^']*flat/part-0.csv'" "$work/k-flat.err"
  check "  ... before anything ran: no flat/ directory, no record" sh -c "! test -e '$work/flat' && ! grep -q '\"type\":\"file\"' '$work/k-flat.jsonl' 2>/dev/null && echo 'nothing written'"
}

case_l() {
  # fanout -u as the rule of a Makefile (e2e/Makefile).
  csv_dataset
  local raw="$work/make-raw" clean="$work/make-clean" one
  rm -rf "$raw" "$clean"
  cp -a "$work/csv" "$raw"
  mk() {
    rc=0
    make -s -f "$root/e2e/Makefile" RAW="$raw" CLEAN="$clean" FANOUT="$FANOUT" PY="$PY" \
      JOBS="$JOBS" SUMMARY="$work/$1.jsonl" >"$work/$1.out" 2>&1 || rc=$?
  }
  mk make1
  check "first make: exit 0" exit_is 0
  check "  ... converts everything" records "$work/make1.jsonl" --count "$NCSV" --status ok --action created
  check "  ... the targets mirror the CSVs" pycheck mirror "$raw" "$clean"
  mk make2
  check "second make: exit 0" exit_is 0
  check "  ... runs zero jobs: every input up to date" records "$work/make2.jsonl" --count "$NCSV" \
    --status skipped --action up_to_date --reason-contains "up to date"
  one="year=2023/month=07/part-4.csv"
  sleep 0.01
  touch "$raw/$one"
  mk make3
  check "after touching $one: exit 0" exit_is 0
  check "  ... exactly one job ran" records "$work/make3.jsonl" --where-status ok --count 1 --action replaced
  check "  ... and it was $one" grep -m1 -o "\"path\":\"$raw/$one\",\"status\":\"ok\"" "$work/make3.jsonl"
  check "  ... the rest up to date" records "$work/make3.jsonl" --where-status skipped --count $((NCSV - 1)) --action up_to_date
}

case_m() {
  # fanout SIGKILLed again and again at varying moments while it converts: every target is
  # absent or complete after each kill; then fanout -u finishes the rest and leaves no temporary.
  csv_dataset
  local clean="$work/m" i pid delay bad=0 kills=0 seen_partial=0
  rm -rf "$clean"
  for i in $(seq 24); do
    delay=$(awk -v i="$i" 'BEGIN { printf "%.2f", 0.15 + (i * 0.37) % 1.6 }')
    "$FANOUT" -j "$JOBS" -q -u -e csv "$work/csv" -o "$clean/{rel.}.parquet" \
      -- "$PY" "$CONVERT" polars {} {out} --sleep 0.3 >/dev/null 2>&1 &
    pid=$!
    sleep "$delay"
    [ -n "$(find "$clean" -name '.*.fanout-*' -size +0c 2>/dev/null)" ] && seen_partial=$((seen_partial + 1))
    kill -KILL "$pid" 2>/dev/null && kills=$((kills + 1))
    wait "$pid" 2>/dev/null || true
    # The orphaned converters finish on their own; wait for them before looking.
    for _ in $(seq 100); do
      "$PY" "$CHECK" procs "$clean" >/dev/null 2>&1 && break
      sleep 0.1
    done
    "$PY" "$CHECK" mirror "$work/csv" "$clean" --partial >"$work/m-$i.log" 2>&1 || bad=$((bad + 1))
  done
  say "    $kills kills; a half-written {out} was on disk at $seen_partial of them; $(find "$clean" -name '*.parquet' ! -name '.*' | wc -l) targets done, $(find "$clean" -name '.*.fanout-*' | wc -l) temporary file(s) left"
  check "SIGKILLed at least 20 times" at_least "$kills" 20 "kills"
  check "  ... a half-written {out} existed at some kills" at_least "$seen_partial" 1 "kills with a half-written {out}"
  check "  ... after every kill each target absent or complete" at_most "$bad" 0 "kills after which a target was partial"
  fan m-rest -u -e csv "$work/csv" -o "$clean/{rel.}.parquet" -- "$PY" "$CONVERT" polars {} {out}
  check "fanout -u afterwards: exit 0" exit_is 0
  check "  ... ran only what was missing" records "$work/m-rest.jsonl" --count "$NCSV" --status ok,skipped --action created,replaced,up_to_date
  check "  ... every target complete" pycheck mirror "$work/csv" "$clean"
  check "  ... no temporary file left" no_temp_files "$clean"
}

case_n() {
  # A failing converter and one whose output fails verification: the previous targets stay
  # byte-identical.
  csv_dataset
  local clean="$work/n"
  rm -rf "$clean"
  fan n0 -e csv "$work/csv" -g 'year=2023/**' -o "$clean/{rel.}.parquet" -- "$PY" "$CONVERT" polars {} {out}
  "$PY" "$CHECK" snapshot "$clean" "$work/n.snap.json" >/dev/null
  fan n1 -e csv "$work/csv" -g 'year=2023/**' -o "$clean/{rel.}.parquet" -- "$PY" "$CONVERT" polars {} {out} --fail
  check "failing converter (half an output, exit 1): exit 1" exit_is 1
  check "  ... every input failed, target kept" records "$work/n1.jsonl" --status failed --action kept --reason-contains "target left as it was"
  check "  ... previous targets byte-identical (sha256)" pycheck identical "$work/n.snap.json" "$clean"
  check "  ... no temporary file left" no_temp_files "$clean"
  fan n2 -e csv "$work/csv" -g 'year=2023/**' -o "$clean/{rel.}.parquet" -- "$PY" "$CONVERT" polars {} {out} --garbage
  check "converter that writes a CSV and exits 0: exit 1" exit_is 1
  check "  ... every input invalid_output, target kept" records "$work/n2.jsonl" --status invalid_output --action kept --verify-contains "output only"
  check "  ... previous targets byte-identical (sha256)" pycheck identical "$work/n.snap.json" "$clean"
  check "  ... no temporary file left" no_temp_files "$clean"
}

case_r() {
  # Remote datasets on a real S3 server (SeaweedFS): e2e/remote.sh starts it and runs its own
  # checks, read back with pyarrow's S3 file system.
  rc=0
  E2E_FANOUT="$FANOUT" E2E_JOBS="$JOBS" bash "$root/e2e/remote.sh" >"$work/r.log" 2>&1 || rc=$?
  sed 's/^/    /' "$work/r.log"
  check "remote.sh: every check passed" exit_is 0
}

run_case "a) pyarrow sort in place, all $NFILES files, --verify parquet" case_a
run_case "b) DuckDB sort (hive_partitioning=false, memory_limit), all $NFILES files, --verify parquet-schema" case_b
run_case "c) DuckDB hive-partition mistake caught by --verify parquet-schema ($SUBSET)" case_c
run_case "d) polars non-strict cast caught by --verify parquet-nulls ($SUBSET)" case_d
run_case "e) polars strict cast of a column that fits, --verify parquet ($SUBSET)" case_e
run_case "f) failing transform and Ctrl-C mid-run ($SUBSET)" case_f
run_case "g) fanout SIGKILLed mid-run, the next run sweeps the leftovers ($SUBSET)" case_g
run_case "h) {out} written as a directory is refused and removed ($SUBSET)" case_h
run_case "i) parquet-nulls on an output without null counts is refused ($SUBSET)" case_i
run_case "k) CSV -> parquet with DuckDB and polars, mirrored with {rel.}; flattening refused ($NCSV CSV files)" case_k
run_case "l) a Makefile whose rule is fanout -u -o: all, then nothing, then exactly the touched file" case_l
run_case "m) fanout -o SIGKILLed 24 times at varying moments, then fanout -u finishes the rest" case_m
run_case "n) failing converter and failed verification keep the previous targets" case_n
run_case "r) s3://: DuckDB and polars sort a hive-partitioned dataset in place; CSV -> parquet bucket to bucket with -u (SeaweedFS)" case_r
run_case "j) on Slurm: pyarrow sort of all $NFILES files and the DuckDB hive mistake, 4 array tasks" case_j

say ""
say "e2e: run time $((SECONDS - started)) s"
say "e2e: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
