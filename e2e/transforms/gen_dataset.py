#!/usr/bin/env python3
"""Writes a deterministic hive-partitioned parquet dataset for the end-to-end suite.

    gen_dataset.py DIR [--files N] [--seed S] [--per-dir K]

DIR/year=YYYY/month=MM/part-K.parquet, K files per month directory (default 5), N files in all
(default 200: years 2020-2022 with 12 months each and 2023 with 4, i.e. year=2023 holds 20 files).
Each file has 20-200 rows and the columns
    id      int64   unique within the file, shuffled (so "sort by id" changes the file)
    name    string  a few nulls
    amount  double  about 10 % nulls
    big     int64   mostly values far outside Int8's range (a cast to Int8 must fail or null them)
The compression cycles through snappy, zstd and gzip so that "keep the compression" is visible.
"""
import argparse
import os
import random

import pyarrow as pa
import pyarrow.parquet as pq

COMPRESSIONS = ["snappy", "zstd", "gzip"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir")
    ap.add_argument("--files", type=int, default=200)
    ap.add_argument("--seed", type=int, default=20240601)
    ap.add_argument("--per-dir", type=int, default=5)
    args = ap.parse_args()

    next_id = 0
    for i in range(args.files):
        rng = random.Random(args.seed * 1_000_003 + i)
        d = i // args.per_dir
        year, month = 2020 + d // 12, d % 12 + 1
        part = i % args.per_dir
        folder = os.path.join(args.dir, f"year={year}", f"month={month:02d}")
        os.makedirs(folder, exist_ok=True)

        n = rng.randint(20, 200)
        ids = list(range(next_id, next_id + n))
        next_id += n
        rng.shuffle(ids)
        names = [None if rng.random() < 0.03 else f"customer-{rng.randint(1, 5000):04d}" for _ in ids]
        amounts = [None if rng.random() < 0.10 else round(rng.uniform(-500, 5000), 2) for _ in ids]
        bigs = [rng.randint(-100, 100) if rng.random() < 0.05 else rng.randint(1_000, 10**15) for _ in ids]

        table = pa.table(
            {
                "id": pa.array(ids, pa.int64()),
                "name": pa.array(names, pa.string()),
                "amount": pa.array(amounts, pa.float64()),
                "big": pa.array(bigs, pa.int64()),
            }
        )
        pq.write_table(
            table,
            os.path.join(folder, f"part-{part}.parquet"),
            compression=COMPRESSIONS[i % len(COMPRESSIONS)],
        )
    print(f"wrote {args.files} files, {next_id} rows under {args.dir}")


if __name__ == "__main__":
    main()
