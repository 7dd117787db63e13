#!/usr/bin/env python3
"""Turn bench/results/*.json (hyperfine exports) into results.md and results.svg.

Usage: python3 bench/report.py [RESULTS_DIR]   (default: bench/results)

Files named WORKLOAD__PART.json are grouped by WORKLOAD. machine.txt,
commands.tsv and checks.tsv, written by run.sh, are used when present.
Standard library only.
"""
import json
import os
import sys
from html import escape

TITLES = {
    "a-j2": "a) one `true` per file, {flat} files, -j 2",
    "a-j8": "a) one `true` per file, {flat} files, -j 8",
    "b-j2": "b) `echo` each *.parquet in a gitignored tree of {tree} files, -j 2",
    "c-j2": "c) `wc -c` over 100,000 small files, many files per command, -j 2",
    "d-warm": "d) the walk alone, warm cache: list the *.parquet of {tree} files",
    "d-cold": "d) the walk alone, cold cache (page cache dropped before each run)",
    "d-latency": "d) the walk alone, 1 ms added to every directory open (LD_PRELOAD)",
}
NOTES = {
    "a": "Walk a flat directory and spawn `true` once per file: per-job overhead "
    "(walk, fork/exec, wait, bookkeeping). The floor is the least a runner can do.",
    "c": "Batches: fanout -X, xargs -n 1000 and fd -X run many files per command; "
    "fanout -X also writes a record per file to --summary. Per-file fanout runs once.",
    "d": "Discovery alone: fanout's dry run (which goes through the run core), fd's listing "
    "and GNU find. fanout and fd read .gitignore; find does not.",
    "b": "Select *.parquet in a 1,000-directory tree and `echo` each. fanout and fd "
    "honour .gitignore (10% of the directories and *.tmp are ignored) and so run fewer "
    "jobs than find|xargs, which has no such notion: see the 'jobs' column.",
}


def fmt_time(s):
    if s >= 1:
        return f"{s:.3f} s"
    return f"{s * 1000:.1f} ms"


def fmt_ratio(x, ref):
    if ref is None or ref <= 0:
        return "—"
    return f"{x / ref:.2f}×"


def load(results_dir):
    workloads = {}  # name -> list of result dicts, in file/command order
    for fn in sorted(os.listdir(results_dir)):
        if not fn.endswith(".json"):
            continue
        w = fn[:-5].split("__", 1)[0]
        with open(os.path.join(results_dir, fn)) as f:
            data = json.load(f)
        for r in data.get("results", []):
            r["runs"] = len(r.get("times") or [])
            workloads.setdefault(w, []).append(r)
    return workloads


def read_kv(path):
    out = []
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                line = line.rstrip("\n")
                if ": " in line:
                    out.append(tuple(line.split(": ", 1)))
    return out


