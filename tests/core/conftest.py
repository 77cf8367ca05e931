"""The core's shared models and stores.

A hand-built model, made without the pipeline: two categories along two orthogonal factors. A synthetic catalogue
served from each index kind. And a model packaged by the pipeline, with the stores (moto's S3 and a directory) that
the artifact tests publish it to.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import pytest

from pipeline.package import package
from pipeline.train import train
from reccore.encoding import ItemTable, ModelContents, encode
from reccore.layout import Files, IndexInfo, Manifest
from reccore.model import Model, build_model
from reccore.storage import ArtifactStore, LocalStore, S3Store
from reccore.versions import new_version
from tests.pipeline.conftest import block_log

# Items 0-2 are "a" (factor 0), 3-5 are "b" (factor 1); within a category a higher number scores higher.
ITEM_FACTORS = np.array([[1, 0], [2, 0], [3, 0], [0, 1], [0, 2], [0, 3]], dtype=np.float32)
# user 0 likes "a", user 1 likes "b", user 2 has a zero vector (nothing usable), user 3 likes "a".
USER_FACTORS = np.array([[1, 0], [0, 1], [0, 0], [1, 0]], dtype=np.float32)
HISTORIES = [[2], [5], [3], []]  # newest first


def tiny_contents() -> ModelContents:
    indptr = np.concatenate([[0], np.cumsum([len(h) for h in HISTORIES])]).astype(np.int64)
    flat = np.array([i for h in HISTORIES for i in h], dtype=np.int32)
    unit = ITEM_FACTORS / np.linalg.norm(ITEM_FACTORS, axis=1, keepdims=True)
    index_ip, index_cos = faiss.IndexFlatIP(2), faiss.IndexFlatIP(2)
    index_ip.add(ITEM_FACTORS)
    index_cos.add(unit.astype(np.float32))
    return ModelContents(
        arrays={
            Files.USER_FACTORS: USER_FACTORS,
            Files.ITEM_FACTORS: ITEM_FACTORS,
            Files.SINGULAR_VALUES: np.array([1.0, 1.0], dtype=np.float32),
            Files.ITEM_WEIGHTS: np.ones(6, dtype=np.float32),
            Files.POPULARITY: np.array([6, 5, 4, 3, 2, 1], dtype=np.float32),  # item 0 most popular
            Files.CONTENT_BASED: np.array([0, 0, 0, 0, 0, 1], dtype=bool),
            Files.ITEM_MAP: ITEM_FACTORS.copy(),
            Files.HISTORY_INDPTR: indptr,
            Files.HISTORY_ITEMS: flat,
            Files.HISTORY_TIMES: np.arange(len(flat), dtype=np.int64),
            Files.HISTORY_EVENTS: np.zeros(len(flat), dtype=np.int8),
        },
        user_ids=["u0", "u1", "u2", "u3"],
        items=ItemTable(
            item_id=[f"i{i}" for i in range(6)],
            title=[f"Item {i}" for i in range(6)],
            category=["a", "a", "a", "b", "b", "b"],
            price=np.arange(6, dtype=np.float32),
        ),
        index_ip=index_ip,
        index_cos=index_cos,
    )


def tiny_manifest() -> Manifest:
    return Manifest(
        version="tiny",
        created_at=datetime.now(UTC),
        params={"weighting": {"scheme": "none", "avg_row_length": 1.0}},
        index=IndexInfo(type="flat", dims=2),
        event_types=["view"],
    )


@pytest.fixture(scope="module")
def tiny() -> Model:
    return build_model(tiny_manifest(), encode(tiny_contents()))


def catalogue_contents(kind: str = "flat", n_items: int = 3000, n_users: int = 200, seed: int = 0) -> ModelContents:
    """A synthetic catalogue: clustered 16-d item vectors in 6 categories, users with 20 seen items each.

    ``kind`` is the recommendation index: ``flat``, ``ivf`` or ``hnsw`` (built by the pipeline's builder).
    """
    from pipeline.index import build_index, normalise

    rng = np.random.default_rng(seed)
    dims, n_categories = 16, 6
    centres = rng.standard_normal((n_categories, dims))
    codes = rng.integers(0, n_categories, size=n_items)
    items = (centres[codes] + 0.7 * rng.standard_normal((n_items, dims))).astype(np.float32)
    users = (centres[rng.integers(0, n_categories, size=n_users)] + rng.standard_normal((n_users, dims))).astype(
        np.float32
    )
    histories = [rng.choice(n_items, size=20, replace=False) for _ in range(n_users)]
    flat = np.concatenate(histories).astype(np.int32)
    index_ip = build_index(items, kind)  # type: ignore[arg-type]
    if kind == "ivf":
        index_ip.nprobe = 8  # type: ignore[attr-defined]
    elif kind == "hnsw":
        index_ip.hnsw.efSearch = 64  # type: ignore[attr-defined]
    return ModelContents(
        arrays={
            Files.USER_FACTORS: users,
            Files.ITEM_FACTORS: items,
            Files.SINGULAR_VALUES: np.ones(dims, dtype=np.float32),
            Files.ITEM_WEIGHTS: np.ones(n_items, dtype=np.float32),
            Files.POPULARITY: rng.random(n_items).astype(np.float32),
            Files.CONTENT_BASED: np.zeros(n_items, dtype=bool),
            Files.ITEM_MAP: items[:, :2].copy(),
            Files.HISTORY_INDPTR: np.arange(0, 20 * n_users + 1, 20, dtype=np.int64),
            Files.HISTORY_ITEMS: flat,
            Files.HISTORY_TIMES: np.arange(len(flat), dtype=np.int64),
            Files.HISTORY_EVENTS: np.zeros(len(flat), dtype=np.int8),
        },
        user_ids=[f"u{u}" for u in range(n_users)],
        items=ItemTable(
            item_id=[f"i{i}" for i in range(n_items)],
            title=[f"Item {i}" for i in range(n_items)],
            category=[f"c{c}" for c in codes],
            price=np.ones(n_items, dtype=np.float32),
        ),
        index_ip=index_ip,
        index_cos=build_index(normalise(items), "flat"),
    )


def catalogue_manifest(kind: str = "flat") -> Manifest:
    manifest = tiny_manifest()
    return manifest.model_copy(update={"version": f"catalogue-{kind}", "index": IndexInfo(type=kind, dims=16)})


@pytest.fixture(scope="module", params=["flat", "ivf", "hnsw"])
def catalogue(request: pytest.FixtureRequest) -> Model:
    """The synthetic catalogue served from each index kind."""
    return build_model(catalogue_manifest(request.param), encode(catalogue_contents(request.param)))


# --- a model packaged by the pipeline, and the stores the artifact tests publish it to -----------------


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


def _npy(data: bytes):
    import io

    return io.BytesIO(data)


# --- item-side-only versions (the users live in the user-state table) ---------------------------


@pytest.fixture(scope="module")
def packaged_item_side() -> tuple[Manifest, dict[str, bytes]]:
    log = block_log(cold_items=2)
    return package(log, train(log, factors=3), user_arrays=False)
