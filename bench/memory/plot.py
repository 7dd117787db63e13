#!/usr/bin/env python3
"""plot.py JOURNAL OUT.svg [--title TEXT]: running jobs and memory over time from a fanout
--summary journal (JSON Lines), as an SVG. Standard library only.

Top panel: the sampled total memory of running jobs (the final record's `timeline`), the memory
fanout had reserved for the jobs running at each moment (from the file records' `started_ms`,
`duration_ms` and `mem_reserved_bytes`), fanout's budget (`mem_limit_bytes`) and the cgroup's
limit (`cgroup_limit_bytes`) when there is one. Jobs killed by a signal are marked with a red x
where they ended. Bottom panel: the number of running jobs.
"""
import argparse
import json
import sys
from xml.sax.saxutils import escape

GIB = 1 << 30

W, H = 960, 600
LEFT, RIGHT = 70, 30
TOP_Y0, TOP_Y1 = 80, 380  # memory panel (pixel rows)
BOT_Y0, BOT_Y1 = 430, 550  # running jobs panel


def load(path):
    files, final = [], None
    with open(path) as f:
        for line in f:
            if not line.strip():
                continue
            r = json.loads(line)
            if r.get("type") == "file":
                files.append(r)
            elif r.get("type") == "summary":
                final = r
    if final is None:
        sys.exit(f"{path}: no final record (the run did not complete)")
    if "timeline" not in final:
        sys.exit(f"{path}: the final record has no timeline (fanout without memory sampling?)")
    return files, final


def reserved_steps(files):
    """[(seconds, reserved bytes)] step points: + at a job's start, - at its end."""
    events = []
    for r in files:
        s, d, m = r.get("started_ms"), r.get("duration_ms"), r.get("mem_reserved_bytes")
        if s is None or d is None or not m:
            continue
        events.append((s / 1000, m))
        events.append(((s + d) / 1000, -m))
    events.sort(key=lambda e: (e[0], e[1]))
    points, level = [(0.0, 0)], 0
    for t, delta in events:
        points.append((t, level))
        level += delta
        points.append((t, level))
    return points


