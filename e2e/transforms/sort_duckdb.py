#!/usr/bin/env python3
"""Sorts a parquet file by `id` with DuckDB, the careful way.

    sort_duckdb.py IN OUT [--memory-limit 256MB] [--per-thread-output]

hive_partitioning=false keeps DuckDB from turning the `year=…/month=…` directories of IN's path
into extra columns; memory_limit and threads=1 keep each of fanout's parallel jobs small.
--per-thread-output is a mistake kept for a test: with PER_THREAD_OUTPUT DuckDB writes OUT as a
directory of parquet files instead of one file.
"""
import argparse

import duckdb


def sql_string(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("input")
    ap.add_argument("output")
    ap.add_argument("--memory-limit", default="256MB")
    ap.add_argument("--per-thread-output", action="store_true")
    args = ap.parse_args()
    options = "FORMAT parquet" + (", PER_THREAD_OUTPUT true" if args.per_thread_output else "")

    con = duckdb.connect()
    con.execute(f"SET memory_limit = {sql_string(args.memory_limit)}")
    con.execute("SET threads = 1")
    con.execute(
        f"COPY (SELECT * FROM read_parquet({sql_string(args.input)}, hive_partitioning = false) "
        f"ORDER BY id) TO {sql_string(args.output)} ({options})"
    )


if __name__ == "__main__":
    main()
