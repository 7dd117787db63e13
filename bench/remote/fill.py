"""Fills a bucket for bench/remote/run.sh: PREFIX + p{i // 10000}/d{i // 1000 % 10}/part-{i % 1000}.csv
for i < N (so PREFIX/p0/ holds the first 10,000), each a CSV of BYTES bytes, PUT by many boto3
threads at once (one client, a pool of connections). A prefix that holds N objects already is
left as it is (a kept work directory's server).

    python fill.py ENDPOINT KEY SECRET BUCKET PREFIX N BYTES [THREADS]

Prints the seconds the upload took (or "reused") on its last line."""
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import boto3
from botocore.config import Config

endpoint, key, secret, bucket, prefix = sys.argv[1:6]
n, size = int(sys.argv[6]), int(sys.argv[7])
threads = int(sys.argv[8]) if len(sys.argv) > 8 else 64
s3 = boto3.client(
    "s3",
    endpoint_url=endpoint,
    aws_access_key_id=key,
    aws_secret_access_key=secret,
    region_name="us-east-1",
    config=Config(max_pool_connections=threads, retries={"max_attempts": 10, "mode": "standard"}),
)
try:
    s3.create_bucket(Bucket=bucket)
except s3.exceptions.BucketAlreadyOwnedByYou:
    pass
except s3.exceptions.BucketAlreadyExists:
    pass


def name(i):
    if os.environ.get("FILL_LAYOUT") == "flat":
        return f"{prefix}part-{i:06}.parquet"
    return f"{prefix}p{i // 10000}/d{i // 1000 % 10}/part-{i % 1000:03}.csv"


listed = sum(
    page.get("KeyCount", 0)
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
)
if listed == n:
    print("reused")
    sys.exit(0)


def body(i):
    line = f"{i},name-{i:06d},some lower case text for the transform\n".encode()
    return (line * (size // len(line) + 1))[:size]


def put(i):
    s3.put_object(Bucket=bucket, Key=name(i), Body=body(i))


start = time.monotonic()
with ThreadPoolExecutor(threads) as pool:
    for _ in pool.map(put, range(n), chunksize=256):
        pass
print(f"{time.monotonic() - start:.1f}")
