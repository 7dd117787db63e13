"""An independent client for the object stores the remote tests start (tests/it/servers.rs).

The tests set up buckets and check what fanout wrote with this script, so that no check goes
through fanout's own store code. S3 goes through boto3, Azure (Azurite) through
azure-storage-blob. Run it with the Python of the servers' environment (.ci/servers.sh):

    python objtool.py [--azure] COMMAND ...

Connection settings come from the environment a server hands to fanout (Server::env):
AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION for S3;
AZURITE_BLOB_STORAGE_URL, AZURE_STORAGE_ACCOUNT_NAME, AZURE_STORAGE_ACCOUNT_KEY for Azure.

Commands ("bucket" is a container on Azure):
    wait [--pid PID] [--timeout S] [--write]
                                     until a signed listing answers (exit 3: PID is gone);
                                     --write: and an object can be written and deleted
    mkbucket BUCKET
    buckets                           the bucket names, one a line
    put BUCKET KEY FILE|- [--meta K=V]... [--if-none-match] [--if-match ETAG]
        [--multipart PART_BYTES]      prints {"etag": ...}
    get BUCKET KEY [FILE]             the object's bytes to FILE or standard output
    head BUCKET KEY                   prints {"etag", "size", "metadata"}
    ls BUCKET [PREFIX]                one JSON line per object: {"key", "size", "etag"}
    rm BUCKET KEY...

Exit status: 0 done; 1 the store refused the request, with {"error": CODE, "status": HTTP} on
standard output (a missing object, a failed precondition ...); 2 usage; 3 and 4 for wait; 5 an
unexpected error (a traceback on standard error).
"""

import argparse
import json
import os
import sys
import time


def fail(code, status):
    print(json.dumps({"error": code, "status": status}))
    sys.exit(1)


