"""Loading a model by mapping its files gives the same answers as decoding them in memory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from reccore.columns import CategoryColumn
from reccore.encoding import encode
from reccore.errors import ArtifactIntegrityError
from reccore.loading import load_model
from reccore.recommend import recommend
from reccore.scoring import Filters, similar_items
from reccore.storage import LocalStore
from reccore.versions import publish
from tests.core.conftest import catalogue_contents, catalogue_manifest


@pytest.mark.parametrize("kind", ["flat", "ivf", "hnsw"])
def test_mapped_load_answers_exactly_as_the_in_memory_load(kind: str, tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "models")
    publish(store, catalogue_manifest(kind), encode(catalogue_contents(kind)))
    mapped = load_model(store, cache_dir=str(tmp_path / "cache"), mmap=True)
    in_memory = load_model(store, cache_dir=str(tmp_path / "cache"), mmap=False)
    assert mapped.parts.pending() and not in_memory.parts.pending()  # the deferred parts come on first use
    assert isinstance(mapped.item_factors.base, np.memmap)  # a plain ndarray over the mapped file
    assert not isinstance(in_memory.item_factors.base, np.memmap)
    assert mapped.parts.prefetch() == {} and not mapped.parts.pending()
    assert list((tmp_path / "cache").iterdir()) == []  # the mapped copy's files are gone; the mappings stay valid
    filters = [Filters(), Filters(exclude_categories=frozenset({"c0", "c1", "c2"}), exclude_items=frozenset({3, 4}))]
    for user in range(0, mapped.n_users, 7):
        for request in filters:
            a = recommend(mapped, 10, user=user, filters=request)
            b = recommend(in_memory, 10, user=user, filters=request)
            assert a.items.tolist() == b.items.tolist() and a.sources == b.sources
            np.testing.assert_array_equal(a.scores, b.scores)
    for item in range(0, mapped.n_items, 301):
        assert similar_items(mapped, item, 5).items.tolist() == similar_items(in_memory, item, 5).items.tolist()


@pytest.mark.parametrize("categories", [[], ["b"], ["b", "a", "b", "c", "a"], ["x", "X", "", "é", "x"]])
def test_category_codes_are_np_uniques(categories: list[str]) -> None:
    column = CategoryColumn.of(categories)
    names, codes = column.names, column.codes
    expected_names, expected_codes = np.unique(np.asarray(categories, dtype=str), return_inverse=True)
    assert names == [str(n) for n in expected_names] and codes.dtype == np.int32
    np.testing.assert_array_equal(codes, expected_codes.astype(np.int32))


def test_a_directory_store_is_mapped_in_place_and_still_verified(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "models")
    version = publish(store, catalogue_manifest("flat"), encode(catalogue_contents("flat"))).version
    model = load_model(store, cache_dir=str(tmp_path / "cache"))
    mapped = Path(model.item_factors.base.filename)  # type: ignore[union-attr]
    assert mapped == (tmp_path / "models" / "models" / version / "item_factors.npy").resolve()  # not a copy
    # A tampered file in place is refused as a download would be.
    path = tmp_path / "models" / "models" / version / "popularity.npy"
    path.write_bytes(path.read_bytes()[:-4] + b"\0\0\0\0")
    with pytest.raises(ArtifactIntegrityError, match="checksum mismatch"):
        load_model(store, cache_dir=str(tmp_path / "cache"))


def test_a_large_file_from_s3_arrives_by_ranged_gets_and_verified(s3_server: str, tmp_path: Path) -> None:
    import boto3

    from reccore.storage import S3Store

    client = boto3.client("s3")
    client.create_bucket(Bucket="ranged")
    store = S3Store("ranged", "p", client=client)
    payload = np.random.default_rng(0).bytes(40 * 1024 * 1024 + 17)  # over two 16 MiB parts
    store.put("blob", payload)
    got = store.fetch("blob", tmp_path / "blob")
    assert got.read_bytes() == payload
    with pytest.raises(FileNotFoundError):
        store.fetch("missing", tmp_path / "missing")
