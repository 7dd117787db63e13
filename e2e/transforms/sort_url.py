#!/usr/bin/env python3
"""Sorts one parquet object by a column, reading it from the store by its URL, as a user's
script would with DuckDB (httpfs) or polars; writes the sorted table to a local file.

    sort_url.py {duckdb|polars} URL OUT.parquet [--by COLUMN] [--descending]

The store comes from the environment: AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_REGION. DuckDB's httpfs is loaded from the duckdb-extension-httpfs
package (nothing is downloaded).
"""
import argparse
import os
import tempfile


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("engine", choices=["duckdb", "polars"])
    ap.add_argument("url")
    ap.add_argument("dst")
    ap.add_argument("--by", default="id")
    ap.add_argument("--descending", action="store_true")
    a = ap.parse_args()
    e = os.environ
    if a.engine == "duckdb":
        import duckdb
        import duckdb_extensions

        with tempfile.TemporaryDirectory() as ext:
            con = duckdb.connect(config={"extension_directory": ext, "autoinstall_known_extensions": "false", "threads": 1})
            duckdb_extensions.import_extension("httpfs", con=con)
            con.sql("LOAD httpfs")
            endpoint = e["AWS_ENDPOINT_URL"].split("://", 1)[1]
            con.execute(
                "CREATE SECRET (TYPE s3, KEY_ID ?, SECRET ?, REGION ?, ENDPOINT ?, URL_STYLE 'path', USE_SSL false)",
                [e["AWS_ACCESS_KEY_ID"], e["AWS_SECRET_ACCESS_KEY"], e.get("AWS_REGION", "us-east-1"), endpoint],
            )
            order = f'"{a.by}"' + (" DESC" if a.descending else "")
            # hive_partitioning=false: the key's year=/month= must not become columns.
            con.execute(
                f"COPY (SELECT * FROM read_parquet(?, hive_partitioning=false) ORDER BY {order}) "
                f"TO '{a.dst}' (FORMAT parquet)",
                [a.url],
            )
    else:
        import polars

        df = polars.read_parquet(a.url, hive_partitioning=False)
        df.sort(a.by, descending=a.descending).write_parquet(a.dst)


if __name__ == "__main__":
    main()