def read_tsv(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [line.rstrip("\n").split("\t") for line in f if line.strip()]


def find_ref(results, prefix):
    for r in results:
        if r["command"].startswith(prefix):
            return r["median"]
    return None


def workload_title(w, machine):
    flat = tree = "?"
    for k, v in machine:
        if k == "flat files":
            flat = f"{int(v):,}" if v.isdigit() else v
        elif k == "tree files":
            n = v.split()[0]
            tree = f"{int(n):,}" if n.isdigit() else n
    return TITLES.get(w, w).format(flat=flat, tree=tree)


def write_md(results_dir, workloads, machine, commands, checks):
    lines = ["# fanout benchmarks", ""]
    if machine:
        lines += ["| | |", "| --- | --- |"]
        lines += [f"| {escape(k)} | {escape(v)} |" for k, v in machine]
        lines.append("")
    lines += [
        "Times are hyperfine's wall-clock times over the runs shown (after one warm-up run). "
        "Ratios compare **medians**: above 1× is slower than the reference.",
        "",
    ]
    seen_notes = set()
    for w, results in workloads.items():
        lines += [f"## {workload_title(w, machine)}", ""]
        note = NOTES.get(w.split("-")[0])
        if note and w.split("-")[0] not in seen_notes:
            lines += [note, ""]
            seen_notes.add(w.split("-")[0])
        xargs = find_ref(results, "xargs")
        floor = find_ref(results, "floor")
        jobs = {}
        for row in checks:
            if len(row) == 4 and w.startswith(row[0]):
                jobs[row[1]] = row[3]
        lines += [
            "| command | mean ± σ | median | min … max | runs | jobs | vs xargs | vs floor |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for r in sorted(results, key=lambda r: r["median"]):
            name = r["command"]
            tool = name.split()[0] if not name.startswith("GNU parallel") else "parallel"
            cell = f"**{name}**" if name.startswith("fanout") else name
            lines.append(
                f"| {cell} | {fmt_time(r['mean'])} ± {fmt_time(r['stddev'] or 0)} "
                f"| {fmt_time(r['median'])} | {fmt_time(r['min'])} … {fmt_time(r['max'])} "
                f"| {r['runs']} | {jobs.get(tool, '—')} "
                f"| {fmt_ratio(r['median'], xargs)} | {fmt_ratio(r['median'], floor)} |"
            )
        lines.append("")
        cmds = [c for c in commands if len(c) == 3 and c[0] == w]
        if cmds:
            lines += ["<details><summary>command lines</summary>", "", "```sh"]
            lines += [f"# {name}\n{cmd}" for _, name, cmd in cmds]
            lines += ["```", "", "</details>", ""]
    lines += ["![medians per workload](results.svg)", ""]
    with open(os.path.join(results_dir, "results.md"), "w") as f:
        f.write("\n".join(lines))


def write_svg(results_dir, workloads, machine):
    width, label_w, right_pad = 1000, 190, 320
    bar_h, gap, head_h, panel_gap = 22, 6, 34, 22
    chart_w = width - label_w - right_pad
    colors = {"fanout": "#d9480f", "floor": "#495057", "xargs": "#1c7ed6"}
    other = "#74c0fc"
    out = []
    y = 46
    for w, results in workloads.items():
        rs = sorted(results, key=lambda r: r["median"])
        xargs, floor = find_ref(rs, "xargs"), find_ref(rs, "floor")
        top = max(r["median"] for r in rs) or 1
        out.append(
            f'<text x="12" y="{y + 20}" class="h">{escape(workload_title(w, machine).replace("`", ""))}</text>'
        )
        y += head_h
        for r in rs:
            name = r["command"]
            tool = name.split()[0]
            wbar = max(1.0, chart_w * r["median"] / top)
            c = colors.get(tool, other)
            ratios = []
            if xargs and not name.startswith("xargs"):
                ratios.append(f"{r['median'] / xargs:.2f}× xargs")
            if floor and not name.startswith("floor"):
                ratios.append(f"{r['median'] / floor:.2f}× floor")
            lab = fmt_time(r["median"]) + (f"  ({', '.join(ratios)})" if ratios else "")
            weight = ' font-weight="bold"' if tool == "fanout" else ""
            out.append(
                f'<text x="{label_w - 8}" y="{y + bar_h * 0.7:.1f}" text-anchor="end"{weight}>{escape(name)}</text>'
            )
            out.append(
                f'<rect x="{label_w}" y="{y}" width="{wbar:.1f}" height="{bar_h}" fill="{c}" rx="2">'
                f"<title>{escape(name)}: median {fmt_time(r['median'])}, mean {fmt_time(r['mean'])}</title></rect>"
            )
            # whisker: min .. max
            x0 = label_w + chart_w * r["min"] / top
            x1 = label_w + chart_w * r["max"] / top
            ym = y + bar_h / 2
            out.append(
                f'<line x1="{x0:.1f}" y1="{ym}" x2="{x1:.1f}" y2="{ym}" stroke="#212529" stroke-width="1"/>'
            )
            out.append(
                f'<text x="{max(label_w + wbar, x1) + 6:.1f}" y="{y + bar_h * 0.7:.1f}"{weight}>{escape(lab)}</text>'
            )
            y += bar_h + gap
        y += panel_gap
    height = y + 24
    info = ", ".join(f"{k} {v}" for k, v in machine if k in ("nproc", "memory", "kernel"))
    svg = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="13">',
        "<style>.h{font-size:15px;font-weight:bold} .s{fill:#495057;font-size:12px}</style>",
        f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
        '<text x="12" y="26" font-size="18" font-weight="bold">fanout benchmarks: median wall time (shorter is better)</text>',
        *out,
        f'<text x="12" y="{height - 10}" class="s">bars: median; line: min … max over the runs. '
        f"{escape(info)}</text>",
        "</svg>",
    ]
    with open(os.path.join(results_dir, "results.svg"), "w") as f:
        f.write("\n".join(svg) + "\n")


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    results_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "results")
    workloads = load(results_dir)
    if not workloads:
        sys.exit(f"report.py: no hyperfine *.json in {results_dir}")
    machine = read_kv(os.path.join(results_dir, "machine.txt"))
    commands = read_tsv(os.path.join(results_dir, "commands.tsv"))
    checks = read_tsv(os.path.join(results_dir, "checks.tsv"))
    write_md(results_dir, workloads, machine, commands, checks)
    write_svg(results_dir, workloads, machine)
    print(f"wrote {os.path.join(results_dir, 'results.md')} and results.svg")


if __name__ == "__main__":
    main()
