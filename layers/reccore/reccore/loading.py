"""Loading a published model from a store: fetched, verified against its manifest and mapped, or read into memory.

Each load gets a private directory under the cache directory; :func:`remove_abandoned` clears those of dead
processes.
"""

from __future__ import annotations

import functools
import io
import os
import shutil
import tempfile
import uuid
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from reccore.encoding import decode_dir, map_file
from reccore.errors import ModelLoadError
from reccore.layout import Files, Manifest
from reccore.model import Model, assemble, build_model
from reccore.storage import ArtifactStore
from reccore.versions import fetch_verified, read_latest_version, read_manifest, read_verified

_DOWNLOAD_THREADS = 8


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
    (:func:`~reccore.encoding.decode_dir`), then deleted (the mappings outlive the files). A directory store's
    files are hashed and mapped in place, not copied. The :attr:`Files.DEFERRED` parts are not fetched here but
    on first use (:class:`~reccore.model.Parts`): they are most of the bytes, and a known user's recommendation
    never needs them. Without it, every file is decoded from memory. Both give identical answers. ``progress`` is
    called with a step's name as each one finishes (LATEST, the manifest, each file, the decoding).

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
    eager = [name for name in names if name not in Files.DEFERRED]
    try:

        def fetch(name: str) -> Path:
            path = fetch_verified(store, manifest, name, directory)
            step(name)
            return path

        with ThreadPoolExecutor(max_workers=_DOWNLOAD_THREADS) as pool:
            paths = list(pool.map(fetch, eager))
        # A directory store's files are verified and mapped in place; downloads sit together in ``directory``.
        folders = {path.parent for path in paths}
        source = folders.pop() if len(folders) == 1 else directory
        try:
            decoded = decode_dir(source, manifest.index.type, eager)
        except ModelLoadError as exc:
            raise ModelLoadError(f"model {manifest.version} cannot be loaded: {exc}") from exc
        step("decode")
        _check_sizes(manifest, len(decoded.items.item_id), len(decoded.arrays[Files.SINGULAR_VALUES]))
        remove = functools.partial(shutil.rmtree, directory, ignore_errors=True)
        model = assemble(manifest, decoded, lambda name: _fetch_part(store, manifest, name, directory), remove)
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    for path in paths:
        if path.parent == directory:
            path.unlink(missing_ok=True)  # the mappings outlive the files
    if model.parts.pending():
        weakref.finalize(model, remove)  # the directory goes when every part is here or the model is dropped
    else:
        remove()
    return model


def _check_sizes(manifest: Manifest, n_items: int, dims: int) -> None:
    """Refuse deferred arrays whose published size is not that of ``n_items`` rows of their width (float32 or
    float64): the shape check a deferred part would otherwise meet only on its first use, from the manifest."""
    for name, width in ((Files.ITEM_FACTORS, dims), (Files.ITEM_MAP, 2)):
        entry = manifest.files.get(name)
        if entry is not None and entry.size not in (_npy_size((n_items, width), d) for d in ("<f4", "<f8")):
            raise ModelLoadError(
                f"model {manifest.version} cannot be loaded: {name} holds {entry.size} bytes, "
                f"not {n_items} rows of {width} values"
            )


def _npy_size(shape: tuple[int, int], dtype: str) -> int:
    """The size of an ``.npy`` file of ``shape`` and ``dtype`` (its header, then the values)."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": dtype, "fortran_order": False, "shape": shape})
    return len(header.getvalue()) + shape[0] * shape[1] * np.dtype(dtype).itemsize


def _fetch_part(store: ArtifactStore, manifest: Manifest, name: str, directory: Path) -> Any:
    """One deferred part (:attr:`Files.DEFERRED`), verified and mapped."""
    path = fetch_verified(store, manifest, name, directory)
    try:
        return map_file(path, manifest.index.type)
    finally:
        if path.parent == directory:
            path.unlink(missing_ok=True)


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
