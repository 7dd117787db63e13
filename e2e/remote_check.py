#!/usr/bin/env python3
"""Checks of the remote end-to-end case (e2e/remote.sh), reading the store with pyarrow's S3
file system (an independent client), and fanout's journals.

    remote_check.py put DIR s3://BUCKET/PREFIX/      upload every file under DIR (boto3)
    remote_check.py snapshot s3://BUCKET/PREFIX/ FILE   each parquet object's rows and schema
    remote_check.py sorted s3://BUCKET/PREFIX/ SNAP --by C [--descending]
                                                     same objects, rows and schema; sorted by C
    remote_check.py parquet s3://BUCKET/PREFIX/ N ROWS   N parquet objects holding ROWS rows
    remote_check.py ran JOURNAL N                    the journal's jobs: exactly N ran (ok), the
                                                     rest skipped, none failed

The store comes from AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION.
Prints one line saying what held; exit 1 with the reasons when something did not.
"""
import json
import os
import sys


def fs():
    import pyarrow.fs

    e = os.environ
    return pyarrow.fs.S3FileSystem(
        endpoint_override=e["AWS_ENDPOINT_URL"], region=e.get("AWS_REGION", "us-east-1")
    )


def objects(url):
    import pyarrow.fs

    base = url[len("s3://"):].rstrip("/")
    infos = fs().get_file_info(pyarrow.fs.FileSelector(base, recursive=True))
    return sorted(i.path for i in infos if i.type == pyarrow.fs.FileType.File)


def table(path):
    import pyarrow.parquet as pq

    return pq.read_table(path, filesystem=fs())


def schema(t):
    """A table's columns and types; polars writes strings as large_string, the same column."""
    return str(t.schema.remove_metadata()).replace("large_string", "string")


def fail(problems):
    for p in problems[:20]:
        print(p)
    sys.exit(1)


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "put":
        import boto3
        import botocore.config

        e = os.environ
        c = boto3.client("s3", endpoint_url=e["AWS_ENDPOINT_URL"], region_name=e.get("AWS_REGION", "us-east-1"),
                         config=botocore.config.Config(s3={"addressing_style": "path"}))
        src, url = args
        bucket, _, prefix = url[len("s3://"):].partition("/")
        n = 0
        for d, _, files in os.walk(src):
            for f in files:
                rel = os.path.relpath(os.path.join(d, f), src)
                c.upload_file(os.path.join(d, f), bucket, prefix + rel)
                n += 1
        print(f"{n} objects uploaded to {url}")
    elif cmd == "snapshot":
        url, out = args
        snap = {}
        for p in objects(url):
            t = table(p)
            snap[p] = {"rows": t.num_rows, "schema": schema(t)}
        with open(out, "w") as f:
            json.dump(snap, f)
        print(f"{len(snap)} objects, {sum(v['rows'] for v in snap.values())} rows")
    elif cmd == "sorted":
        url, snap_file, by = args[0], args[1], args[args.index("--by") + 1]
        descending = "--descending" in args
        with open(snap_file) as f:
            snap = json.load(f)
        now = objects(url)
        problems = []
        if now != sorted(snap):
            problems.append(f"objects differ: {sorted(set(now) ^ set(snap))[:5]}")
        for p in now:
            t = table(p)
            want = snap.get(p, {})
            if t.num_rows != want.get("rows"):
                problems.append(f"{p}: {t.num_rows} rows, was {want.get('rows')}")
            if schema(t) != want.get("schema"):
                problems.append(f"{p}: schema changed: {t.schema}")
            col = t.column(by).to_pylist()
            if col != sorted(col, reverse=descending):
                problems.append(f"{p}: not sorted by {by}{' descending' if descending else ''}")
        if problems:
            fail(problems)
        print(f"{len(now)} objects sorted by {by}{' descending' if descending else ''}, same rows and schema")
    elif cmd == "parquet":
        url, n, rows = args[0], int(args[1]), int(args[2])
        now = objects(url)
        total = sum(table(p).num_rows for p in now)
        if len(now) != n or total != rows:
            fail([f"{len(now)} objects with {total} rows, expected {n} with {rows}"])
        print(f"{n} parquet objects, {rows} rows")
    elif cmd == "ran":
        journal, n = args[0], int(args[1])
        with open(journal) as f:
            recs = [json.loads(l) for l in f if l.strip()]
        files = [r for r in recs if r.get("type") == "file"]
        ok = [r for r in files if r["status"] == "ok"]
        other = [r for r in files if r["status"] not in ("ok", "skipped")]
        if len(ok) != n or other:
            fail([f"{len(ok)} ran, expected {n}; not ok/skipped: {[(r['path'], r['status']) for r in other][:5]}"])
        print(f"{len(ok)} of {len(files)} ran, the rest skipped")
    else:
        sys.exit(f"remote_check.py: unknown command {cmd}")


if __name__ == "__main__":
    main()
