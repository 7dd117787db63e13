#!/usr/bin/env python3
"""Converts one CSV file to parquet, as a user's script would, with DuckDB or polars.

    csv_to_parquet.py {duckdb|polars} IN.csv OUT.parquet [--sleep S] [--fail] [--garbage]

--sleep S pauses S seconds after writing half of the output's bytes (so a kill can catch a
half-written {out}); --fail writes half an output and exits 1; --garbage writes a file that is
not parquet and exits 0 (a broken tool that claims success).
"""
import argparse
import os
import sys
import time


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("engine", choices=["duckdb", "polars"])
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--sleep", type=float, default=0.0)
    ap.add_argument("--fail", action="store_true")
    ap.add_argument("--garbage", action="store_true")
    a = ap.parse_args()
    if a.garbage:
        with open(a.dst, "w") as f:
            f.write("id,name,amount\n")
        return
    if a.engine == "duckdb":
        import duckdb

        con = duckdb.connect()
        q = lambda s: "'" + s.replace("'", "''") + "'"  # noqa: E731
        # hive_partitioning=false: the year=/month= directories are not columns of the file.
        con.execute(
            f"COPY (FROM read_csv({q(a.src)}, header=true, hive_partitioning=false)) "
            f"TO {q(a.dst)} (FORMAT parquet)"
        )
    else:
        import polars as pl

        pl.read_csv(a.src).write_parquet(a.dst)
    if a.sleep or a.fail:
        # Rewrite the output in two halves, pausing between them: a partial file on disk.
        with open(a.dst, "rb") as f:
            data = f.read()
        with open(a.dst, "wb") as f:
            f.write(data[: len(data) // 2])
            f.flush()
            os.fsync(f.fileno())
            if a.fail:
                sys.exit(1)
            time.sleep(a.sleep)
            f.write(data[len(data) // 2 :])


if __name__ == "__main__":
    main()
