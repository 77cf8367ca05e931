"""The artifact layout: the store keys of a model version, its file names and the manifest's schema.

The one place that knows them. Under a store's prefix::

    models/LATEST                      the current version id, written last
    models/<version>/manifest.json     every file's size and sha256, params, data stats, metrics
    models/<version>/<file>            the files named in :class:`Files`

How each file is encoded is :mod:`reccore.encoding`; publishing and reading versions is :mod:`reccore.versions`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

FORMAT_VERSION = 2  # 2: text in columns (.npy) instead of users.json and items.json
MODELS_DIR = "models"
LATEST_KEY = f"{MODELS_DIR}/LATEST"
MANIFEST_NAME = "manifest.json"
USER_ARRAYS_KEY = "user_arrays"  # manifest.data[...]: false for an item-side-only version


class Files:
    """The file names inside one model version. The only place that knows them."""

    USER_FACTORS = "user_factors.npy"  # float32 (n_users, k): x_u·Q·Σ⁻² (a training user's own fold-in)
    ITEM_FACTORS = "item_factors.npy"  # float32 (n_items, k): V·Σ^(1+β/2) (content vectors for cold items)
    SINGULAR_VALUES = "singular_values.npy"  # float32 (k,)
    ITEM_WEIGHTS = "item_weights.npy"  # float32 (n_items,): per-item factor of the weighting, for fold-in
    POPULARITY = "popularity.npy"  # float32 (n_items,): recency-weighted popularity score
    CONTENT_BASED = "content_based.npy"  # bool (n_items,): vector comes from metadata, not interactions
    ITEM_MAP = "item_map.npy"  # float32 (n_items, 2): PCA of the item vectors
    HISTORY_INDPTR = "history_indptr.npy"  # int64 (n_users + 1,): CSR row pointers, newest first per user
    HISTORY_ITEMS = "history_items.npy"  # int32: item index per interaction
    HISTORY_TIMES = "history_times.npy"  # int64: unix seconds
    HISTORY_EVENTS = "history_events.npy"  # int8: position in manifest.event_types
    # Text in columns (reccore.columns): a StringColumn is a UTF-8 buffer and its offsets; an IdLookup adds the
    # ids' 64-bit hashes in ascending order and the row of each. Nothing is parsed at load: all are mapped.
    USER_IDS = "user_ids.npy"  # uint8: the user ids' UTF-8, concatenated in row order
    USER_ID_OFFSETS = "user_id_offsets.npy"  # int64 (n_users + 1,): row i is bytes offsets[i]:offsets[i + 1]
    USER_ID_HASHES = "user_id_hashes.npy"  # uint64 (n_users,): blake2b-64 of each id, ascending
    USER_ID_ROWS = "user_id_rows.npy"  # int64 (n_users,): the row of each hash
    ITEM_IDS = "item_ids.npy"  # as the user files, for the item ids
    ITEM_ID_OFFSETS = "item_id_offsets.npy"
    ITEM_ID_HASHES = "item_id_hashes.npy"
    ITEM_ID_ROWS = "item_id_rows.npy"
    TITLES = "titles.npy"  # uint8 and int64: the item titles as a StringColumn
    TITLE_OFFSETS = "title_offsets.npy"
    CATEGORIES = "categories.json"  # ["name", ...]: the distinct categories, sorted
    CATEGORY_CODES = "category_codes.npy"  # int32 (n_items,): each item's position in categories.json
    PRICES = "prices.npy"  # float32 (n_items,)
    INDEX_IP = "index_ip.faiss"  # item vectors, inner product: recommendation
    INDEX_COS = "index_cos.faiss"  # normalised item vectors, inner product = cosine: similar items

    # The numeric model arrays (ModelContents.arrays); the text files are encoded from the ids and ItemTable.
    ARRAYS = (
        USER_FACTORS, ITEM_FACTORS, SINGULAR_VALUES, ITEM_WEIGHTS, POPULARITY, CONTENT_BASED, ITEM_MAP,
        HISTORY_INDPTR, HISTORY_ITEMS, HISTORY_TIMES, HISTORY_EVENTS,
    )  # fmt: skip
    USER_TEXT = (USER_IDS, USER_ID_OFFSETS, USER_ID_HASHES, USER_ID_ROWS)
    ITEM_TEXT = (ITEM_IDS, ITEM_ID_OFFSETS, ITEM_ID_HASHES, ITEM_ID_ROWS, TITLES, TITLE_OFFSETS, CATEGORIES,
                 CATEGORY_CODES, PRICES)  # fmt: skip
    ALL = (*ARRAYS, *USER_TEXT, *ITEM_TEXT, INDEX_IP, INDEX_COS)
    # Fetched on first use (or in the background once the model serves), not in the cold start: only fold-in,
    # heavy filters, diversity, similar items and the map touch them, and they are most of the bytes.
    DEFERRED = (ITEM_FACTORS, ITEM_MAP, INDEX_COS)
    # Per-user files: optional (manifest.data["user_arrays"] false) when a user-state table holds the users instead.
    USER_SIDE = (USER_FACTORS, *USER_TEXT, HISTORY_INDPTR, HISTORY_ITEMS, HISTORY_TIMES, HISTORY_EVENTS)

    @classmethod
    def required(cls, user_arrays: bool = True) -> tuple[str, ...]:
        """The files a version has: all of them, or the item-side ones only."""
        return cls.ALL if user_arrays else tuple(name for name in cls.ALL if name not in cls.USER_SIDE)


class FileEntry(BaseModel):
    size: int
    sha256: str


class IndexInfo(BaseModel):
    type: str  # "flat" | "ivf" | "hnsw"
    metric: str = "inner_product"
    dims: int
    params: dict[str, int] = Field(default_factory=dict)  # ivf: nlist, nprobe; hnsw: M, efSearch
    recall_at_10: float | None = None  # measured against exact search; None for an exact index
    filtered_recall_at_10: float | None = None  # the same, on queries that exclude half the categories
    selection: list[dict[str, Any]] = Field(default_factory=list)  # what --index auto measured, and why


class Manifest(BaseModel):
    """Everything a reader needs to know about one published model."""

    format_version: int = FORMAT_VERSION
    version: str
    created_at: datetime
    params: dict[str, Any] = Field(default_factory=dict)
    data: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, dict[str, float]] = Field(default_factory=dict)
    tuning: dict[str, Any] | None = None  # the validation search (space, trials, winner, seconds) if one ran
    index: IndexInfo
    event_types: list[str]  # code -> name, for history_events
    engine: str = "single-process"  # which training engine produced it: "single-process" or "spark"
    files: dict[str, FileEntry] = Field(default_factory=dict)

    @property
    def user_arrays(self) -> bool:
        """Whether this version carries the per-user files (``data["user_arrays"]``; absent means it does)."""
        return bool(self.data.get(USER_ARRAYS_KEY, True))


def version_prefix(version: str = "") -> str:
    """The key prefix of one version's files, or with no version of every version's (``models/``)."""
    return f"{MODELS_DIR}/{version}/" if version else f"{MODELS_DIR}/"


def version_key(version: str, name: str) -> str:
    return version_prefix(version) + name


def version_of(key: str) -> str:
    """The version a key under :func:`version_prefix` belongs to (``models/<version>/<name>``)."""
    return key[len(version_prefix()) :].split("/", 1)[0]
