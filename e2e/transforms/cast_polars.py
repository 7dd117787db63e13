#!/usr/bin/env python3
"""Casts one column of a parquet file with polars.

    cast_polars.py IN OUT [--column amount] [--dtype Float32] [--non-strict] [--no-statistics]

--dtype is a polars data type name (Float32, Int8, Int32, String, ...). By default the cast is
strict: a value that does not fit makes the script fail. --non-strict uses strict=False, with
which polars silently turns every value that does not fit into null (e.g. `big` to Int8): the
row count stays the same, only the nulls tell. --no-statistics writes OUT without column
statistics (no null counts in the footer), as some writers do.
"""
import argparse

import polars as pl


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("input")
    ap.add_argument("output")
    ap.add_argument("--column", default="amount")
    ap.add_argument("--dtype", default="Float32")
    ap.add_argument("--non-strict", action="store_true")
    ap.add_argument("--no-statistics", action="store_true")
    args = ap.parse_args()

    dtype = getattr(pl, args.dtype)
    df = pl.read_parquet(args.input)
    df = df.with_columns(pl.col(args.column).cast(dtype, strict=not args.non_strict))
    df.write_parquet(args.output, statistics=not args.no_statistics)


if __name__ == "__main__":
    main()
