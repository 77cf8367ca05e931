"""A servable model: the published files turned into arrays, id maps and FAISS indexes."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import faiss
import numpy as np

from reccore.artifacts import (
    Files,
    Manifest,
    ModelContents,
    decode,
    decode_dir,
    fetch_verified,
    read_latest_version,
    read_manifest,
    read_verified,
)
from reccore.columns import CategoryColumn, IdLookup
from reccore.errors import ModelLoadError
from reccore.filtering import CategorySets
from reccore.storage import ArtifactStore

_DOWNLOAD_THREADS = 8


@dataclass(frozen=True, eq=False)
class Model:
    """One immutable model version. Requests hold a reference for their whole lifetime."""

    manifest: Manifest
    user_ids: Sequence[str]  # a StringColumn: strings decoded on access
    item_ids: Sequence[str]
    titles: Sequence[str]
    categories: CategoryColumn
    prices: np.ndarray
    user_factors: np.ndarray
    item_factors: np.ndarray
    singular_values: np.ndarray
    item_weights: np.ndarray
    popularity: np.ndarray
    content_based: np.ndarray
    item_map: np.ndarray
    history_indptr: np.ndarray
    history_items: np.ndarray
    history_times: np.ndarray
    history_events: np.ndarray
    index_ip: faiss.Index
    index_cos: faiss.Index
    user_index: IdLookup  # id -> row, without a dict of every id
    item_index: IdLookup
    loaded_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    popular_order: np.ndarray = field(init=False)
    category_sets: CategorySets = field(init=False)  # per-category id sets for filtered search

    def __post_init__(self) -> None:
        n_items, n_users = len(self.item_ids), len(self.user_ids)
        shapes = {
            Files.ITEM_FACTORS: (self.item_factors.shape[0], n_items),
            Files.USER_FACTORS: (self.user_factors.shape[0], n_users),
            Files.POPULARITY: (len(self.popularity), n_items),
            Files.CONTENT_BASED: (len(self.content_based), n_items),
            Files.ITEM_MAP: (len(self.item_map), n_items),
            Files.HISTORY_INDPTR: (len(self.history_indptr), n_users + 1),
            Files.INDEX_IP: (self.index_ip.ntotal, n_items),
            Files.INDEX_COS: (self.index_cos.ntotal, n_items),
        }
        bad = [f"{name} has {got} rows, expected {want}" for name, (got, want) in shapes.items() if got != want]
        if bad:
            raise ModelLoadError(f"model {self.manifest.version} is inconsistent: " + "; ".join(bad))
        set_ = object.__setattr__  # frozen dataclass: derived fields are set once here
        set_(self, "popular_order", np.argsort(-self.popularity, kind="stable").astype(np.int32))
        set_(self, "category_sets", CategorySets(self.category_codes, len(self.category_names)))

    @property
    def category_names(self) -> list[str]:
        return self.categories.names

    @property
    def category_codes(self) -> np.ndarray:
        return self.categories.codes

    @property
    def version(self) -> str:
        return self.manifest.version

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def trained_through(self) -> int | None:
        """Unix time of the newest interaction the model was trained on: later events are new to it."""
        time_range = self.manifest.data.get("time_range")
        return int(time_range[1]) if time_range else None

    def user_history(self, user: int) -> slice:
        """Positions of ``user``'s interactions in the history arrays, newest first."""
        return slice(int(self.history_indptr[user]), int(self.history_indptr[user + 1]))


