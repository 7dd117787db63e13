#!/usr/bin/env bash
# Alternating rounds: every command runs once per round, in the same order, ROUNDS times
# (hyperfine --runs 1 per round), so a noisy neighbour hits every runner alike. Prints a
# markdown table: median wall time, and the median over rounds of each command's time
# divided by the first command's time in the same round (the reference, e.g. the floor).
#
#   bash bench/alternate/run.sh ROUNDS NAME CMD [NAME CMD]... > table.md
set -euo pipefail
rounds="${1:?usage: run.sh ROUNDS NAME CMD [NAME CMD]...}"; shift
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
args=()
while (($#)); do args+=(--command-name "$1" "$2"); shift 2; done
for ((r = 1; r <= rounds; r++)); do
    hyperfine --runs 1 --output=null --style none --export-json "$tmp/round-$r.json" "${args[@]}" >/dev/null 2>&1
done
python3 - "$tmp" "$rounds" <<'PY'
import json, os, statistics, sys
d, n = sys.argv[1], int(sys.argv[2])
rounds = [json.load(open(os.path.join(d, f"round-{r}.json")))["results"] for r in range(1, n + 1)]
names = [x["command"] for x in rounds[0]]
times = {k: [next(x["mean"] for x in rr if x["command"] == k) for rr in rounds] for k in names}
ref = names[0]
print(f"| command | median | min … max | × {ref} (median of per-round ratios) |")
print("| --- | ---: | ---: | ---: |")
for k in names:
    ratios = [a / b for a, b in zip(times[k], times[ref])]
    print(f"| {k} | {statistics.median(times[k]):.3f} s | {min(times[k]):.3f} … {max(times[k]):.3f} s | {statistics.median(ratios):.2f}× |")
print(f"\n{n} rounds.")
PY
