#!/usr/bin/env python3
"""Checks for the end-to-end suite: what the dataset and fanout's --summary journal look like.

    check.py snapshot DIR SNAP.json
        sha256, row count, physical schema and codec of every (non-hidden) .parquet under DIR
    check.py identical SNAP.json DIR
        every file byte-identical to the snapshot, and no file added or removed
    check.py valid SNAP.json DIR [--sorted] [--same-schema] [--same-compression]
        every file fully readable by pyarrow with its snapshot row count (and sorted by id, ...)
    check.py consistent SNAP.json DIR [SUMMARY.jsonl] [--sorted]
        files whose record says "replaced" are valid (and sorted); every other file, recorded or
        not, is byte-identical to the snapshot. Without SUMMARY: every file is either
        byte-identical or valid (and sorted)
    check.py records SUMMARY.jsonl [--count N] [--status S,..] [--action A,..] [--some-status S]
                     [--verify-contains TEXT]... [--reason-contains TEXT]... [--exit-code N]
                     [--stopped-by SIGNAL] [--where-status S,..]
        every file record has one of the statuses/actions (`null`: no action) and the texts;
        the final record is there and complete. --where-status: only the records with these
        statuses are checked (and counted)
    check.py nulls SNAP.json DIR COLUMN
        the column has more nulls than in the snapshot in at least one file (prints the totals)
    check.py types DIR COLUMN TYPE
        the column has the arrow type TYPE (e.g. float) in every file
    check.py columns DIR NAME,...
        every file has these columns (among others)
    check.py mirror RAW CLEAN [--partial]
        CLEAN mirrors RAW: for every RAW/REL.csv exactly one CLEAN/REL.parquet, fully readable by
        pyarrow, with as many rows as the CSV; no other (non-hidden) file in CLEAN. --partial:
        a target may also be absent (never partial, never unreadable)
    check.py procs TEXT
        no running process has TEXT in one of its arguments

Exit 0 when the check holds, else 1 with the first problems on stderr.
"""
import argparse
import hashlib
import json
import os
import sys

import pyarrow.compute as pc
import pyarrow.parquet as pq


def parquet_files(root):
    out = []
    for d, dirs, files in os.walk(root):
        dirs[:] = sorted(x for x in dirs if not x.startswith("."))
        for f in sorted(files):
            if f.endswith(".parquet") and not f.startswith("."):
                out.append(os.path.relpath(os.path.join(d, f), root))
    return out


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def describe(path):
    md = pq.ParquetFile(path).metadata
    schema = [[md.schema.column(i).path, md.schema.column(i).physical_type] for i in range(md.num_columns)]
    codec = md.row_group(0).column(0).compression if md.num_row_groups else None
    nulls = {}
    for i in range(md.num_columns):
        total = 0
        for g in range(md.num_row_groups):
            st = md.row_group(g).column(i).statistics
            total += st.null_count if st is not None and st.has_null_count else 0
        nulls[md.schema.column(i).path] = total
    return {"rows": md.num_rows, "schema": schema, "codec": codec, "nulls": nulls}


def load(snap):
    with open(snap) as f:
        return json.load(f)


class Problems:
    def __init__(self):
        self.items = []

    def add(self, msg):
        self.items.append(msg)

    def finish(self, ok_msg):
        if self.items:
            for m in self.items[:15]:
                print(m, file=sys.stderr)
            if len(self.items) > 15:
                print(f"... and {len(self.items) - 15} more", file=sys.stderr)
            sys.exit(1)
        print(ok_msg)


def same_set(snap, root, probs):
    now = set(parquet_files(root))
    for f in sorted(set(snap) - now):
        probs.add(f"{f}: missing")
    for f in sorted(now - set(snap)):
        probs.add(f"{f}: a file that was not there before")


def check_valid(rel, root, want, probs, sorted_=False, same_schema=False, same_codec=False):
    path = os.path.join(root, rel)
    try:
        table = pq.ParquetFile(path).read()
        got = describe(path)
    except Exception as e:  # noqa: BLE001 - any failure to read is the finding
        probs.add(f"{rel}: not readable by pyarrow: {e}")
        return False
    ok = True
    if table.num_rows != want["rows"] or got["rows"] != want["rows"]:
        probs.add(f"{rel}: {table.num_rows} rows, expected {want['rows']}")
        ok = False
    if sorted_:
        ids = table.column("id").combine_chunks()
        if len(ids) > 1 and not pc.all(pc.greater(ids[1:], ids[:-1])).as_py():
            probs.add(f"{rel}: not sorted by id")
            ok = False
    if same_schema and got["schema"] != want["schema"]:
        probs.add(f"{rel}: schema {got['schema']} != {want['schema']}")
        ok = False
    if same_codec and got["codec"] != want["codec"]:
        probs.add(f"{rel}: compression {got['codec']} != {want['codec']}")
        ok = False
    return ok


