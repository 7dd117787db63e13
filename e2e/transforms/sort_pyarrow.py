#!/usr/bin/env python3
"""Sorts a parquet file by `id` with pyarrow, keeping its compression.

    sort_pyarrow.py IN OUT [--sleep SECONDS]

Reads the whole file, sorts it and writes OUT with the compression codec IN uses.
--sleep makes a slow transform for the interruption tests: OUT is written in two row groups with
a pause in between, so a job stopped during the pause leaves a half-written OUT behind.
"""
import argparse
import time

import pyarrow.parquet as pq


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("input")
    ap.add_argument("output")
    ap.add_argument("--sleep", type=float, default=0.0)
    args = ap.parse_args()

    source = pq.ParquetFile(args.input)
    compression = source.metadata.row_group(0).column(0).compression.lower()
    table = source.read().sort_by("id")

    if args.sleep <= 0:
        pq.write_table(table, args.output, compression=compression)
        return
    half = table.num_rows // 2
    with pq.ParquetWriter(args.output, table.schema, compression=compression) as writer:
        writer.write_table(table.slice(0, half))
        time.sleep(args.sleep)
        writer.write_table(table.slice(half))


if __name__ == "__main__":
    main()
