#!/usr/bin/env bash
# Batches with a record per file: `wc -c` over N small files (a few bytes each, 1,000 to a
# directory) at -j 2, many files per command. fanout -X with its journal (--summary: a record
# per file) and without, the old build against the new, and the peers: find | xargs -0 -P2
# -n 1000 (the reference of every ratio) and fd -X. Alternating rounds (bench/alternate/run.sh:
# every command once per round), so a noisy neighbour hits every runner alike; then the CPU
# time of each (perf stat task-clock, children included: wc's share is the same for all),
# alternating too, and the journals' sizes. Prints markdown.
#
#   OLD=/path/to/old/fanout bash bench/batch/run.sh > bench/results/batch.md
#
# NEW (default target/release/fanout), OLD (optional), ROUNDS (10), CPU_ROUNDS (5),
# SIZES ("100000 20000").
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
NEW="${NEW:-$root/target/release/fanout}"
OLD="${OLD:-}"
ROUNDS="${ROUNDS:-10}"
CPU_ROUNDS="${CPU_ROUNDS:-5}"
SIZES="${SIZES:-100000 20000}"
FD="$(command -v fd || command -v fdfind || true)"
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT

ver() { "$@" 2>&1 | head -1 || true; }
echo "# Batches with a record per file"
echo
echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "- machine: $(nproc) vCPU ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')), $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo), $(uname -sr), $(df -T "$tmp" | awk 'NR==2 {print $2}'); load average at the start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "- new: $NEW ($(ver "$NEW" --version), $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?'))"
[[ -n "$OLD" ]] && echo "- old: $OLD ($(ver "$OLD" --version))"
echo "- peers: $(ver xargs --version), $(ver find --version)${FD:+, $(ver "$FD" --version)}; $(ver hyperfine --version)"
echo "- rounds: $ROUNDS alternating (wall), $CPU_ROUNDS alternating (CPU)"
echo

for n in $SIZES; do
    data="$tmp/f$n"
    python3 - "$data" "$n" <<'PY'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    d = os.path.join(root, f"b{i // 1000:03}")
    if i % 1000 == 0:
        os.makedirs(d)
    with open(os.path.join(d, f"s{i:06}.txt"), "w") as f:
        f.write(f"{i}\n")
PY
    # Every file must have its record, ok (a short line of a batch says its status too).
    for bin in "$NEW" ${OLD:+"$OLD"}; do
        "$bin" -q --no-progress -X -j 2 --summary "$tmp/check.jsonl" "$data" -- wc -c > /dev/null
        ok="$(grep -c '"type":"file".*"status":"ok"' "$tmp/check.jsonl" || true)"
        [[ "$ok" == "$n" ]] || { echo "error: $bin recorded $ok of $n files ok" >&2; exit 1; }
        echo "- $n files, $(basename "$bin"): journal $(stat -c %s "$tmp/check.jsonl") bytes ($(( $(stat -c %s "$tmp/check.jsonl") / n )) a file)"
    done
    cmds=(
        "xargs -P2 -n1000"       "find $data -type f -print0 | xargs -0 -P2 -n 1000 wc -c"
    )
    [[ -n "$FD" ]] && cmds+=("fd -X -j2" "$FD . $data -t f -j 2 -X wc -c")
    cmds+=(
        "new -X --summary"       "$NEW -q --no-progress -X -j 2 --summary $tmp/new.jsonl $data -- wc -c"
        "new -X"                 "$NEW -q --no-progress -X -j 2 $data -- wc -c"
    )
    [[ -n "$OLD" ]] && cmds+=(
        "old -X --summary"       "$OLD -q --no-progress -X -j 2 --summary $tmp/old.jsonl $data -- wc -c"
        "old -X"                 "$OLD -q --no-progress -X -j 2 $data -- wc -c"
    )
    echo
    echo "## $n small files, wall time"
    echo
    bash "$here/../alternate/run.sh" "$ROUNDS" "${cmds[@]}"
    echo
    echo "## $n small files, CPU time (user + system, children included)"
    echo
    : > "$tmp/cpu.tsv"
    for ((r = 1; r <= CPU_ROUNDS; r++)); do
        for ((i = 0; i < ${#cmds[@]}; i += 2)); do
            perf stat -x, -e task-clock -o "$tmp/stat.txt" sh -c "${cmds[i+1]} > /dev/null" 2>/dev/null
            printf '%s\t%s\n' "${cmds[i]}" "$(grep task-clock "$tmp/stat.txt" | cut -d, -f1)" >> "$tmp/cpu.tsv"
        done
    done
    python3 - "$tmp/cpu.tsv" <<'PY'
import statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
names = list(dict.fromkeys(r[0] for r in rows))
ms = {k: [float(r[1]) for r in rows if r[0] == k] for k in names}
ref = names[0]
print(f"| command | median CPU | × {ref} (median of per-round ratios) |")
print("| --- | ---: | ---: |")
for k in names:
    ratios = [a / b for a, b in zip(ms[k], ms[ref])]
    print(f"| {k} | {statistics.median(ms[k]):.0f} ms | {statistics.median(ratios):.2f}× |")
PY
    rm -rf "$data"
done
