#!/usr/bin/env python3
"""Turn bench/results/records.tsv (written by bench/records/run.sh) into records.md.

Usage: report.py RECORDS_TSV RECORDS_MD [TIMEOUT_SECONDS]

The TSV starts with `# key: value` lines (the machine and the binaries), then one row per
run: binary, case, inputs, run, seconds, exit_code, command. Exit code 124 or 137 means
`timeout` stopped the run. Standard library only.
"""

import csv
import statistics
import sys
from collections import defaultdict

TIMED_OUT = {124, 137}

THROUGHPUT = [
    ("resume", "`--resume J` skips every input, no journal written"),
    ("resume-small-journal", "the same from a one-record journal (no journal to load)"),
    ("resume-summary", "`--resume J --summary OUT` skips every input, OUT written"),
    ("dry-run", "`-n` prints every command"),
    ("resume-distinct", "`--resume J` over distinct files in a tree, no journal"),
    ("resume-distinct-summary", "`--resume J --summary OUT` over distinct files in a tree"),
]
STOPS = [
    ("sigint", "SIGINT once 2 jobs (`sleep 60`) run at `-j 2`"),
    ("halt-soon", "`--halt soon -j 2 -- false`: start to exit"),
    ("head-1", "`-j 2 -- echo … | head -1`: start to exit"),
]


def read(path):
    meta, runs = [], defaultdict(list)
    with open(path, newline="") as f:
        lines = []
        for line in f:
            if line.startswith("#"):
                meta.append(line[1:].strip())
            else:
                lines.append(line)
    for row in csv.DictReader(lines, delimiter="\t"):
        key = (row["case"], int(row["inputs"]), row["binary"])
        runs[key].append((float(row["seconds"]), int(row["exit_code"]), row["command"]))
    return meta, runs


def seconds(t):
    return f"{t * 1000:.0f} ms" if t < 1 else f"{t:.2f} s"


def rate(n, t):
    r = n / t
    return f"{r / 1e6:.2f} M/s" if r >= 1e6 else f"{r / 1e3:.0f} k/s"


def summary(runs, timeout):
    """Median, max and a note; None for the median if any run timed out."""
    codes = sorted({c for _, c, _ in runs})
    if any(c in TIMED_OUT for c in codes):
        return None, None, f"> {timeout} s (timed out)", codes
    times = [t for t, _, _ in runs]
    return statistics.median(times), max(times), None, codes


def throughput_table(runs, timeout, bins, out):
    has_old = "OLD" in bins
    head = ["case", "inputs", "NEW median (min … max)", "NEW records/s"]
    if has_old:
        head += ["OLD median", "OLD records/s", "NEW faster by"]
    out.append("| " + " | ".join(head) + " |")
    out.append("|" + " --- |" * len(head))
    for case, text in THROUGHPUT:
        for n in sorted({k[1] for k in runs if k[0] == case}):
            row = [text, f"{n:,}"]
            medians = {}
            for b in bins:
                r = runs.get((case, n, b))
                if not r:
                    row += ["not run", ""]
                    continue
                med, _, note, _ = summary(r, timeout)
                times = [t for t, _, _ in r]
                if note:
                    row += [note, f"< {rate(n, float(timeout))}"]
                elif b == "NEW" and len(times) > 1:
                    row += [f"{seconds(med)} ({seconds(min(times))} … {seconds(max(times))})",
                            rate(n, med)]
                else:
                    row += [seconds(med) + (f" ({len(times)} run)" if len(times) == 1 else ""),
                            rate(n, med)]
                medians[b] = med if not note else float("inf")
            if has_old:
                if medians.get("NEW") and medians.get("OLD"):
                    x = medians["OLD"] / medians["NEW"]
                    if x == float("inf"):
                        row.append(f"> {timeout / medians['NEW']:.0f}×")
                    else:
                        row.append(f"{x:.1f}×" if x < 10 else f"{x:.0f}×")
                else:
                    row.append("")
            out.append("| " + " | ".join(row) + " |")


def stop_table(runs, timeout, bins, out):
    head = ["case", "inputs queued", "NEW median", "NEW max", "NEW exit"]
    if "OLD" in bins:
        head += ["OLD median", "OLD max", "OLD exit"]
    out.append("| " + " | ".join(head) + " |")
    out.append("|" + " --- |" * len(head))
    for case, text in STOPS:
        for n in sorted({k[1] for k in runs if k[0] == case}):
            row = [text, f"{n:,}"]
            for b in bins:
                r = runs.get((case, n, b))
                if not r:
                    row += ["not run", "", ""]
                    continue
                med, mx, note, codes = summary(r, timeout)
                count = f" ({len(r)} run{'s' * (len(r) > 1)})"
                if note:
                    row += [note + count, "", "/".join(map(str, codes))]
                else:
                    row += [seconds(med) + count, seconds(mx), "/".join(map(str, codes))]
            out.append("| " + " | ".join(row) + " |")


def main():
    tsv, md = sys.argv[1], sys.argv[2]
    timeout = int(sys.argv[3]) if len(sys.argv) > 3 else 60
    meta, runs = read(tsv)
    bins = [b for b in ("NEW", "OLD") if any(k[2] == b for k in runs)]
    out = ["# fanout: records that need no process, and stopping with inputs queued", ""]
    out += ["| | |", "| --- | --- |"]
    for m in meta:
        k, _, v = m.partition(": ")
        out.append(f"| {k} | {v.replace('|', '/')} |")
    out += ["", "Made by `bench/records/run.sh`; raw runs in `records.tsv`. Inputs are read from",
            "standard input: one empty file's path repeated N times (fanout does not deduplicate",
            "standard input), except the *distinct files* rows. A resume reads a journal of N",
            "records written by fanout itself, so its time includes loading that journal.",
            "Times are wall-clock; records/s = inputs / median time.", "",
            "## Records without a process", ""]
    throughput_table(runs, timeout, bins, out)
    out += ["", "## Stopping with inputs queued", "",
            "Time until fanout has exited. For SIGINT: from the signal, sent to fanout alone",
            "once two jobs run (as a terminal's Ctrl-C: jobs have their own process groups).",
            "Exit codes: 130 SIGINT, 1 a job failed, 141 closed stdout.", ""]
    stop_table(runs, timeout, bins, out)
    out += ["", "## Commands", "", "| case | command |", "| --- | --- |"]
    seen = {}
    for (case, _, _), r in runs.items():
        seen.setdefault(case, r[0][2])
    for case, cmd in seen.items():
        out.append(f"| {case} | `{cmd.replace('|', chr(92) + '|')}` |")
    with open(md, "w") as f:
        f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