def alive(pid):
    """Whether PID is a live process (a zombie, a server that exited, counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def read_body(path):
    if path == "-":
        return sys.stdin.buffer.read()
    with open(path, "rb") as f:
        return f.read()


def write_body(data, path):
    if path in (None, "-"):
        sys.stdout.buffer.write(data)
    else:
        with open(path, "wb") as f:
            f.write(data)


def metadata(pairs):
    meta = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep:
            sys.exit(f"objtool: --meta takes K=V, not {pair!r}")
        meta[key] = value
    return meta


class S3:
    def __init__(self):
        import boto3
        import botocore.config
        import botocore.exceptions

        self.errors = botocore.exceptions
        self.client = boto3.client(
            "s3",
            endpoint_url=os.environ["AWS_ENDPOINT_URL"],
            aws_access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=os.environ["AWS_SECRET_ACCESS_KEY"],
            region_name=os.environ.get("AWS_REGION", "us-east-1"),
            config=botocore.config.Config(
                s3={"addressing_style": "path"},
                retries={"max_attempts": 1},
                connect_timeout=2,
                read_timeout=30,
            ),
        )

    def call(self, fn, **kwargs):
        try:
            return fn(**kwargs)
        except self.errors.ClientError as e:
            fail(e.response["Error"].get("Code"), e.response["ResponseMetadata"]["HTTPStatusCode"])

    def ready(self):
        try:
            self.client.list_buckets()
            return True
        except (self.errors.BotoCoreError, self.errors.ClientError):
            return False

    def writable(self):
        """Whether a bucket and an object can be made and removed (they are removed again)."""
        bucket = f"objtool-probe-{os.getpid()}"
        try:
            self.client.create_bucket(Bucket=bucket)
            self.client.put_object(Bucket=bucket, Key="probe", Body=b"probe")
            self.client.delete_object(Bucket=bucket, Key="probe")
            self.client.delete_bucket(Bucket=bucket)
            return True
        except (self.errors.BotoCoreError, self.errors.ClientError):
            return False

    def mkbucket(self, bucket):
        self.call(self.client.create_bucket, Bucket=bucket)

    def buckets(self):
        return [b["Name"] for b in self.call(self.client.list_buckets)["Buckets"]]

    def put(self, bucket, key, body, meta, if_none_match, if_match, part):
        cond = {}
        if if_none_match:
            cond["IfNoneMatch"] = "*"
        if if_match:
            cond["IfMatch"] = if_match
        if part is None:
            r = self.call(self.client.put_object, Bucket=bucket, Key=key, Body=body, Metadata=meta, **cond)
            return r["ETag"]
        # The conditions go on CompleteMultipartUpload, where S3 checks them.
        up = self.call(self.client.create_multipart_upload, Bucket=bucket, Key=key, Metadata=meta)
        parts = []
        for n, start in enumerate(range(0, max(len(body), 1), part), start=1):
            r = self.call(
                self.client.upload_part,
                Bucket=bucket, Key=key, UploadId=up["UploadId"], PartNumber=n, Body=body[start : start + part],
            )
            parts.append({"PartNumber": n, "ETag": r["ETag"]})
        try:
            r = self.client.complete_multipart_upload(
                Bucket=bucket, Key=key, UploadId=up["UploadId"], MultipartUpload={"Parts": parts}, **cond
            )
        except self.errors.ClientError as e:
            self.client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=up["UploadId"])
            fail(e.response["Error"].get("Code"), e.response["ResponseMetadata"]["HTTPStatusCode"])
        return r["ETag"]

    def get(self, bucket, key):
        return self.call(self.client.get_object, Bucket=bucket, Key=key)["Body"].read()

    def head(self, bucket, key):
        r = self.call(self.client.head_object, Bucket=bucket, Key=key)
        return {"etag": r["ETag"], "size": r["ContentLength"], "metadata": r.get("Metadata", {})}

    def ls(self, bucket, prefix):
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        try:
            for page in pages:
                for o in page.get("Contents", []):
                    yield {"key": o["Key"], "size": o["Size"], "etag": o["ETag"]}
        except self.errors.ClientError as e:
            fail(e.response["Error"].get("Code"), e.response["ResponseMetadata"]["HTTPStatusCode"])

    def rm(self, bucket, key):
        self.call(self.client.delete_object, Bucket=bucket, Key=key)


class Azure:
    def __init__(self):
        from azure.core import exceptions
        from azure.storage.blob import BlobServiceClient

        account = os.environ["AZURE_STORAGE_ACCOUNT_NAME"]
        url = os.environ["AZURITE_BLOB_STORAGE_URL"].rstrip("/") + "/" + account
        key = os.environ["AZURE_STORAGE_ACCOUNT_KEY"]
        self.errors = exceptions
        self.service = BlobServiceClient(url, credential={"account_name": account, "account_key": key})

    def call(self, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except self.errors.HttpResponseError as e:
            fail(e.error_code, e.status_code)

    def blob(self, bucket, key):
        return self.service.get_blob_client(bucket, key)

    def ready(self):
        try:
            list(self.service.list_containers())
            return True
        except self.errors.AzureError:
            return False

    def mkbucket(self, bucket):
        self.call(self.service.create_container, bucket)

    def buckets(self):
        return [c.name for c in self.call(lambda: list(self.service.list_containers()))]

    def put(self, bucket, key, body, meta, if_none_match, if_match, part):
        from azure.core import MatchConditions

        cond = {}
        if if_none_match:
            cond.update(match_condition=MatchConditions.IfMissing)
        if if_match:
            cond.update(etag=if_match, match_condition=MatchConditions.IfNotModified)
        blob = self.blob(bucket, key)
        if part is None:
            # upload_blob says create-only as overwrite=False (If-None-Match: *).
            single = {} if if_none_match else cond
            r = self.call(blob.upload_blob, body, metadata=meta, overwrite=not if_none_match, **single)
            return r["etag"]
        # Staged blocks committed by one Put Block List, which carries the conditions.
        from azure.storage.blob import BlobBlock

        blocks = []
        for n, start in enumerate(range(0, max(len(body), 1), part)):
            block_id = f"{n:08d}"
            self.call(blob.stage_block, block_id, body[start : start + part])
            blocks.append(BlobBlock(block_id=block_id))
        r = self.call(blob.commit_block_list, blocks, metadata=meta, **cond)
        return r["etag"]

    def get(self, bucket, key):
        return self.call(self.blob(bucket, key).download_blob).readall()

    def head(self, bucket, key):
        p = self.call(self.blob(bucket, key).get_blob_properties)
        return {"etag": p.etag, "size": p.size, "metadata": dict(p.metadata or {})}

    def ls(self, bucket, prefix):
        container = self.service.get_container_client(bucket)
        try:
            for b in container.list_blobs(name_starts_with=prefix or None):
                yield {"key": b.name, "size": b.size, "etag": b.etag}
        except self.errors.HttpResponseError as e:
            fail(e.error_code, e.status_code)

    def rm(self, bucket, key):
        self.call(self.blob(bucket, key).delete_blob)


def parser():
    p = argparse.ArgumentParser(prog="objtool", description=__doc__.split("\n\n")[0])
    p.add_argument("--azure", action="store_true", help="talk to Azure Blob storage (Azurite), not S3")
    sub = p.add_subparsers(dest="command", required=True)
    w = sub.add_parser("wait")
    w.add_argument("--pid", type=int)
    w.add_argument("--timeout", type=float, default=60)
    w.add_argument("--write", action="store_true")
    sub.add_parser("mkbucket").add_argument("bucket")
    sub.add_parser("buckets")
    put = sub.add_parser("put")
    put.add_argument("bucket")
    put.add_argument("key")
    put.add_argument("file")
    put.add_argument("--meta", action="append", metavar="K=V")
    put.add_argument("--if-none-match", action="store_true")
    put.add_argument("--if-match", metavar="ETAG")
    put.add_argument("--multipart", type=int, metavar="PART_BYTES")
    for name in ("get", "head"):
        c = sub.add_parser(name)
        c.add_argument("bucket")
        c.add_argument("key")
        if name == "get":
            c.add_argument("file", nargs="?")
    ls = sub.add_parser("ls")
    ls.add_argument("bucket")
    ls.add_argument("prefix", nargs="?", default="")
    rm = sub.add_parser("rm")
    rm.add_argument("bucket")
    rm.add_argument("keys", nargs="+")
    return p


def wait(store, pid, timeout, write):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pid is not None and not alive(pid):
            print(f"objtool: the server (pid {pid}) has exited", file=sys.stderr)
            sys.exit(3)
        if store.ready() and (not write or store.writable()):
            return
        time.sleep(0.2)
    print(f"objtool: no answer within {timeout:g} s", file=sys.stderr)
    sys.exit(4)


def main():
    a = parser().parse_args()
    store = Azure() if a.azure else S3()
    if a.command == "wait":
        wait(store, a.pid, a.timeout, a.write)
    elif a.command == "mkbucket":
        store.mkbucket(a.bucket)
    elif a.command == "buckets":
        for name in store.buckets():
            print(name)
    elif a.command == "put":
        body = read_body(a.file)
        etag = store.put(a.bucket, a.key, body, metadata(a.meta), a.if_none_match, a.if_match, a.multipart)
        print(json.dumps({"etag": etag}))
    elif a.command == "get":
        write_body(store.get(a.bucket, a.key), a.file)
    elif a.command == "head":
        print(json.dumps(store.head(a.bucket, a.key)))
    elif a.command == "ls":
        for o in store.ls(a.bucket, a.prefix):
            print(json.dumps(o))
    elif a.command == "rm":
        for key in a.keys:
            store.rm(a.bucket, key)


if __name__ == "__main__":
    try:
        main()
    except Exception:  # not a refusal (exit 1): a broken client or setup
        import traceback

        traceback.print_exc()
        sys.exit(5)