def records(summary):
    files, final = [], None
    with open(summary) as f:
        for line in f:
            r = json.loads(line)
            if r.get("type") == "file":
                files.append(r)
            elif r.get("type") == "summary":
                final = r
    return files, final


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)

    def command(name, *positional, flags=(), options=()):
        p = sub.add_parser(name)
        for arg in positional:
            p.add_argument(arg)
        for flag in flags:
            p.add_argument(flag, action="store_true")
        for opt in options:
            p.add_argument(opt)
        return p

    command("snapshot", "dir", "snap")
    command("identical", "snap", "dir")
    command("valid", "snap", "dir", flags=("--sorted", "--same-schema", "--same-compression"))
    p = command("consistent", "snap", "dir", flags=("--sorted",))
    p.add_argument("summary", nargs="?")
    p = command("records", "summary", options=("--status", "--action", "--some-status", "--where-status",
                                                "--stopped-by"))
    p.add_argument("--count", type=int)
    p.add_argument("--exit-code", type=int)
    p.add_argument("--verify-contains", action="append", default=[])
    p.add_argument("--reason-contains", action="append", default=[])
    command("nulls", "snap", "dir", "column")
    command("types", "dir", "column", "type")
    command("procs", "text")
    command("mirror", "raw", "clean", flags=("--partial",))
    command("columns", "dir", "names")
    a = ap.parse_args()
    probs = Problems()

    if a.cmd == "snapshot":
        snap = {}
        for rel in parquet_files(a.dir):
            path = os.path.join(a.dir, rel)
            snap[rel] = {"sha256": sha256(path), **describe(path)}
        with open(a.snap, "w") as f:
            json.dump(snap, f, indent=1, sort_keys=True)
        print(f"snapshot: {len(snap)} files, {sum(v['rows'] for v in snap.values())} rows")

    elif a.cmd == "identical":
        snap = load(a.snap)
        same_set(snap, a.dir, probs)
        for rel, want in snap.items():
            path = os.path.join(a.dir, rel)
            if os.path.exists(path) and sha256(path) != want["sha256"]:
                probs.add(f"{rel}: changed (sha256 differs)")
        probs.finish(f"identical: {len(snap)} files byte-identical to the snapshot")

    elif a.cmd == "valid":
        snap = load(a.snap)
        same_set(snap, a.dir, probs)
        for rel, want in snap.items():
            check_valid(rel, a.dir, want, probs, a.sorted, a.same_schema, a.same_compression)
        extra = "".join(f", {w}" for w, on in [("sorted by id", a.sorted), ("same schema", a.same_schema),
                                              ("same compression", a.same_compression)] if on)
        probs.finish(f"valid: {len(snap)} files readable, same row counts{extra}")

    elif a.cmd == "consistent":
        snap = load(a.snap)
        same_set(snap, a.dir, probs)
        action = {}
        if a.summary:
            files, _ = records(a.summary)
            for r in files:
                action[os.path.relpath(r["path"], a.dir)] = r.get("action")
        n_rep = n_kept = 0
        for rel, want in snap.items():
            path = os.path.join(a.dir, rel)
            if not os.path.exists(path):
                continue
            if not a.summary:
                # No journal to go by: the file is either the original or a complete new one.
                if sha256(path) == want["sha256"]:
                    n_kept += 1
                elif check_valid(rel, a.dir, want, probs, sorted_=a.sorted):
                    n_rep += 1
            elif action.get(rel) == "replaced":
                n_rep += 1
                if sha256(path) == want["sha256"]:
                    probs.add(f"{rel}: recorded replaced but byte-identical to the original")
                check_valid(rel, a.dir, want, probs, sorted_=a.sorted)
            else:
                n_kept += 1
                if sha256(path) != want["sha256"]:
                    probs.add(f"{rel}: recorded {action.get(rel) or 'nothing'} but changed")
        probs.finish(f"consistent: {n_rep} replaced and valid, {n_kept} byte-identical originals")

    elif a.cmd == "records":
        files, final = records(a.summary)
        if final is None or final.get("complete") is not True:
            probs.add(f"no complete final record in {a.summary}")
        if a.where_status:
            files = [r for r in files if r.get("status") in a.where_status.split(",")]
        if a.count is not None and len(files) != a.count:
            where = f" with status {a.where_status}" if a.where_status else ""
            probs.add(f"{len(files)} file records{where}, expected {a.count}")
        statuses = a.status.split(",") if a.status else None
        actions = a.action.split(",") if a.action else None
        for r in files:
            where = f"{r.get('path')}: {json.dumps({k: r.get(k) for k in ('status', 'action', 'verify', 'reason')})}"
            if statuses and r.get("status") not in statuses:
                probs.add(f"status not in {statuses}: {where}")
            if actions and (r.get("action") or "null") not in actions:
                probs.add(f"action not in {actions}: {where}")
            for text in a.verify_contains:
                if text not in (r.get("verify") or ""):
                    probs.add(f"verify lacks {text!r}: {where}")
            for text in a.reason_contains:
                if text not in (r.get("reason") or ""):
                    probs.add(f"reason lacks {text!r}: {where}")
        if a.some_status and not any(r.get("status") == a.some_status for r in files):
            probs.add(f"no record has status {a.some_status}")
        if final is not None:
            if a.exit_code is not None and final.get("exit_code") != a.exit_code:
                probs.add(f"final record exit_code {final.get('exit_code')}, expected {a.exit_code}")
            if a.stopped_by is not None and final.get("stopped_by") != a.stopped_by:
                probs.add(f"final record stopped_by {final.get('stopped_by')}, expected {a.stopped_by}")
        counts = {}
        for r in files:
            key = f"{r.get('status')}/{r.get('action')}"
            counts[key] = counts.get(key, 0) + 1
        probs.finish("records: " + (", ".join(f"{v} {k}" for k, v in sorted(counts.items())) or "none"))

    elif a.cmd == "nulls":
        snap = load(a.snap)
        before = sum(v["nulls"].get(a.column, 0) for v in snap.values())
        after = sum(describe(os.path.join(a.dir, rel))["nulls"].get(a.column, 0) for rel in snap)
        if after <= before:
            probs.add(f"column {a.column}: {after} nulls now, {before} before: no nulls gained")
        probs.finish(f"nulls: column {a.column} had {before} nulls, now {after}")

    elif a.cmd == "types":
        files = parquet_files(a.dir)
        for rel in files:
            t = str(pq.read_schema(os.path.join(a.dir, rel)).field(a.column).type)
            if t != a.type:
                probs.add(f"{rel}: {a.column} is {t}, expected {a.type}")
        probs.finish(f"types: {a.column} is {a.type} in {len(files)} files")

    elif a.cmd == "columns":
        files = parquet_files(a.dir)
        want = a.names.split(",")
        for rel in files:
            names = pq.read_schema(os.path.join(a.dir, rel)).names
            if any(n not in names for n in want):
                probs.add(f"{rel}: columns {names} lack one of {want}")
        probs.finish(f"columns: {', '.join(want)} present in {len(files)} files")

    elif a.cmd == "mirror":
        import csv

        want = {}
        for d, dirs, files in os.walk(a.raw):
            dirs[:] = [x for x in dirs if not x.startswith(".")]
            for f in files:
                if f.endswith(".csv") and not f.startswith("."):
                    rel = os.path.relpath(os.path.join(d, f), a.raw)
                    with open(os.path.join(d, f), newline="") as fh:
                        want[rel[: -len(".csv")] + ".parquet"] = sum(1 for _ in csv.reader(fh)) - 1
        have = set()
        for d, dirs, files in os.walk(a.clean):
            for f in files:
                if not f.startswith("."):
                    have.add(os.path.relpath(os.path.join(d, f), a.clean))
        for rel in sorted(have - set(want)):
            probs.add(f"{rel}: in {a.clean} but no CSV mirrors it")
        missing = sorted(set(want) - have)
        if missing and not a.partial:
            probs.add(f"{len(missing)} targets missing, e.g. {missing[0]}")
        rows = 0
        for rel in sorted(have & set(want)):
            try:
                n = pq.read_table(os.path.join(a.clean, rel)).num_rows
            except Exception as e:  # noqa: BLE001 - any unreadable target is a failure
                probs.add(f"{rel}: unreadable: {e}")
                continue
            rows += n
            if n != want[rel]:
                probs.add(f"{rel}: {n} rows, its CSV has {want[rel]}")
        probs.finish(f"mirror: {len(have & set(want))} of {len(want)} targets complete, {rows} rows, "
                     f"each with its CSV's row count")

    elif a.cmd == "procs":
        me = os.getpid()
        for pid in os.listdir("/proc"):
            if not pid.isdigit() or int(pid) == me:
                continue
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    argv = f.read().split(b"\0")
            except OSError:
                continue
            if any(a.text.encode() in w for w in argv):
                probs.add(f"process {pid} still running: {b' '.join(argv).decode(errors='replace')}")
        probs.finish(f"procs: no process mentions {a.text}")


if __name__ == "__main__":
    main()
