"""Publishing model versions: atomic (LATEST moves last), pruned to the retention, manifests read back and amended."""

from __future__ import annotations

from pathlib import Path

import pytest

from reccore.errors import ArtifactIntegrityError
from reccore.layout import LATEST_KEY, Files, Manifest, version_key
from reccore.loading import load_model
from reccore.storage import ArtifactStore
from reccore.versions import list_versions, publish, read_latest_version, read_manifest, record_in_manifest
from tests.core.conftest import fresh


def test_unreadable_manifest_is_detected(store: ArtifactStore, packaged: tuple[Manifest, dict[str, bytes]]) -> None:
    published = publish(store, fresh(packaged[0]), packaged[1])
    store.put(version_key(published.version, "manifest.json"), b"{not json")
    with pytest.raises(ArtifactIntegrityError, match="manifest unreadable"):
        read_manifest(store, published.version)


class FailingStore:
    """Wraps a store and fails the n-th upload, as a network error mid-publish would."""

    def __init__(self, inner: ArtifactStore, fail_on_put: int) -> None:
        self.inner, self.uri, self.remaining = inner, inner.uri, fail_on_put

    def get(self, key: str) -> bytes:
        return self.inner.get(key)

    def fetch(self, key: str, target: Path) -> Path:
        return self.inner.fetch(key, target)

    def put(self, key: str, data: bytes) -> None:
        self.remaining -= 1
        if self.remaining == 0:
            raise ConnectionError(f"injected failure uploading {key}")
        self.inner.put(key, data)

    def list_keys(self, prefix: str) -> list[str]:
        return self.inner.list_keys(prefix)

    def delete(self, keys: list[str]) -> None:
        self.inner.delete(keys)


@pytest.mark.parametrize("fail_on_put", [1, 7, len(Files.ALL) + 1])  # first file, mid-way, the manifest
def test_failed_publish_leaves_latest_on_the_previous_version(
    store: ArtifactStore, packaged: tuple[Manifest, dict[str, bytes]], fail_on_put: int
) -> None:
    manifest, files = packaged
    first = publish(store, fresh(manifest), files)
    with pytest.raises(ConnectionError, match="injected failure"):
        publish(FailingStore(store, fail_on_put), fresh(manifest), files)
    assert read_latest_version(store) == first.version
    assert list_versions(store) == [first.version]
    assert store.list_keys("models/") == sorted(
        [LATEST_KEY, version_key(first.version, "manifest.json")] + [version_key(first.version, f) for f in Files.ALL]
    )
    assert load_model(store).version == first.version


def test_retention_keeps_the_newest_versions(store: ArtifactStore, packaged: tuple[Manifest, dict[str, bytes]]) -> None:
    manifest, files = packaged
    versions = [publish(store, fresh(manifest), files, retention=2).version for _ in range(4)]
    assert list_versions(store) == sorted(versions)[-2:]
    assert read_latest_version(store) == versions[-1]


def test_old_manifests_without_the_flag_still_need_every_file(
    store: ArtifactStore, packaged: tuple[Manifest, dict[str, bytes]]
) -> None:
    manifest, files = packaged
    legacy = fresh(manifest).model_copy(update={"data": {k: v for k, v in manifest.data.items() if k != "user_arrays"}})
    assert legacy.user_arrays is True
    with pytest.raises(ValueError, match=r"user_ids\.npy"):
        publish(store, legacy, {k: v for k, v in files.items() if k != Files.USER_IDS})


def test_record_in_manifest_adds_data_and_keeps_the_checksums(
    store: ArtifactStore, packaged: tuple[Manifest, dict[str, bytes]]
) -> None:
    published = publish(store, fresh(packaged[0]), packaged[1])
    record_in_manifest(store, published.version, "user_sync", {"status": "ok"})
    again = read_manifest(store, published.version)
    assert again.data["user_sync"] == {"status": "ok"} and again.files == published.files
    assert load_model(store).version == published.version
