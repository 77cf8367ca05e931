"""Where artifacts live: one small interface, an S3 backend and a local-directory backend.

``open_store("s3://bucket/prefix")`` or ``open_store("/some/dir")`` gives an
:class:`ArtifactStore` whose keys are relative to the prefix. The S3 client is
created lazily on first use and honours boto3's standard variables, so
``AWS_ENDPOINT_URL_S3`` points it at a local S3 (moto) with no extra setting.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

from reccore.errors import ConfigError

_PART_BYTES = 16 * 1024 * 1024  # objects above this download as parallel ranged GETs of this size


class ArtifactStore(Protocol):
    """Key/value blob storage under one prefix."""

    uri: str

    def get(self, key: str) -> bytes:
        """Return the bytes at ``key``; raise ``FileNotFoundError`` if there are none."""

    def put(self, key: str, data: bytes) -> None:
        """Write ``data`` at ``key``, replacing what was there."""

    def list_keys(self, prefix: str) -> list[str]:
        """Every key that starts with ``prefix``."""

    def delete(self, keys: list[str]) -> None:
        """Delete ``keys``; missing keys are ignored."""

    def fetch(self, key: str, target: Path) -> Path:
        """A local file holding ``key``'s bytes: the file itself in a directory store, else a download to
        ``target``. Raise ``FileNotFoundError`` if there are none."""


class LocalStore:
    """A directory on disk."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.uri = str(self.root)

    def _path(self, key: str) -> Path:
        return self.root / key

    def get(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)  # atomic on POSIX: readers never see half a file

    def list_keys(self, prefix: str) -> list[str]:
        if not self.root.exists():
            return []
        keys = (p.relative_to(self.root).as_posix() for p in self.root.rglob("*") if p.is_file())
        return sorted(k for k in keys if k.startswith(prefix) and not k.endswith(".tmp"))

    def delete(self, keys: list[str]) -> None:
        for key in keys:
            self._path(key).unlink(missing_ok=True)

    def fetch(self, key: str, target: Path) -> Path:
        path = self._path(key)  # in place: no copy (versions are immutable; a mapping outlives an unlink)
        if not path.is_file():
            raise FileNotFoundError(str(path))
        return path


@dataclass(frozen=True)
class S3Timeouts:
    """Bounds of every S3 call: a call gives up after about ``max_attempts × (connect + read)`` seconds.

    botocore's defaults (60 s connect, 60 s read, retries) let one request hang on a stalled endpoint
    for over a minute; the service passes its ``REC_S3_*`` settings here instead.
    """

    connect: float = 1.0
    read: float = 2.0
    max_attempts: int = 2

    @classmethod
    def of(cls, settings: Any) -> S3Timeouts:
        """The bounds a ``ServiceSettings`` names (``REC_S3_CONNECT_TIMEOUT``, ``_READ_TIMEOUT``, ``_MAX_ATTEMPTS``)."""
        return cls(settings.s3_connect_timeout, settings.s3_read_timeout, settings.s3_max_attempts)

    def client_config(self) -> Any:
        from botocore.config import Config  # deferred with boto3

        return Config(
            connect_timeout=self.connect,
            read_timeout=self.read,
            retries={"total_max_attempts": self.max_attempts, "mode": "standard"},  # the first attempt included
        )


class S3Store:
    """A bucket and key prefix in S3 (or any S3 API, via ``AWS_ENDPOINT_URL_S3``).

    ``timeouts`` bounds the lazily created client's calls (boto3's defaults when ``None``).
    """

    def __init__(self, bucket: str, prefix: str = "", client: Any = None, timeouts: S3Timeouts | None = None) -> None:
        if len(bucket) < 3:
            raise ConfigError(f"invalid S3 bucket name {bucket!r}")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.uri = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        self._client = client
        self._timeouts = timeouts

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3  # deferred: importing the service must touch no AWS code path

            config = self._timeouts.client_config() if self._timeouts is not None else None
            self._client = boto3.client("s3", config=config)
        return self._client

    def key(self, key: str) -> str:
        """The S3 key of a store key (under the prefix)."""
        return f"{self.prefix}/{key}" if self.prefix else key

    def get(self, key: str) -> bytes:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self.key(key))
        except self.client.exceptions.NoSuchKey as exc:
            raise FileNotFoundError(f"{self.uri}/{key}") from exc
        except self.client.exceptions.NoSuchBucket as exc:
            raise FileNotFoundError(f"{self.uri}/{key} (no such bucket)") from exc
        body: bytes = response["Body"].read()
        return body

    def put(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self.key(key), Body=data)

    def list_keys(self, prefix: str) -> list[str]:
        full = self.key(prefix)
        strip = len(self.prefix) + 1 if self.prefix else 0
        keys: list[str] = []
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=full):
                keys.extend(obj["Key"][strip:] for obj in page.get("Contents", []))
        except self.client.exceptions.NoSuchBucket:
            return []
        return sorted(keys)

    def fetch(self, key: str, target: Path) -> Path:
        """Download with s3transfer: ranged GETs in parallel for large objects, written straight to the file."""
        from boto3.s3.transfer import TransferConfig
        from botocore.exceptions import ClientError

        config = TransferConfig(multipart_threshold=_PART_BYTES, multipart_chunksize=_PART_BYTES, max_concurrency=8)
        try:
            self.client.download_file(self.bucket, self.key(key), str(target), Config=config)
        except ClientError as exc:
            if str((exc.response.get("Error") or {}).get("Code")) in ("404", "NoSuchKey", "NoSuchBucket"):
                raise FileNotFoundError(f"{self.uri}/{key}") from exc
            raise
        return target

    def delete(self, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):  # S3's batch limit
            batch = [{"Key": self.key(k)} for k in keys[start : start + 1000]]
            self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})


def open_store(uri: str, client: Any = None, timeouts: S3Timeouts | None = None) -> ArtifactStore:
    """Open ``s3://bucket/prefix`` as an :class:`S3Store`, anything else as a :class:`LocalStore`."""
    if not uri:
        raise ConfigError("empty artifact location: expected s3://bucket/prefix or a directory")
    parsed = urlparse(uri)
    if parsed.scheme == "s3":
        return S3Store(parsed.netloc, parsed.path, client=client, timeouts=timeouts)
    if parsed.scheme in ("", "file"):
        return LocalStore(parsed.path if parsed.scheme == "file" else uri)
    raise ConfigError(f"unsupported artifact location {uri!r}: expected s3://bucket/prefix or a directory")
