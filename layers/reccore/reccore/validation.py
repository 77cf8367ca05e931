"""Checks a loaded model must pass before it serves: shapes, dtypes, ranges, and one query per path.

Checksums prove the files are the ones published, not that they agree with each other: a version whose
item factors have 3 columns while its index has 50 dimensions passes them, then fails every request.
:func:`validate_model` refuses such a version before it goes live (the service keeps the old one).

Two depths. The pipeline validates ``thorough``-ly before it publishes: every value (finite factors, history
pointers and item codes in range, ids unique, all text valid Unicode). The service, loading files whose
checksums prove they are those bytes, checks what is cheap (dtypes, shapes, counts, one query per path) and
touches no more of a mapped model than a query does: at 1M items the value scans cost 0.5 s of the cold start
and pulled every page of the factors into memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from reccore.columns import IdLookup, StringColumn, id_hashes
from reccore.errors import ModelValidationError
from reccore.layout import Files
from reccore.model import Model
from reccore.recommend import Interactions, recommend
from reccore.scoring import Filters, similar_items

# dtype kind per array: f float, i/u integer, b bool (numpy's ``dtype.kind``).
_KINDS: dict[str, str] = {
    Files.USER_FACTORS: "f",
    Files.ITEM_FACTORS: "f",
    Files.SINGULAR_VALUES: "f",
    Files.ITEM_WEIGHTS: "f",
    Files.POPULARITY: "f",
    Files.CONTENT_BASED: "b",
    Files.ITEM_MAP: "f",
    Files.HISTORY_INDPTR: "iu",
    Files.HISTORY_ITEMS: "iu",
    Files.HISTORY_TIMES: "iu",
    Files.HISTORY_EVENTS: "iu",
}


# The model attribute of each array file.
_ATTRIBUTES = {
    Files.USER_FACTORS: "user_factors",
    Files.ITEM_FACTORS: "item_factors",
    Files.SINGULAR_VALUES: "singular_values",
    Files.ITEM_WEIGHTS: "item_weights",
    Files.POPULARITY: "popularity",
    Files.CONTENT_BASED: "content_based",
    Files.ITEM_MAP: "item_map",
    Files.HISTORY_INDPTR: "history_indptr",
    Files.HISTORY_ITEMS: "history_items",
    Files.HISTORY_TIMES: "history_times",
    Files.HISTORY_EVENTS: "history_events",
    Files.INDEX_IP: "index_ip",
    Files.INDEX_COS: "index_cos",
}


def _parts(model: Model, names: Iterable[str]) -> dict[str, Any]:
    """The arrays or indexes ``names`` of ``model``, less the deferred parts not fetched yet (reading them would
    fetch them)."""
    pending = model.parts.pending()
    return {name: getattr(model, _ATTRIBUTES[name]) for name in names if name not in pending}


def _arrays(model: Model) -> dict[str, np.ndarray]:
    return _parts(model, _KINDS)


def structural_problems(model: Model, thorough: bool = True) -> list[str]:
    """Every disagreement between the arrays, the id lists, the indexes and the manifest (empty if none).

    Without ``thorough``, only what needs no pass over the data: dtypes, shapes, counts, the ends of the
    history pointers and the text columns' offsets. Repeated ids are a ``thorough`` check (the pipeline's).
    """
    n_users, n_items, dims = model.n_users, model.n_items, model.manifest.index.dims
    n_history = len(model.history_items)
    expected: dict[str, tuple[int, ...]] = {
        Files.USER_FACTORS: (n_users, dims),
        Files.ITEM_FACTORS: (n_items, dims),
        Files.SINGULAR_VALUES: (dims,),
        Files.ITEM_WEIGHTS: (n_items,),
        Files.POPULARITY: (n_items,),
        Files.CONTENT_BASED: (n_items,),
        Files.ITEM_MAP: (n_items, 2),
        Files.HISTORY_INDPTR: (n_users + 1,),
        Files.HISTORY_ITEMS: (n_history,),
        Files.HISTORY_TIMES: (n_history,),
        Files.HISTORY_EVENTS: (n_history,),
    }
    problems: list[str] = []
    for name, array in _arrays(model).items():
        if array.dtype.kind not in _KINDS[name]:
            problems.append(f"{name} has dtype {array.dtype}")
        if array.shape != expected[name]:
            problems.append(f"{name} has shape {array.shape}, expected {expected[name]}")
    for name, index in _parts(model, (Files.INDEX_IP, Files.INDEX_COS)).items():
        if index.d != dims or index.ntotal != n_items:
            problems.append(f"{name} holds {index.ntotal} vectors of {index.d} dims, expected {n_items} of {dims}")
    problems += _text_problems(model, thorough)
    data = model.manifest.data
    # n_items only: an item-side-only version publishes no per-user arrays, yet its manifest counts the trained users.
    if "n_items" in data and data["n_items"] != n_items:
        problems.append(f"manifest says n_items={data['n_items']}, the files hold {n_items}")
    if problems:  # the value checks below index with these shapes
        return problems
    if not np.all(np.isfinite(model.singular_values)) or np.any(model.singular_values <= 0):
        problems.append(f"{Files.SINGULAR_VALUES} must be finite and positive (fold-in divides by them)")
    indptr = model.history_indptr
    if n_users and (indptr[0] != 0 or indptr[-1] != n_history):
        problems.append(f"{Files.HISTORY_INDPTR} is not a row-pointer array over {n_history} interactions")
    if not thorough:
        return problems
    for name in (Files.USER_FACTORS, Files.ITEM_FACTORS, Files.ITEM_WEIGHTS, Files.POPULARITY):
        if not np.all(np.isfinite(_arrays(model)[name])):
            problems.append(f"{name} holds non-finite values")
    if n_users and np.any(np.diff(indptr) < 0):
        problems.append(f"{Files.HISTORY_INDPTR} is not a row-pointer array over {n_history} interactions")
    if n_history and (model.history_items.min() < 0 or model.history_items.max() >= n_items):
        problems.append(f"{Files.HISTORY_ITEMS} points outside the {n_items} items")
    return problems


def _text_problems(model: Model, thorough: bool) -> list[str]:
    """The text columns: offsets that fit their buffers, one hash per id, codes and prices per item.

    ``thorough`` also decodes every buffer (valid UTF-8), checks the hashes against the ids and looks for
    repeated ids; otherwise only the ends of each array are read (a mapped column is not paged in).
    """
    problems: list[str] = []
    n_items = model.n_items
    columns = {Files.ITEM_IDS: model.item_ids, Files.TITLES: model.titles, Files.USER_IDS: model.user_ids}
    for name, column in columns.items():
        if not isinstance(column, StringColumn):
            continue
        offsets, data = column.offsets, column.data
        if data.dtype != np.uint8 or offsets.dtype.kind not in "iu" or offsets.ndim != 1 or not len(offsets):
            problems.append(f"{name} is not a text column (uint8 buffer and integer offsets)")
        elif offsets[0] != 0 or offsets[-1] != len(data) or (thorough and np.any(np.diff(offsets) < 0)):
            problems.append(f"{name}: offsets do not cover its {len(data)} bytes")
    if len(model.titles) != n_items:
        problems.append(f"{Files.TITLES} has {len(model.titles)} titles for {n_items} items")
    if len(model.prices) != n_items:
        problems.append(f"{Files.PRICES} has {len(model.prices)} prices for {n_items} items")
    codes = model.category_codes
    if len(codes) != n_items or codes.dtype.kind not in "iu":
        problems.append(f"{Files.CATEGORY_CODES} has {len(codes)} codes of dtype {codes.dtype} for {n_items} items")
    elif thorough and n_items and (codes.min() < 0 or codes.max() >= len(model.category_names)):
        problems.append(f"{Files.CATEGORY_CODES} points outside the {len(model.category_names)} categories")
    for name, lookup in ((Files.USER_ID_HASHES, model.user_index), (Files.ITEM_ID_HASHES, model.item_index)):
        if not isinstance(lookup, IdLookup):
            continue
        if len(lookup.hashes) != len(lookup.ids) or len(lookup.rows) != len(lookup.ids):
            problems.append(f"{name} has {len(lookup.hashes)} hashes for {len(lookup.ids)} ids")
        elif thorough:
            problems += _lookup_problems(name, lookup)
    if problems or not thorough:
        return problems
    for name, column in columns.items():
        try:
            if isinstance(column, StringColumn):
                column.data.tobytes().decode("utf-8")
        except UnicodeDecodeError:
            problems.append(f"{name} holds text that is not valid UTF-8 (a response could not encode it)")
    return problems


def _lookup_problems(name: str, lookup: IdLookup) -> list[str]:
    if not np.array_equal(np.sort(lookup.rows), np.arange(len(lookup.ids))):
        return [f"{name}: the rows are not a permutation of the ids"]
    try:
        if not np.array_equal(id_hashes(lookup.ids)[lookup.rows], lookup.hashes):
            return [f"{name} does not match the ids (a lookup would miss them)"]
    except UnicodeDecodeError:
        return []  # reported as invalid UTF-8
    repeated = lookup.repeated()
    return [f"{name}: ids repeat ({', '.join(repeated[:3])})"] if repeated else []


def probe_queries(model: Model) -> list[str]:
    """Run one query through each serving path (recommend, fold-in, filters, similar); the failures.

    While deferred parts are still to be fetched, only the paths that need none of them (popular, a known
    user): the parts are checked as they arrive, and the pipeline probed every path before publishing.
    """
    if model.n_items == 0:
        return ["the model has no items"]
    k = min(10, model.n_items)
    category = model.category_names[0] if model.category_names else ""
    user = 0 if model.n_users else None
    session = Interactions.of([0, min(1, model.n_items - 1)])
    filters = Filters(frozenset({0}), frozenset({category}), frozenset())
    probes: dict[str, Callable[[], object]] = {
        "popular": lambda: recommend(model, k),
        "personalized": lambda: recommend(model, k, user=user),
        "fold_in": lambda: recommend(model, k, interactions=session),
        "filters": lambda: recommend(model, k, user=user, interactions=session, filters=filters),
        "similar": lambda: similar_items(model, 0, k),
    }
    if model.parts.pending():
        probes = {path: probes[path] for path in ("popular", "personalized")}
    failures: list[str] = []
    for path, probe in probes.items():
        try:
            probe()
        except Exception as exc:  # noqa: BLE001 - any failure of a probe refuses the version; the reason is kept
            failures.append(f"{path} query failed: {type(exc).__name__}: {exc}")
    return failures


def validate_model(model: Model, thorough: bool = False) -> None:
    """Refuse a model whose parts disagree or that cannot answer a query (``thorough``: or holds a bad value).

    Raises
    ------
    ModelValidationError
        Naming every problem found (shapes and dtypes first; the queries run only on a consistent model).
    """
    problems = structural_problems(model, thorough) or probe_queries(model)
    if problems:
        raise ModelValidationError(f"model {model.version} is refused: " + "; ".join(problems))
