#!/usr/bin/env python3
"""Writes a deterministic hive-partitioned CSV dataset for the end-to-end suite.

    gen_csv.py DIR [--files N] [--seed S] [--per-dir K]

DIR/year=YYYY/month=MM/part-K.csv, K files per month directory (default 9), N files in all
(default 216). Each file has a header and 1-300 rows: id (int), name (text, some with commas and
quotes), amount (decimal, some empty).
"""
import argparse
import csv
import os
import random


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir")
    ap.add_argument("--files", type=int, default=216)
    ap.add_argument("--seed", type=int, default=20240601)
    ap.add_argument("--per-dir", type=int, default=9)
    args = ap.parse_args()
    next_id = 0
    for i in range(args.files):
        rng = random.Random(args.seed * 1_000_003 + i)
        d = i // args.per_dir
        year, month = 2023 + d // 12, d % 12 + 1
        folder = os.path.join(args.dir, f"year={year}", f"month={month:02d}")
        os.makedirs(folder, exist_ok=True)
        rows = rng.randint(1, 300)
        with open(os.path.join(folder, f"part-{i % args.per_dir}.csv"), "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["id", "name", "amount"])
            for _ in range(rows):
                name = rng.choice(["alpha", "beta, gamma", 'say "hi"', "delta"])
                amount = "" if rng.random() < 0.1 else f"{rng.uniform(-1e4, 1e4):.2f}"
                w.writerow([next_id, name, amount])
                next_id += 1
    print(f"{args.files} CSV files under {args.dir}")


if __name__ == "__main__":
    main()
