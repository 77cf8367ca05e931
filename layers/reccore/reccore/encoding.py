"""How each file of a model version is encoded to bytes and decoded back, and the checksum of its bytes.

No pickle anywhere: arrays are ``.npy`` read with ``allow_pickle=False``, the indexes use FAISS's own format,
text is UTF-8 columns (:mod:`reccore.columns`) and the category names JSON. The file names are
:class:`~reccore.layout.Files`.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from reccore.columns import CategoryColumn, IdLookup, StringColumn
from reccore.errors import ArtifactIntegrityError, ModelLoadError
from reccore.layout import Files


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
