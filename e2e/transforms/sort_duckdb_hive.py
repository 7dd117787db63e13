#!/usr/bin/env python3
"""Sorts a parquet file by `id` with DuckDB, with the common mistake left in.

    sort_duckdb_hive.py IN OUT [--memory-limit 256MB]

Identical to sort_duckdb.py except that read_parquet() is called WITHOUT
hive_partitioning=false: for a path like data/year=2023/month=01/part-0.parquet DuckDB detects
the hive layout and silently adds the columns `year` and `month` to every row. Same row count,
different schema: `fanout --verify parquet` lets it through, `--verify parquet-schema` does not.
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
    args = ap.parse_args()

    con = duckdb.connect()
    con.execute(f"SET memory_limit = {sql_string(args.memory_limit)}")
    con.execute("SET threads = 1")
    con.execute(
        f"COPY (SELECT * FROM read_parquet({sql_string(args.input)}) "
        f"ORDER BY id) TO {sql_string(args.output)} (FORMAT parquet)"
    )


if __name__ == "__main__":
    main()
