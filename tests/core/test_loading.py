"""Loading a published model: round trips through moto's S3 and a directory, and the integrity checks on the way
(at load for the cold-start files, on first use for the deferred parts)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from reccore.encoding import npy_bytes, npy_load
from reccore.errors import ArtifactIntegrityError, ModelLoadError, ModelNotFoundError, ModelPartError
from reccore.layout import Files, Manifest, version_key
from reccore.loading import load_model
from reccore.storage import ArtifactStore
from reccore.versions import publish, read_latest_version, read_manifest
from tests.core.conftest import _npy, fresh


def test_round_trip_preserves_every_array(store: ArtifactStore, packaged: tuple[Manifest, dict[str, bytes]]) -> None:
    manifest, files = packaged
    published = publish(store, fresh(manifest), files)
    model = load_model(store)
    assert model.version == published.version == read_latest_version(store)
    assert set(published.files) == set(Files.ALL)
    np.testing.assert_array_equal(model.item_factors, np.load(_npy(files[Files.ITEM_FACTORS])))
    assert model.item_ids[:3] == ["i0", "i1", "i2"]
    assert model.content_based.sum() == 4
    assert model.index_ip.ntotal == model.n_items


def test_nothing_published_is_a_clear_error(store: ArtifactStore) -> None:
    with pytest.raises(ModelNotFoundError, match="no model published at"):
        load_model(store)


def _corrupt(store: ArtifactStore, version: str, name: str) -> None:
    key = version_key(version, name)
    data = bytearray(store.get(key))
    data[-1] ^= 0xFF
    store.put(key, bytes(data))


def test_corrupted_file_is_detected(store: ArtifactStore, packaged: tuple[Manifest, dict[str, bytes]]) -> None:
    published = publish(store, fresh(packaged[0]), packaged[1])
    _corrupt(store, published.version, Files.POPULARITY)
    with pytest.raises(ArtifactIntegrityError, match=r"checksum mismatch .*popularity\.npy"):
        load_model(store)


@pytest.mark.parametrize("name", Files.DEFERRED)
def test_a_corrupted_deferred_part_is_refused_on_first_use(
    store: ArtifactStore, packaged: tuple[Manifest, dict[str, bytes]], name: str
) -> None:
    published = publish(store, fresh(packaged[0]), packaged[1])
    _corrupt(store, published.version, name)
    model = load_model(store)  # the deferred parts are not fetched by the load
    assert name in model.parts.pending()
    for _ in range(2):  # refused each time it is needed, not cached as a failure nor as a value
        with pytest.raises(ModelPartError, match=rf"checksum mismatch .*{re.escape(name)}"):
            model.parts.get(name)
    assert model.parts.prefetch().keys() == {name}


def test_a_deferred_part_of_the_wrong_width_is_refused_at_load(
    store: ArtifactStore, packaged: tuple[Manifest, dict[str, bytes]]
) -> None:
    # Checksums intact, the item factors 2 columns wide (the model has 3): refused by the load, not by a fold-in.
    files = {**packaged[1], Files.ITEM_FACTORS: npy_bytes(npy_load(packaged[1][Files.ITEM_FACTORS])[:, :2].copy())}
    publish(store, fresh(packaged[0]), files)
    with pytest.raises(ModelLoadError, match=r"item_factors\.npy holds \d+ bytes, not \d+ rows of \d+ values"):
        load_model(store)


def test_missing_file_is_detected(store: ArtifactStore, packaged: tuple[Manifest, dict[str, bytes]]) -> None:
    published = publish(store, fresh(packaged[0]), packaged[1])
    store.delete([version_key(published.version, Files.POPULARITY)])
    with pytest.raises(ArtifactIntegrityError, match=r"missing file .*popularity\.npy"):
        load_model(store)
    # A deferred part is missed on its first use (a 503 for its paths; a swap fetches every part before it).
    store.put(version_key(published.version, Files.POPULARITY), packaged[1][Files.POPULARITY])
    store.delete([version_key(published.version, Files.INDEX_COS)])
    model = load_model(store)
    with pytest.raises(ModelPartError, match=r"missing file .*index_cos\.faiss"):
        model.parts.get(Files.INDEX_COS)


# --- item-side-only versions (the users live in the user-state table) ---------------------------


class CountingStore:
    """A store that records every key read."""

    def __init__(self, inner: ArtifactStore) -> None:
        self.inner, self.uri, self.read = inner, inner.uri, list[str]()

    def get(self, key: str) -> bytes:
        self.read.append(key)
        return self.inner.get(key)

    def fetch(self, key: str, target: Path) -> Path:
        self.read.append(key)
        return self.inner.fetch(key, target)

    def put(self, key: str, data: bytes) -> None:
        self.inner.put(key, data)

    def list_keys(self, prefix: str) -> list[str]:
        return self.inner.list_keys(prefix)

    def delete(self, keys: list[str]) -> None:
        self.inner.delete(keys)


def test_item_side_only_round_trip_gives_a_model_with_zero_users(
    store: ArtifactStore, packaged_item_side: tuple[Manifest, dict[str, bytes]]
) -> None:
    manifest, files = packaged_item_side
    assert not set(files) & set(Files.USER_SIDE)
    published = publish(store, fresh(manifest), files)
    assert published.data["user_arrays"] is False and published.user_arrays is False
    assert set(published.files) == set(Files.ALL) - set(Files.USER_SIDE)
    counting = CountingStore(store)
    model = load_model(counting)
    assert model.user_ids == [] and len(model.user_ids) == 0 and model.user_index == {}
    assert model.user_factors.shape == (0, 3) and model.user_factors.dtype == np.float32
    np.testing.assert_array_equal(model.history_indptr, [0])
    assert len(model.history_items) == len(model.history_times) == len(model.history_events) == 0
    assert model.n_items == 24 and model.index_ip.ntotal == 24  # the item side is whole
    fetched = {key.rsplit("/", 1)[-1] for key in counting.read}
    assert not fetched & set(Files.USER_SIDE), "the per-user files must not be downloaded"
    assert read_manifest(store, published.version).data["user_arrays"] is False