def nice_step(span, target):
    raw = span / max(target, 1)
    for e in range(-3, 7):
        for m in (1, 2, 2.5, 5):
            step = m * 10**e
            if step >= raw:
                return step
    return raw


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("journal")
    ap.add_argument("out")
    ap.add_argument("--title", default=None)
    a = ap.parse_args()

    files, fin = load(a.journal)
    timeline = fin["timeline"]
    wall = max(fin.get("wall_ms", 0) / 1000, timeline[-1][0] / 1000 if timeline else 0, 1e-3)
    reserved = reserved_steps(files)
    budget = fin.get("mem_limit_bytes")
    cg_limit = fin.get("cgroup_limit_bytes")
    ymax_b = max(
        [budget or 0, cg_limit or 0, fin.get("max_memory_bytes", 0)]
        + [p[2] for p in timeline]
        + [b for _, b in reserved]
    )
    ymax = max(ymax_b * 1.08 / GIB, 0.1)
    jmax = max([p[1] for p in timeline] + [fin.get("max_running", 0), 1])

    def x(t):
        return LEFT + (W - LEFT - RIGHT) * t / wall

    def ym(gib):
        return TOP_Y1 - (TOP_Y1 - TOP_Y0) * gib / ymax

    def yj(n):
        return BOT_Y1 - (BOT_Y1 - BOT_Y0) * n / (jmax * 1.15)

    out = []
    add = out.append
    add(f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
        f'viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">')
    add(f'<rect width="{W}" height="{H}" fill="white"/>')
    title = a.title or f"fanout: running jobs and memory ({a.journal})"
    add(f'<text x="{W / 2}" y="24" text-anchor="middle" font-size="15" font-weight="bold">'
        f"{escape(title)}</text>")
    ok = fin.get("ok", 0)
    sub = (f"{fin.get('total', len(files))} jobs, {ok} ok, {fin.get('failed', 0)} failed; "
           f"wall {wall:.1f} s; at most {fin.get('max_running')} at once; "
           f"highest sampled total {fin.get('max_memory_bytes', 0) / GIB:.2f} GiB")
    add(f'<text x="{W / 2}" y="42" text-anchor="middle" fill="#444">{escape(sub)}</text>')

    # Axes and grid.
    step = nice_step(wall, 10)
    t = 0.0
    while t <= wall + 1e-9:
        for y0, y1 in ((TOP_Y0, TOP_Y1), (BOT_Y0, BOT_Y1)):
            add(f'<line x1="{x(t):.1f}" y1="{y0}" x2="{x(t):.1f}" y2="{y1}" stroke="#eee"/>')
        add(f'<text x="{x(t):.1f}" y="{BOT_Y1 + 16}" text-anchor="middle">{t:g}</text>')
        t += step
    add(f'<text x="{(LEFT + W - RIGHT) / 2}" y="{BOT_Y1 + 36}" text-anchor="middle">seconds</text>')
    gstep = nice_step(ymax, 6)
    g = 0.0
    while g <= ymax + 1e-9:
        add(f'<line x1="{LEFT}" y1="{ym(g):.1f}" x2="{W - RIGHT}" y2="{ym(g):.1f}" stroke="#eee"/>')
        add(f'<text x="{LEFT - 6}" y="{ym(g) + 4:.1f}" text-anchor="end">{g:g}</text>')
        g += gstep
    add(f'<text x="18" y="{(TOP_Y0 + TOP_Y1) / 2}" text-anchor="middle" '
        f'transform="rotate(-90 18 {(TOP_Y0 + TOP_Y1) / 2})">memory (GiB)</text>')
    jstep = max(1, int(nice_step(jmax, 4)))
    for n in range(0, jmax + 1, jstep):
        add(f'<line x1="{LEFT}" y1="{yj(n):.1f}" x2="{W - RIGHT}" y2="{yj(n):.1f}" stroke="#eee"/>')
        add(f'<text x="{LEFT - 6}" y="{yj(n) + 4:.1f}" text-anchor="end">{n}</text>')
    add(f'<text x="18" y="{(BOT_Y0 + BOT_Y1) / 2}" text-anchor="middle" '
        f'transform="rotate(-90 18 {(BOT_Y0 + BOT_Y1) / 2})">jobs</text>')
    for y0, y1 in ((TOP_Y0, TOP_Y1), (BOT_Y0, BOT_Y1)):
        add(f'<rect x="{LEFT}" y="{y0}" width="{W - LEFT - RIGHT}" height="{y1 - y0}" '
            f'fill="none" stroke="#888"/>')

    # Sampled memory: filled area.
    if timeline:
        pts = [(x(0), ym(0))] + [(x(p[0] / 1000), ym(p[2] / GIB)) for p in timeline]
        pts.append((x(timeline[-1][0] / 1000), ym(0)))
        add('<polygon fill="#4c78a8" fill-opacity="0.35" stroke="#4c78a8" stroke-width="1.2" '
            'points="' + " ".join(f"{px:.1f},{py:.1f}" for px, py in pts) + '"/>')
    # Reserved memory: step line.
    if len(reserved) > 1:
        add('<polyline fill="none" stroke="#f58518" stroke-width="1.5" points="'
            + " ".join(f"{x(t):.1f},{ym(b / GIB):.1f}" for t, b in reserved) + '"/>')
    # Limits.
    if budget:
        add(f'<line x1="{LEFT}" y1="{ym(budget / GIB):.1f}" x2="{W - RIGHT}" '
            f'y2="{ym(budget / GIB):.1f}" stroke="#e45756" stroke-width="1.5" stroke-dasharray="6 4"/>')
    if cg_limit:
        add(f'<line x1="{LEFT}" y1="{ym(cg_limit / GIB):.1f}" x2="{W - RIGHT}" '
            f'y2="{ym(cg_limit / GIB):.1f}" stroke="#222" stroke-width="1.5" stroke-dasharray="2 3"/>')
    # Jobs killed by a signal, where they ended.
    killed = [r for r in files if r.get("signal") and r.get("started_ms") is not None]
    for r in killed:
        t_end = (r["started_ms"] + (r.get("duration_ms") or 0)) / 1000
        cx, cy = x(t_end), TOP_Y1 - 8
        add(f'<path d="M{cx - 5:.1f},{cy - 5:.1f} l10,10 m0,-10 l-10,10" stroke="#d62728" '
            f'stroke-width="2"/>')

    # Running jobs: step line.
    if timeline:
        pts, prev = [], 0
        for p in timeline:
            t = p[0] / 1000
            pts.append((x(t), yj(prev)))
            pts.append((x(t), yj(p[1])))
            prev = p[1]
        add('<polyline fill="none" stroke="#54a24b" stroke-width="1.5" points="'
            + " ".join(f"{px:.1f},{py:.1f}" for px, py in pts) + '"/>')

    # Legend.
    items = [("rect", "#4c78a8", "sampled memory of jobs"),
             ("line", "#f58518", "reserved by fanout")]
    if budget:
        items.append(("dash", "#e45756", f"fanout budget {budget / GIB:.2f} GiB"))
    if cg_limit:
        items.append(("dot", "#222", f"cgroup limit {cg_limit / GIB:.2f} GiB"))
    if killed:
        items.append(("x", "#d62728", f"killed by a signal ({len(killed)})"))
    # One row between the subtitle and the top panel.
    lx, ly = LEFT, TOP_Y0 - 10
    for kind, color, label in items:
        if kind == "rect":
            add(f'<rect x="{lx}" y="{ly - 9}" width="18" height="10" fill="{color}" fill-opacity="0.35" stroke="{color}"/>')
        elif kind == "x":
            add(f'<path d="M{lx + 4},{ly - 9} l10,10 m0,-10 l-10,10" stroke="{color}" stroke-width="2"/>')
        else:
            dash = {"dash": ' stroke-dasharray="6 4"', "dot": ' stroke-dasharray="2 3"'}.get(kind, "")
            add(f'<line x1="{lx}" y1="{ly - 4}" x2="{lx + 18}" y2="{ly - 4}" stroke="{color}" stroke-width="2"{dash}/>')
        add(f'<text x="{lx + 24}" y="{ly}">{escape(label)}</text>')
        lx += 24 + 7 * len(label) + 12
    add(f'<line x1="{LEFT}" y1="{BOT_Y0 - 14}" x2="{LEFT + 18}" y2="{BOT_Y0 - 14}" stroke="#54a24b" stroke-width="2"/>')
    add(f'<text x="{LEFT + 24}" y="{BOT_Y0 - 10}">running jobs (sampled every 100 ms)</text>')
    add("</svg>")
    with open(a.out, "w") as f:
        f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
