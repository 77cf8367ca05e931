"""Published model versions in a store: publish one, read one back verified, list and prune them.

Publishing uploads the files, then the manifest, verifies both and only then moves LATEST, so a reader sees the
old version or the new one, never half of one. The keys are :mod:`reccore.layout`'s.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reccore.encoding import sha256
from reccore.errors import ArtifactIntegrityError, ModelNotFoundError
from reccore.layout import (
    FORMAT_VERSION,
    LATEST_KEY,
    MANIFEST_NAME,
    FileEntry,
    Files,
    Manifest,
    version_key,
    version_of,
    version_prefix,
)
from reccore.storage import ArtifactStore

logger = logging.getLogger(__name__)


def new_version(now: datetime | None = None) -> str:
    """A sortable, collision-resistant version id such as ``20261126T043512.123456Z-9f2c1a``."""
    now = now or datetime.now(UTC)
    return f"{now:%Y%m%dT%H%M%S.%fZ}-{secrets.token_hex(3)}"


# --- reading -----------------------------------------------------------------


def read_latest_version(store: ArtifactStore) -> str:
    """The version id LATEST points to; :class:`ModelNotFoundError` if nothing is published."""
    try:
        version = store.get(LATEST_KEY).decode().strip()
    except FileNotFoundError as exc:
        raise ModelNotFoundError(f"no model published at {store.uri}/{LATEST_KEY}") from exc
    if not version:
        raise ModelNotFoundError(f"{store.uri}/{LATEST_KEY} is empty")
    return version


def read_manifest(store: ArtifactStore, version: str) -> Manifest:
    key = version_key(version, MANIFEST_NAME)
    try:
        raw = store.get(key)
    except FileNotFoundError as exc:
        raise ArtifactIntegrityError(f"manifest missing: {store.uri}/{key}") from exc
    try:
        manifest = Manifest.model_validate_json(raw)
    except ValueError as exc:
        raise ArtifactIntegrityError(f"manifest unreadable: {store.uri}/{key}: {exc}") from exc
    if manifest.format_version != FORMAT_VERSION:
        raise ArtifactIntegrityError(
            f"{store.uri}/{key}: format_version {manifest.format_version}, this reader needs {FORMAT_VERSION}: "
            "publish the model again with this version of the pipeline (.venv/bin/python -m pipeline run)"
        )
    missing = [name for name in Files.required(manifest.user_arrays) if name not in manifest.files]
    if missing:
        raise ArtifactIntegrityError(f"{store.uri}/{key} does not list {', '.join(missing)}")
    return manifest


def read_verified(store: ArtifactStore, manifest: Manifest, name: str) -> bytes:
    """The bytes of one file of ``manifest``, after checking size and sha256."""
    key = version_key(manifest.version, name)
    entry = manifest.files.get(name)
    if entry is None:
        raise ArtifactIntegrityError(f"{name} is not listed in the manifest of {manifest.version}")
    try:
        data = store.get(key)
    except FileNotFoundError as exc:
        raise ArtifactIntegrityError(f"missing file {store.uri}/{key}") from exc
    if len(data) != entry.size or sha256(data) != entry.sha256:
        raise ArtifactIntegrityError(
            f"checksum mismatch for {store.uri}/{key}: expected {entry.size} bytes sha256 {entry.sha256[:12]}…, "
            f"got {len(data)} bytes sha256 {sha256(data)[:12]}…"
        )
    return data


def fetch_verified(store: ArtifactStore, manifest: Manifest, name: str, directory: Path) -> Path:
    """A local file of one file of ``manifest`` (see ``ArtifactStore.fetch``), after checking size and sha256.

    Nothing is held in memory: the file is hashed from disk (the page cache, just written or in place).
    """
    key = version_key(manifest.version, name)
    entry = manifest.files.get(name)
    if entry is None:
        raise ArtifactIntegrityError(f"{name} is not listed in the manifest of {manifest.version}")
    try:
        path = store.fetch(key, directory / name)
    except FileNotFoundError as exc:
        raise ArtifactIntegrityError(f"missing file {store.uri}/{key}") from exc
    size = path.stat().st_size
    with path.open("rb") as handle:
        digest = hashlib.file_digest(handle, "sha256").hexdigest()
    if size != entry.size or digest != entry.sha256:
        raise ArtifactIntegrityError(
            f"checksum mismatch for {store.uri}/{key}: expected {entry.size} bytes sha256 {entry.sha256[:12]}…, "
            f"got {size} bytes sha256 {digest[:12]}…"
        )
    return path


def list_versions(store: ArtifactStore) -> list[str]:
    """Version ids that have a manifest, oldest first."""
    keys = store.list_keys(version_prefix())
    return sorted(version_of(k) for k in keys if k == version_key(version_of(k), MANIFEST_NAME))


# --- writing -----------------------------------------------------------------


def publish(store: ArtifactStore, manifest: Manifest, files: dict[str, bytes], retention: int = 5) -> Manifest:
    """Upload ``files``, then the manifest, verify both, and only then move LATEST.

    If anything fails before LATEST is written, the partial version is removed
    (best effort) and the exception propagates: the live model never changes.
    Afterwards, versions beyond ``retention`` (oldest first) are deleted.
    """
    missing = [name for name in Files.required(manifest.user_arrays) if name not in files]
    if missing:
        raise ValueError(f"publish: files missing from the model: {', '.join(missing)}")
    manifest = manifest.model_copy(
        update={"files": {name: FileEntry(size=len(data), sha256=sha256(data)) for name, data in files.items()}}
    )
    try:
        for name, data in files.items():
            store.put(version_key(manifest.version, name), data)
        store.put(version_key(manifest.version, MANIFEST_NAME), manifest.model_dump_json(indent=2).encode())
        written = read_manifest(store, manifest.version)
        for name in files:
            read_verified(store, written, name)
    except BaseException:
        _delete_version(store, manifest.version)
        raise
    store.put(LATEST_KEY, manifest.version.encode())
    prune(store, retention, keep=manifest.version)
    return manifest


def record_in_manifest(store: ArtifactStore, version: str, key: str, value: Any) -> Manifest:
    """Set ``manifest.data[key]`` of a published version (what happened after publishing, e.g. the user sync).

    The files and their checksums are untouched; a single PUT replaces the manifest, so readers see the old
    or the new one, never half of either.
    """
    manifest = read_manifest(store, version)
    updated = manifest.model_copy(update={"data": {**manifest.data, key: value}})
    store.put(version_key(version, MANIFEST_NAME), updated.model_dump_json(indent=2).encode())
    return updated


def prune(store: ArtifactStore, retention: int, keep: str) -> list[str]:
    """Delete all but the newest ``retention`` versions, never ``keep``. Returns the deleted ids."""
    versions = [v for v in list_versions(store) if v != keep]
    doomed = versions[: max(0, len(versions) - (retention - 1))]
    for version in doomed:
        _delete_version(store, version)
    return doomed


def _delete_version(store: ArtifactStore, version: str) -> None:
    try:
        store.delete(store.list_keys(version_prefix(version)))
    except Exception as exc:  # noqa: BLE001 - cleanup must not mask the failure being handled
        logger.warning("could not delete version %s at %s: %s", version, store.uri, exc)