def load_model(
    store: ArtifactStore,
    version: str | None = None,
    cache_dir: str | None = None,
    mmap: bool = True,
    progress: Callable[[str], None] | None = None,
) -> Model:
    """Read, verify and assemble a published model (the one LATEST names by default).

    With ``mmap`` (the default) each file of an S3 store is downloaded to a private directory under
    ``cache_dir`` (ranged GETs in parallel), hashed from disk and mapped from there
    (:func:`~reccore.artifacts.decode_dir`); the directory is removed once mapped. A directory store's files
    are hashed and mapped in place, not copied.
    Without it, every file is decoded from memory. Both give identical answers. ``progress`` is called
    with a step's name as each one finishes (LATEST, the manifest, each file, the decoding).

    Raises
    ------
    ModelNotFoundError
        Nothing is published at the store.
    ArtifactIntegrityError
        A file is missing or fails its size/sha256 check.
    ModelLoadError
        The files are intact but do not form a usable model.
    """
    step = progress or (lambda name: None)
    version = version or read_latest_version(store)
    step("LATEST")
    manifest = read_manifest(store, version)
    step("manifest")
    names = Files.required(manifest.user_arrays)  # an item-side-only version: the per-user files are not fetched
    if not mmap:
        # Independent, I/O-bound GETs: against S3 (tens of ms each) in parallel rather than one after another.
        # boto3 clients are thread-safe.
        with ThreadPoolExecutor(max_workers=_DOWNLOAD_THREADS) as pool:
            contents = pool.map(lambda name: read_verified(store, manifest, name), names)
            files = dict(zip(names, contents, strict=True))
        return build_model(manifest, files, cache_dir=cache_dir)
    root = Path(cache_dir or tempfile.gettempdir())
    root.mkdir(parents=True, exist_ok=True)
    remove_abandoned(root)
    directory = Path(tempfile.mkdtemp(prefix=f"{version}{_PID_MARK}{os.getpid()}.{_INSTANCE}-", dir=root))
    try:

        def fetch(name: str) -> Path:
            path = fetch_verified(store, manifest, name, directory)
            step(name)
            return path

        with ThreadPoolExecutor(max_workers=_DOWNLOAD_THREADS) as pool:
            paths = list(pool.map(fetch, names))
        # A directory store's files are verified and mapped in place; downloads sit together in ``directory``.
        folders = {path.parent for path in paths}
        source = folders.pop() if len(folders) == 1 else directory
        try:
            decoded = decode_dir(source, manifest.index.type)
        except ModelLoadError as exc:
            raise ModelLoadError(f"model {manifest.version} cannot be loaded: {exc}") from exc
        step("decode")
        return assemble(manifest, decoded)
    finally:
        shutil.rmtree(directory, ignore_errors=True)  # the mappings outlive the files


# Load directories are named <version>-pid<pid>.<instance>-<random>: the instance tells this process from a dead
# one that had the same pid (a restarted Lambda runtime often gets the same small pid).
_PID_MARK = "-pid"
_INSTANCE = uuid.uuid4().hex[:8]


def remove_abandoned(root: Path) -> list[Path]:
    """Remove the load directories under ``root`` whose process is gone (killed mid-load: OOM, a restart).

    A live process's directory is left alone (several workers may share ``root``). Returns what was removed.
    """
    removed = []
    for path in root.iterdir():
        mark = path.name.rfind(_PID_MARK)
        owner = path.name[mark + len(_PID_MARK) :].split("-", 1)[0] if mark >= 0 else ""
        pid, _, instance = owner.partition(".")
        if not path.is_dir() or not pid.isdigit():
            continue
        mine = int(pid) == os.getpid()
        if (mine and instance == _INSTANCE) or (not mine and _alive(int(pid))):
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def build_model(manifest: Manifest, files: dict[str, bytes], cache_dir: str | None = None) -> Model:
    """Assemble a :class:`Model` from already verified file contents.

    A version published without per-user arrays (``manifest.user_arrays`` false) gives a model with zero
    users; its users' state lives in the user-state store.
    """
    if not manifest.user_arrays:
        files = {name: data for name, data in files.items() if name not in Files.USER_SIDE}
    try:
        contents = decode(files, cache_dir)
    except ModelLoadError as exc:
        raise ModelLoadError(f"model {manifest.version} cannot be loaded: {exc}") from exc
    return assemble(manifest, contents)


def assemble(manifest: Manifest, contents: ModelContents) -> Model:
    """A :class:`Model` from decoded contents (in memory or mapped)."""
    arrays = contents.arrays
    try:
        user_index, item_index = contents.lookups()
        categories = contents.items.category
        return Model(
            manifest=manifest,
            user_ids=contents.user_ids,
            item_ids=contents.items.item_id,
            titles=contents.items.title,
            categories=categories if isinstance(categories, CategoryColumn) else CategoryColumn.of(categories),
            prices=contents.items.price,
            user_factors=arrays[Files.USER_FACTORS],
            item_factors=arrays[Files.ITEM_FACTORS],
            singular_values=arrays[Files.SINGULAR_VALUES],
            item_weights=arrays[Files.ITEM_WEIGHTS],
            popularity=arrays[Files.POPULARITY],
            content_based=arrays[Files.CONTENT_BASED].astype(bool),
            item_map=arrays[Files.ITEM_MAP],
            history_indptr=arrays[Files.HISTORY_INDPTR],
            history_items=arrays[Files.HISTORY_ITEMS],
            history_times=arrays[Files.HISTORY_TIMES],
            history_events=arrays[Files.HISTORY_EVENTS],
            index_ip=contents.index_ip,
            index_cos=contents.index_cos,
            user_index=user_index,
            item_index=item_index,
        )
    except (ValueError, TypeError, RuntimeError) as exc:
        raise ModelLoadError(f"model {manifest.version} cannot be loaded: {type(exc).__name__}: {exc}") from exc
