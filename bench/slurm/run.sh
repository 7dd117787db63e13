#!/usr/bin/env bash
# The cost of handing a run to Slurm: the same 200 files, each job `sleep 0.05`, run
#   - locally:                   fanout -j 2
#   - as a job array by hand:    split the list, sbatch --wait --array, xargs in each task
#                                (what people write today; no per-file record, no output relay)
#   - with fanout:               fanout --executor slurm --shards 2
# on the one-node cluster of .ci/slurm-cluster.sh (start it first). Uses hyperfine; writes
# bench/slurm/results.md. Env: RUNS (default 5), FILES (default 200).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
RUNS=${RUNS:-5}
FILES=${FILES:-200}
command -v hyperfine >/dev/null || { echo "hyperfine is missing (apt-get install hyperfine)" >&2; exit 2; }
sinfo -h >/dev/null 2>&1 || { echo "no Slurm cluster: run .ci/slurm-cluster.sh up as root" >&2; exit 2; }
cargo build --release --quiet --manifest-path "$root/Cargo.toml"
FANOUT="$root/target/release/fanout"

work="$(mktemp -d /tmp/fanout-bench-slurm.XXXXXX)"
trap 'rm -rf "$work"' EXIT
cd "$work"
mkdir -p data
for i in $(seq 1 "$FILES"); do echo "$i" >"data/f$i.txt"; done
cat >by-hand.sh <<'SH'
#!/bin/sh
# one array task: its slice of the list, two at a time
exec xargs -a "list.$SLURM_ARRAY_TASK_ID" -d '\n' -P 1 -I{} sh -c 'sleep 0.05; echo "$1"' _ {}
SH
find data -type f | sort >list
split -n l/2 -d -a 1 list list.

hyperfine --runs "$RUNS" --warmup 1 --export-markdown "$root/bench/slurm/results.md" \
  --prepare 'rm -rf .fanout' \
  -n "local: fanout -j 2" "$FANOUT -q -j 2 data -- sh -c 'sleep 0.05; echo \$1' _ {} >/dev/null" \
  -n "by hand: sbatch --wait --array=0-1 + xargs" "sbatch --quiet --wait --array=0-1 --mem=200M -o /dev/null --wrap 'sh by-hand.sh' >/dev/null" \
  -n "fanout --executor slurm --shards 2" "$FANOUT -q --executor slurm --shards 2 --mem-per-job 100M data -- sh -c 'sleep 0.05; echo \$1' _ {} >/dev/null"
{
  echo
  echo "$FILES files, each job \`sleep 0.05\` (a 5 s floor at 2 jobs at once); one-node cluster of"
  echo ".ci/slurm-cluster.sh ($(nproc) CPUs), Slurm $(sinfo -V | awk '{print $2}'), $(date -u +%Y-%m-%d)."
} >>"$root/bench/slurm/results.md"
cat "$root/bench/slurm/results.md"
