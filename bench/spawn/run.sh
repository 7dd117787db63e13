#!/usr/bin/env bash
# Alternating rounds with CPU counts: every command runs once per round, in the same order,
# ROUNDS times, under `perf stat` (task-clock: user + system CPU of the command and all its
# children; context switches). On a shared machine wall time follows the neighbours' load, CPU
# time much less: compare both. Prints a markdown table: medians of wall time and CPU, the
# median over rounds of each command's wall and CPU divided by the first command's (the
# reference, e.g. the floor), and per job (JOBS, default 5000): CPU beyond the reference's and
# context switches.
#
#   JOBS=5000 bash bench/spawn/run.sh ROUNDS NAME CMD [NAME CMD]... > table.md
set -euo pipefail
rounds="${1:?usage: run.sh ROUNDS NAME CMD [NAME CMD]...}"; shift
command -v perf >/dev/null || { echo "error: perf is required (apt-get install linux-perf)" >&2; exit 1; }
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
names=(); cmds=()
while (($#)); do names+=("$1"); cmds+=("$2"); shift 2; done
for ((r = 1; r <= rounds; r++)); do
    for i in "${!cmds[@]}"; do
        start=$(date +%s.%N)
        perf stat -x, -e task-clock,context-switches -o "$tmp/stat-$r-$i" bash -c "${cmds[i]}" >/dev/null 2>&1
        end=$(date +%s.%N)
        echo "$start $end" > "$tmp/wall-$r-$i"
    done
done
printf '%s\n' "${names[@]}" > "$tmp/names"
python3 - "$tmp" "$rounds" "${JOBS:-5000}" <<'PY'
import os, statistics as st, sys
d, n, jobs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
names = open(os.path.join(d, "names")).read().splitlines()
def stat(r, i):
    out = {}
    for line in open(os.path.join(d, f"stat-{r}-{i}")):
        f = line.strip().split(",")
        if len(f) > 2 and f[2] in ("task-clock", "context-switches"):
            out[f[2]] = float(f[0])
    a, b = map(float, open(os.path.join(d, f"wall-{r}-{i}")).read().split())
    return b - a, out["task-clock"] / 1000, out["context-switches"]
m = {i: [stat(r, i) for r in range(1, n + 1)] for i in range(len(names))}
ref = m[0]
print(f"| command | wall (median) | × {names[0]} wall | CPU user+sys (median) | × {names[0]} CPU | CPU per job beyond {names[0]} | context switches per job |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
for i, k in enumerate(names):
    w = [x[0] for x in m[i]]; c = [x[1] for x in m[i]]; cs = [x[2] for x in m[i]]
    wr = st.median(a[0] / b[0] for a, b in zip(m[i], ref))
    cr = st.median(a[1] / b[1] for a, b in zip(m[i], ref))
    extra = st.median((a[1] - b[1]) / jobs * 1e6 for a, b in zip(m[i], ref))
    print(f"| {k} | {st.median(w):.2f} s | {wr:.2f}× | {st.median(c):.2f} s | {cr:.2f}× | {extra:.0f} µs | {st.median(cs) / jobs:.1f} |")
print(f"\n{n} rounds, {jobs} jobs per run.")
PY
