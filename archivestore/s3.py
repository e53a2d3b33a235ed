"""`S3Backend`: a store's objects in an S3-compatible bucket (Ceph RGW, MinIO, B2, AWS).

Objects are written once and never overwritten or deleted: small objects go up with a
conditional PUT (`If-None-Match: *`) where the server supports it, else after a HEAD; packs go
up as multipart uploads. Reads are ranged GETs, safe to issue from many threads at once.
Credentials and endpoint come from boto3's usual sources (AWS_* environment variables,
~/.aws/config). LIST is used only to discover objects, never to decide correctness.
"""
from __future__ import annotations

import os
import socket
import uuid
from pathlib import Path
from typing import Iterator

from .errors import ArchiveError, DamageError, StoreNotFound, UsageError

try:  # optional dependency: pip install "archivestore[s3]"
    import boto3
    import botocore.config
    import botocore.exceptions
    from boto3.s3.transfer import TransferConfig
except ImportError:  # pragma: no cover - exercised only without the extra
    boto3 = None

# Ranged GETs in flight during a restore: at ~3-6 ms per small GET on a LAN RGW and 20-80 ms
# on a WAN endpoint, 16 concurrent 1 MiB reads keep one stream near the link rate.
READ_PARALLELISM = 16
# 8 MiB parts, 4 in flight: a 32 MiB pack goes up as 4 parallel parts.
MULTIPART_THRESHOLD = 8 * 1024 * 1024


class ObjectExists(ArchiveError):
    """A conditional create found the object already there."""


def parse_s3_url(url: str) -> tuple[str, str]:
    """`s3://bucket/prefix` → (bucket, prefix without trailing slash)."""
    if not url.startswith("s3://"):
        raise UsageError(f"{url}: not an s3:// URL")
    rest = url[5:].strip("/")
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise UsageError(f"{url}: no bucket in the URL (s3://BUCKET/PREFIX)")
    return bucket, prefix.strip("/")


