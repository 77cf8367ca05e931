"""The artifact format: key layout, manifest schema, and checksummed read/write.

Layout under a store's prefix::

    models/LATEST                      the current version id, written last
    models/<version>/manifest.json     every file's size and sha256, params, data stats, metrics
    models/<version>/<file>            the files named in :class:`Files`

No pickle anywhere: arrays are ``.npy`` read with ``allow_pickle=False``, the
indexes use FAISS's own format, ids and metadata are JSON.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import secrets
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import faiss
import numpy as np
from pydantic import BaseModel, Field

from reccore.columns import CategoryColumn, IdLookup, StringColumn
from reccore.errors import ArtifactIntegrityError, ModelLoadError, ModelNotFoundError
from reccore.storage import ArtifactStore

logger = logging.getLogger(__name__)

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


def new_version(now: datetime | None = None) -> str:
    """A sortable, collision-resistant version id such as ``20261126T043512.123456Z-9f2c1a``."""
    now = now or datetime.now(UTC)
    return f"{now:%Y%m%dT%H%M%S.%fZ}-{secrets.token_hex(3)}"


def version_key(version: str, name: str) -> str:
    return f"{MODELS_DIR}/{version}/{name}"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def npy_load(data: bytes) -> np.ndarray:
    return np.load(io.BytesIO(data), allow_pickle=False)


def json_bytes(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


# --- file contents: how each file is encoded and decoded ---------------------


@dataclass(frozen=True)
class ItemTable:
    """Item metadata in row order: lists from the pipeline, columns (:mod:`reccore.columns`) once decoded."""

    item_id: Sequence[str]
    title: Sequence[str]
    category: Sequence[str]
    price: np.ndarray  # float32 (n_items,)


@dataclass(frozen=True)
class ModelContents:
    """Every file of one model version, decoded: what the pipeline computes and the service assembles.

    ``user_index`` and ``item_index`` find an id's row; decoding reads them from the files, and
    :meth:`lookups` builds them for contents made in memory.
    """

    arrays: dict[str, np.ndarray]  # each array of :attr:`Files.ARRAYS`, by name
    user_ids: Sequence[str]
    items: ItemTable
    index_ip: faiss.Index
    index_cos: faiss.Index | None  # None: not fetched yet (one of Files.DEFERRED)
    user_index: IdLookup | None = None
    item_index: IdLookup | None = None

    def lookups(self) -> tuple[IdLookup, IdLookup]:
        """The user and item id lookups (built from the ids when the contents were not decoded)."""
        return (
            self.user_index or IdLookup.of(_column(self.user_ids)),
            self.item_index or IdLookup.of(_column(self.items.item_id)),
        )


def _column(strings: Sequence[str]) -> StringColumn:
    return strings if isinstance(strings, StringColumn) else StringColumn.of(strings)


def encode(contents: ModelContents, user_arrays: bool = True) -> dict[str, bytes]:
    """The bytes of every file in :class:`Files` (the inverse of :func:`decode`).

    With ``user_arrays`` false, the per-user files (:attr:`Files.USER_SIDE`) are left out. Raises
    ``ValueError`` for a missing array or text that is not valid Unicode (a response could not encode it).
    """
    names = Files.required(user_arrays)
    missing = [name for name in Files.ARRAYS if name in names and name not in contents.arrays]
    if missing:
        raise ValueError(f"encode: arrays missing from the model: {', '.join(missing)}")
    files = {name: npy_bytes(contents.arrays[name]) for name in Files.ARRAYS if name in names}
    items = contents.items
    text = [(Files.ITEM_IDS, Files.ITEM_ID_OFFSETS, Files.ITEM_ID_HASHES, Files.ITEM_ID_ROWS, items.item_id)]
    if user_arrays:
        users = contents.user_ids
        text.append((Files.USER_IDS, Files.USER_ID_OFFSETS, Files.USER_ID_HASHES, Files.USER_ID_ROWS, users))
    for data_name, offsets_name, hashes_name, rows_name, ids in text:
        try:
            column = _column(ids)
        except ValueError as exc:
            raise ValueError(f"encode: {data_name}: {exc}") from exc
        lookup = IdLookup.of(column)
        files.update({data_name: npy_bytes(column.data), offsets_name: npy_bytes(column.offsets),
                      hashes_name: npy_bytes(lookup.hashes), rows_name: npy_bytes(lookup.rows)})  # fmt: skip
    try:
        titles = _column(items.title)
    except ValueError as exc:
        raise ValueError(f"encode: {Files.TITLES}: {exc}") from exc
    categories = items.category if isinstance(items.category, CategoryColumn) else CategoryColumn.of(items.category)
    files[Files.TITLES], files[Files.TITLE_OFFSETS] = npy_bytes(titles.data), npy_bytes(titles.offsets)
    files[Files.CATEGORIES] = json_bytes(categories.names)
    files[Files.CATEGORY_CODES] = npy_bytes(categories.codes.astype(np.int32))
    files[Files.PRICES] = npy_bytes(np.asarray(items.price, dtype=np.float32))
    files[Files.INDEX_IP] = faiss.serialize_index(contents.index_ip).tobytes()
    if contents.index_cos is None:
        raise ValueError(f"encode: {Files.INDEX_COS} missing from the model")
    files[Files.INDEX_COS] = faiss.serialize_index(contents.index_cos).tobytes()
    return files


def decode(files: dict[str, bytes], cache_dir: str | None = None) -> ModelContents:
    """Decode verified file contents held in memory (see :func:`decode_dir` for files on disk).

    Without any of the per-user files (an item-side-only version) the contents have zero users: no ids,
    user factors of shape ``(0, k)`` and an empty history (``indptr == [0]``).

    Raises
    ------
    ModelLoadError
        A file is intact but not what its name promises (bad JSON, a pickled or malformed array, missing keys),
        or only some of the per-user files are present.
    ArtifactIntegrityError
        A FAISS index cannot be read.
    """
    return _decode(
        set(files),
        lambda name: files[name],
        lambda name: npy_load(files[name]),
        lambda name: _read_index(files[name], cache_dir),
    )


def decode_dir(directory: str | Path, index_type: str = "flat", names: Iterable[str] | None = None) -> ModelContents:
    """Decode verified files in ``directory``, mapping arrays and indexes instead of reading them.

    Arrays are ``np.load(mmap_mode="r")`` views and the FAISS indexes are read with FAISS's mmap flag
    (an IVF index maps its inverted lists, flat and HNSW their vector storage), so the pages come from
    the page cache on first touch. The mappings outlive the files: callers may delete them afterwards.
    Same rules and errors as :func:`decode`, except that files of :attr:`Files.DEFERRED` may be absent (not
    fetched yet): their arrays are left out and ``index_cos`` is None. ``names`` limits the files read (default:
    every file in ``directory``).
    """
    root = Path(directory)
    return _decode(
        {path.name for path in root.iterdir()} if names is None else set(names),
        lambda name: (root / name).read_bytes(),
        lambda name: map_file(root / name, index_type),
        lambda name: map_file(root / name, index_type),
    )


def map_file(path: Path, index_type: str = "flat") -> Any:
    """One verified ``.npy`` or FAISS file on disk, mapped (see :func:`decode_dir`)."""
    if path.suffix == ".faiss":
        flag = faiss.IO_FLAG_MMAP if index_type == "ivf" else faiss.IO_FLAG_MMAP_IFC
        try:
            return faiss.read_index(str(path), flag)
        except RuntimeError as exc:
            raise ArtifactIntegrityError(f"FAISS index unreadable: {exc}") from exc
    # np.asarray: a plain ndarray over the same mapped pages; indexing a np.memmap subclass costs several µs
    # per access on the request path (measured: 17 accesses per /recommend).
    try:
        return np.asarray(np.load(path, mmap_mode="r", allow_pickle=False))
    except ValueError as exc:
        raise ModelLoadError(f"{path.name} cannot be decoded: {exc}") from exc


def _decode(
    names: set[str],
    read: Callable[[str], bytes],
    load_array: Callable[[str], np.ndarray],
    read_index: Callable[[str], faiss.Index],
) -> ModelContents:
    """The one decoder: of the files in ``names``, ``read`` gives bytes, ``load_array`` an ``.npy``, ``read_index``
    an index."""
    present = [name for name in Files.USER_SIDE if name in names]
    if present and len(present) != len(Files.USER_SIDE):
        absent = [name for name in Files.USER_SIDE if name not in names]
        raise ModelLoadError(f"model files cannot be decoded: per-user files incomplete, missing {', '.join(absent)}")

    def text(data_name: str, offsets_name: str) -> StringColumn:
        return StringColumn(load_array(data_name), load_array(offsets_name))

    try:
        item_ids = text(Files.ITEM_IDS, Files.ITEM_ID_OFFSETS)
        table = ItemTable(
            item_id=item_ids,
            title=text(Files.TITLES, Files.TITLE_OFFSETS),
            category=CategoryColumn(
                [str(c) for c in json.loads(read(Files.CATEGORIES))], load_array(Files.CATEGORY_CODES)
            ),
            price=load_array(Files.PRICES),
        )
        item_index = IdLookup(item_ids, load_array(Files.ITEM_ID_HASHES), load_array(Files.ITEM_ID_ROWS))
        wanted = [name for name in Files.ARRAYS if name not in Files.USER_SIDE or present]
        arrays = {name: load_array(name) for name in wanted if name in names or name not in Files.DEFERRED}
        if present:
            user_ids = text(Files.USER_IDS, Files.USER_ID_OFFSETS)
            user_index = IdLookup(user_ids, load_array(Files.USER_ID_HASHES), load_array(Files.USER_ID_ROWS))
        else:
            user_ids = StringColumn.of([])
            user_index = IdLookup.of(user_ids)
            arrays.update(_no_users(len(arrays[Files.SINGULAR_VALUES])))
    except (KeyError, ValueError, TypeError) as exc:
        raise ModelLoadError(f"model files cannot be decoded: {type(exc).__name__}: {exc}") from exc
    return ModelContents(
        arrays=arrays,
        user_ids=user_ids,
        items=table,
        index_ip=read_index(Files.INDEX_IP),
        index_cos=read_index(Files.INDEX_COS) if Files.INDEX_COS in names else None,
        user_index=user_index,
        item_index=item_index,
    )


def _no_users(k: int) -> dict[str, np.ndarray]:
    """The per-user arrays of a model with zero users, dtypes as in :class:`Files`."""
    return {
        Files.USER_FACTORS: np.zeros((0, k), dtype=np.float32),
        Files.HISTORY_INDPTR: np.zeros(1, dtype=np.int64),
        Files.HISTORY_ITEMS: np.zeros(0, dtype=np.int32),
        Files.HISTORY_TIMES: np.zeros(0, dtype=np.int64),
        Files.HISTORY_EVENTS: np.zeros(0, dtype=np.int8),
    }


def _read_index(data: bytes, cache_dir: str | None) -> faiss.Index:
    # Through a file rather than deserialize_index, which keeps a second copy in RAM (faiss#1082).
    directory = Path(cache_dir or tempfile.gettempdir())
    directory.mkdir(parents=True, exist_ok=True)
    fd, path = tempfile.mkstemp(suffix=".faiss", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        return faiss.read_index(path)
    except RuntimeError as exc:
        raise ArtifactIntegrityError(f"FAISS index unreadable: {exc}") from exc
    finally:
        os.unlink(path)


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
            "publish the model again with this version of the pipeline (python -m pipeline run)"
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
    suffix = "/" + MANIFEST_NAME
    keys = store.list_keys(MODELS_DIR + "/")
    return sorted(k[len(MODELS_DIR) + 1 : -len(suffix)] for k in keys if k.endswith(suffix))


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
        store.delete(store.list_keys(f"{MODELS_DIR}/{version}/"))
    except Exception as exc:  # noqa: BLE001 - cleanup must not mask the failure being handled
        logger.warning("could not delete version %s at %s: %s", version, store.uri, exc)
