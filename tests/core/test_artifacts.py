"""The artifact format: round trips through moto's S3 and a directory, integrity checks, atomic publish."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest

from pipeline.package import package
from pipeline.train import train
from reccore.encoding import decode, encode, npy_bytes, npy_load
from reccore.errors import ArtifactIntegrityError, ConfigError, ModelLoadError, ModelNotFoundError, ModelPartError
from reccore.layout import LATEST_KEY, Files, Manifest, version_key
from reccore.loading import load_model
from reccore.model import build_model
from reccore.storage import ArtifactStore, LocalStore, S3Store, open_store
from reccore.versions import list_versions, new_version, publish, read_latest_version, read_manifest, record_in_manifest
from tests.core.conftest import tiny_contents
from tests.pipeline.conftest import block_log

BUCKET = "artifact-tests"


@pytest.fixture(scope="module")
def packaged() -> tuple[Manifest, dict[str, bytes]]:
    log = block_log(cold_items=2)
    return package(log, train(log, factors=3))


@pytest.fixture
def s3_store(mock_s3: Any) -> S3Store:
    mock_s3.create_bucket(Bucket=BUCKET)
    return S3Store(BUCKET, "team/recs")


@pytest.fixture(params=["s3", "local"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ArtifactStore]:
    if request.param == "local":
        yield LocalStore(tmp_path / "models")
    else:
        yield request.getfixturevalue("s3_store")


def fresh(manifest: Manifest) -> Manifest:
    return manifest.model_copy(update={"version": new_version()})


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


def test_s3_keys_live_under_the_prefix(s3_store: S3Store, packaged: tuple[Manifest, dict[str, bytes]]) -> None:
    published = publish(s3_store, fresh(packaged[0]), packaged[1])
    keys = {o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=BUCKET)["Contents"]}
    assert f"team/recs/{LATEST_KEY}" in keys
    assert f"team/recs/models/{published.version}/manifest.json" in keys
    assert all(k.startswith("team/recs/models/") for k in keys)


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
        publish(FailingStore(store, fail_on_put), fresh(manifest), files)  # type: ignore[arg-type]
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


def test_open_store_parses_locations(tmp_path: Path) -> None:
    s3 = open_store("s3://bucket-name/a/b/")
    assert isinstance(s3, S3Store) and s3.bucket == "bucket-name" and s3.prefix == "a/b"
    assert isinstance(open_store(str(tmp_path)), LocalStore)
    with pytest.raises(ConfigError):
        open_store("gs://elsewhere/x")
    with pytest.raises(ConfigError):
        open_store("s3://ab/x")


def test_arrays_are_written_without_pickle(packaged: tuple[Manifest, dict[str, bytes]]) -> None:
    for name, data in packaged[1].items():
        if name.endswith(".npy"):
            array = np.load(_npy(data), allow_pickle=False)
            assert array.dtype != object, name


def _npy(data: bytes):  # type: ignore[no-untyped-def]
    import io

    return io.BytesIO(data)


def test_encode_then_decode_gives_back_every_file_without_the_pipeline() -> None:
    original = tiny_contents()
    decoded = decode(encode(original))
    for name in Files.ARRAYS:
        np.testing.assert_array_equal(decoded.arrays[name], original.arrays[name])
        assert decoded.arrays[name].dtype == original.arrays[name].dtype, name
    assert list(decoded.user_ids) == list(original.user_ids)
    assert list(decoded.items.item_id) == list(original.items.item_id)
    assert list(decoded.items.title) == list(original.items.title)
    assert list(decoded.items.category) == list(original.items.category)
    assert decoded.item_index is not None and decoded.item_index["i4"] == 4 and "i9" not in decoded.item_index
    np.testing.assert_allclose(decoded.items.price, original.items.price)
    assert decoded.index_ip.ntotal == decoded.index_cos.ntotal == 6


def test_decode_rejects_a_pickled_array() -> None:
    files = encode(tiny_contents())
    # An object-dtype .npy (what np.save writes for pickled objects), built from its header alone: nothing here
    # pickles, and the reader must refuse the file on its dtype before reading any payload.
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "|O", "fortran_order": False, "shape": (1,)})
    files[Files.POPULARITY] = buffer.getvalue() + b"\x80\x04payload"
    with pytest.raises(ModelLoadError):
        decode(files)


# --- item-side-only versions (the users live in the user-state table) ---------------------------


@pytest.fixture(scope="module")
def packaged_item_side() -> tuple[Manifest, dict[str, bytes]]:
    log = block_log(cold_items=2)
    return package(log, train(log, factors=3), user_arrays=False)


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


def test_both_modes_keep_the_same_item_side(
    packaged: tuple[Manifest, dict[str, bytes]], packaged_item_side: tuple[Manifest, dict[str, bytes]]
) -> None:
    with_users, item_side = build_model(*packaged), build_model(*packaged_item_side)
    assert with_users.n_users == 40 and item_side.n_users == 0
    assert packaged[0].user_arrays is True and packaged[0].data["user_arrays"] is True
    np.testing.assert_allclose(item_side.item_factors, with_users.item_factors, rtol=1e-5, atol=1e-6)
    assert list(item_side.item_ids) == list(with_users.item_ids)


def test_old_manifests_without_the_flag_still_need_every_file(
    store: ArtifactStore, packaged: tuple[Manifest, dict[str, bytes]]
) -> None:
    manifest, files = packaged
    legacy = fresh(manifest).model_copy(update={"data": {k: v for k, v in manifest.data.items() if k != "user_arrays"}})
    assert legacy.user_arrays is True
    with pytest.raises(ValueError, match=r"user_ids\.npy"):
        publish(store, legacy, {k: v for k, v in files.items() if k != Files.USER_IDS})


def test_partial_per_user_files_are_rejected(packaged: tuple[Manifest, dict[str, bytes]]) -> None:
    files = {k: v for k, v in packaged[1].items() if k != Files.HISTORY_TIMES}
    with pytest.raises(ModelLoadError, match=r"history_times\.npy"):
        decode(files)


def test_record_in_manifest_adds_data_and_keeps_the_checksums(
    store: ArtifactStore, packaged: tuple[Manifest, dict[str, bytes]]
) -> None:
    published = publish(store, fresh(packaged[0]), packaged[1])
    record_in_manifest(store, published.version, "user_sync", {"status": "ok"})
    again = read_manifest(store, published.version)
    assert again.data["user_sync"] == {"status": "ok"} and again.files == published.files
    assert load_model(store).version == published.version