class S3Backend:
    """Objects under `s3://bucket/prefix`; temp files live in the local `tmp_dir`."""

    read_parallelism = READ_PARALLELISM

    def __init__(self, url: str, tmp_dir: Path | None = None, client=None) -> None:
        if boto3 is None:
            raise UsageError("s3:// stores need boto3: pip install 'archivestore[s3]'")
        self.url = url
        self.bucket, self.prefix = parse_s3_url(url)
        self.tmp_dir = Path(tmp_dir) if tmp_dir else None
        cfg = botocore.config.Config(max_pool_connections=READ_PARALLELISM + 8,
                                     retries={"max_attempts": 5, "mode": "standard"},
                                     s3={"addressing_style": "path"})
        self.client = client or boto3.client("s3", endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None,
                                             config=cfg)
        self.transfer = TransferConfig(multipart_threshold=MULTIPART_THRESHOLD,
                                       multipart_chunksize=MULTIPART_THRESHOLD, max_concurrency=4,
                                       use_threads=True)
        self._conditional: bool | None = None  # does the server honour If-None-Match on PUT?

    def _key(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    def _error(self, e: Exception, name: str) -> ArchiveError:
        return ArchiveError(f"{self.url}: {name}: {e}")

    # -- writes ---------------------------------------------------------------------------
    def temp_path(self, suffix: str) -> Path:
        if self.tmp_dir is None:
            raise UsageError("this S3 backend has no local temp directory")
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        return self.tmp_dir / f"{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex}{suffix}"

    def put(self, name: str, src: Path) -> None:
        """Upload a finished local file as `name` (never overwrites), then delete the local file."""
        size = os.path.getsize(src)
        if size < MULTIPART_THRESHOLD:
            self.put_bytes(name, Path(src).read_bytes())
        else:
            # Pack names are 128 random bits, so a clash means a bug: HEAD guards against it.
            if self.exists(name):
                raise ArchiveError(f"refusing to overwrite existing object {name}")
            try:
                self.client.upload_file(str(src), self.bucket, self._key(name), Config=self.transfer)
            except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError,
                    boto3.exceptions.S3UploadFailedError) as e:
                raise self._error(e, name) from None
            if self.size(name) != size:
                raise ArchiveError(f"{self.url}: {name}: uploaded size differs from the local file")
        os.unlink(src)

    def put_bytes(self, name: str, data: bytes) -> None:
        """Create `name` with `data`; raises ObjectExists if it is already there."""
        key = self._key(name)
        if self._conditional is not False:
            try:
                self.client.put_object(Bucket=self.bucket, Key=key, Body=data, IfNoneMatch="*")
                self._conditional = True
                return
            except botocore.exceptions.ClientError as e:
                code = e.response.get("Error", {}).get("Code", "")
                status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
                if status == 412 or code in ("PreconditionFailed", "ConditionalRequestConflict"):
                    raise ObjectExists(f"{name} already exists") from None
                if status == 501 or code in ("NotImplemented", "InvalidArgument"):
                    self._conditional = False  # e.g. older B2/MinIO: fall back to HEAD first
                else:
                    raise self._error(e, name) from None
            except botocore.exceptions.BotoCoreError as e:
                raise self._error(e, name) from None
        if self.exists(name):
            raise ObjectExists(f"{name} already exists")
        try:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=data)
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as e:
            raise self._error(e, name) from None

    # -- reads ----------------------------------------------------------------------------
    def get(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        kw = {}
        if length is not None:
            if length == 0:
                return b""
            kw["Range"] = f"bytes={offset}-{offset + length - 1}"
        elif offset:
            kw["Range"] = f"bytes={offset}-"
        try:
            r = self.client.get_object(Bucket=self.bucket, Key=self._key(name), **kw)
            return r["Body"].read()
        except botocore.exceptions.ClientError as e:
            code = e.response.get("Error", {}).get("Code", "")
            if code in ("NoSuchKey", "404"):
                raise DamageError(f"{name} is missing") from None
            if code == "NoSuchBucket":
                raise StoreNotFound(f"{self.url}: no such bucket") from None
            if code == "InvalidRange":
                return b""
            raise self._error(e, name) from None
        except botocore.exceptions.BotoCoreError as e:
            raise self._error(e, name) from None

    def _head(self, name: str) -> dict | None:
        try:
            return self.client.head_object(Bucket=self.bucket, Key=self._key(name))
        except botocore.exceptions.ClientError as e:
            if e.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
                return None
            raise self._error(e, name) from None
        except botocore.exceptions.BotoCoreError as e:
            raise self._error(e, name) from None

    def exists(self, name: str) -> bool:
        return self._head(name) is not None

    def size(self, name: str) -> int:
        h = self._head(name)
        if h is None:
            raise DamageError(f"{name} is missing")
        return int(h["ContentLength"])

    def list(self, prefix: str) -> Iterator[tuple[str, int]]:
        """(name, size) of objects under `prefix`, in key order."""
        base = self._key(prefix.rstrip("/") + "/")
        cut = len(self.prefix) + 1 if self.prefix else 0
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket,
                                                                                Prefix=base):
                for o in page.get("Contents", ()):
                    yield o["Key"][cut:], int(o["Size"])
        except botocore.exceptions.ClientError as e:
            if e.response.get("Error", {}).get("Code") == "NoSuchBucket":
                raise StoreNotFound(f"{self.url}: no such bucket") from None
            raise self._error(e, prefix) from None
        except botocore.exceptions.BotoCoreError as e:
            raise self._error(e, prefix) from None

    def ensure_bucket(self) -> None:
        """Create the bucket if it does not exist (for `archive init`)."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except botocore.exceptions.ClientError:
            try:
                self.client.create_bucket(Bucket=self.bucket)
            except botocore.exceptions.ClientError as e:
                if e.response.get("Error", {}).get("Code") not in ("BucketAlreadyOwnedByYou",):
                    raise self._error(e, "bucket") from None
        except botocore.exceptions.BotoCoreError as e:
            raise self._error(e, "bucket") from None

    def close(self) -> None:
        pass
