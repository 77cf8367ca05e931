"""A seeded synthetic shop whose interactions carry real collaborative signal.

Generative story (all of it vectorised numpy):

1. Sizes grow with ``n_interactions`` (``n``), so density falls as the shop grows::

       n_items = 10_000 * sqrt(n / 100_000)          # 10k at 100k, 100k at 10M
       n_users = 6_500 * (n / 100_000) ** 0.94       # 6.5k at 100k, ~490k at 10M

   (both clipped so that tiny test logs stay sane and every user has >= 1 row). ``n_items`` may be given
   instead (``--n-items`` / ``REC_N_ITEMS``, at least 60): the catalogue then has exactly that many items
   whatever ``n``; users still follow ``n`` (see "A large catalogue" below).
2. Each item belongs to one of 20 categories; ~5% of items are cold (never sampled).
   Within a category, warm items have Zipf popularity ``(rank + 2) ** -1.05``, so a
   few items dominate and the median item has only a handful of interactions.
3. Each user has a persistent taste: a sparse Dirichlet over categories (mass on 1-3 of
   them) mixed with a little of the global category mix. Activity is Pareto (heavy tail).
4. An interaction draws its category from the user's taste, then an item within that
   category by popularity. Warm items that the draw missed get one interaction moved to
   them from a popular item of the same category, so the cold share stays ~5%.
5. Timestamps are uniform over 180 days ending at a fixed date; ~3% of users (cold users)
   appear only in the newest 10%. Events: view / click / purchase, weights 1 / 2 / 5.

Steps 3-5 run in chunks of whole users (``CHUNK_ROWS`` rows each, one seeded stream per chunk), so
:func:`write_parquet` writes 100M+ rows in bounded memory and :func:`generate` (in memory, sorted by
timestamp) returns exactly the same rows.

A large catalogue (``n_items`` given, large relative to ``n``), and how covering behaves there and with the
size rule: :mod:`pipeline.sources.synthetic_catalogue`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import numpy as np

from pipeline.data import InteractionLog
from pipeline.sources.synthetic_catalogue import CATALOGUE, MIN_ITEMS, catalogue, cover_warm_items, sample_items
from reccore.events import event_strengths

END_TIMESTAMP = 1_719_705_600  # 2024-06-30T00:00:00Z: fixed, so a seed reproduces the log exactly
SPAN_SECONDS = 180 * 86_400
EVENT_TYPES = ["view", "click", "purchase"]
EVENT_PROBS = np.array([0.75, 0.20, 0.05])
COLD_USER_SHARE = 0.03
COLD_USER_WINDOW = 0.10  # cold users' rows fall in this newest fraction of the time range
CHUNK_ROWS = 2_000_000  # rows generated at a time: ~200 MB of working memory whatever the log's size


def _sizes(n: int, n_items: int | None = None) -> tuple[int, int]:
    if n_items is None:
        n_items = int(np.clip(round(10_000 * np.sqrt(n / 100_000)), 60, 2_000_000))
    n_users = int(np.clip(round(6_500 * (n / 100_000) ** 0.94), 10, max(10, n // 2)))
    return n_items, n_users


@dataclass
class _Plan:
    """What is global to a log: sizes, catalogue, rows per user, cold users, and the users of each chunk."""

    n: int
    seed: int
    strict: bool  # n_items was given (not the size rule): see catalogue and cover_warm_items
    n_items: int
    n_users: int
    catalogue: dict[str, np.ndarray]
    per_user: np.ndarray
    cold_users: np.ndarray
    chunks: list[tuple[int, int]]  # [first user, last user + 1) per chunk


@dataclass
class Chunk:
    """The interactions of one range of users (unsorted), as integer codes."""

    users: np.ndarray
    items: np.ndarray
    timestamps: np.ndarray
    events: np.ndarray
    user_top_category: np.ndarray  # per user of the chunk


def _check_sizes(n_interactions: int, n_items: int | None = None) -> None:
    """Raise ``ValueError`` (one line) unless the generator accepts these sizes."""
    if n_interactions < 20:
        raise ValueError(f"n_interactions must be >= 20, got {n_interactions}")
    if n_items is not None and n_items < MIN_ITEMS:
        raise ValueError(f"n_items must be >= {MIN_ITEMS} (or None: it grows with n_interactions), got {n_items}")


def _plan(n: int, seed: int, chunk_rows: int, n_items: int | None) -> _Plan:
    _check_sizes(n, n_items)
    rng = np.random.default_rng(seed)
    strict = n_items is not None
    n_items, n_users = _sizes(n, n_items)
    cat = catalogue(rng, n_items, strict)
    # Users: Pareto activity on top of a small floor, so every user has at least one row.
    floor = min(3, n // n_users)
    activity = np.minimum(rng.pareto(1.6, n_users) + 1.0, 300.0)
    per_user = floor + rng.multinomial(n - floor * n_users, activity / activity.sum())
    cold_users = np.sort(rng.choice(n_users, size=max(1, round(COLD_USER_SHARE * n_users)), replace=False))
    # Chunks of whole users, each about chunk_rows rows, so memory stays bounded at any n.
    ends = np.searchsorted(np.cumsum(per_user), np.arange(chunk_rows, n, chunk_rows), side="right")
    bounds = [0, *sorted(set(int(e) for e in ends) - {0, n_users}), n_users]
    chunks = list(pairwise(bounds))
    return _Plan(n, seed, strict, n_items, n_users, cat, per_user, cold_users, chunks)


def _chunks(plan: _Plan) -> Iterator[Chunk]:
    """Each chunk from its own seeded stream; the last also covers warm items no chunk drew."""
    cat, n_cat = plan.catalogue, len(CATALOGUE)
    global_mix = np.bincount(cat["category"], minlength=n_cat) / plan.n_items
    is_cold_user = np.zeros(plan.n_users, dtype=bool)
    is_cold_user[plan.cold_users] = True
    counts = np.zeros(plan.n_items, dtype=np.int64)
    for number, (first, last) in enumerate(plan.chunks):
        rng = np.random.default_rng([plan.seed, number])
        per_user = plan.per_user[first:last]
        taste = _tastes(rng, len(per_user), global_mix)
        per_user_cat = rng.multinomial(per_user, taste)  # (users, n_cat), rows sum to per_user
        users = np.repeat(np.arange(first, last, dtype=np.int32), per_user)
        inter_cat = np.repeat(np.tile(np.arange(n_cat, dtype=np.int16), len(per_user)), per_user_cat.ravel())
        del per_user_cat
        items = sample_items(rng, inter_cat, cat["category"], cat["popularity"])
        if number == len(plan.chunks) - 1:
            cover_warm_items(rng, items, inter_cat, cat, counts, plan.strict)
        else:
            counts += np.bincount(items, minlength=plan.n_items)
        del inter_cat
        # Time: warm users over the whole window, cold users only in its newest 10%.
        offset = rng.random(len(users))
        offset = np.where(is_cold_user[users], 1.0 - COLD_USER_WINDOW * offset, offset)
        timestamps = (END_TIMESTAMP - SPAN_SECONDS + offset * SPAN_SECONDS).astype(np.int64)
        events = rng.choice(len(EVENT_TYPES), size=len(users), p=EVENT_PROBS).astype(np.int8)
        yield Chunk(users, items, timestamps, events, taste.argmax(axis=1).astype(np.int16))


def _tastes(rng: np.random.Generator, n_users: int, global_mix: np.ndarray) -> np.ndarray:
    """Users' category tastes: a sparse Dirichlet (1-3 dominant categories) plus 8% of the global mix."""
    taste = 0.92 * rng.dirichlet(np.full(len(global_mix), 0.07), size=n_users) + 0.08 * global_mix
    return taste / taste.sum(axis=1, keepdims=True)  # multinomial insists the rows sum to <= 1


@dataclass(frozen=True)
class GroundTruth:
    """What the generator drew a log from: every user's category tastes and each item's category and appeal."""

    user_ids: np.ndarray
    item_ids: np.ndarray
    tastes: np.ndarray  # (n_users, n_categories), rows sum to 1
    item_category: np.ndarray  # (n_items,)
    appeal: np.ndarray  # (n_items,): popularity within the category relative to its most popular item (cold: 0)


def ground_truth(n_interactions: int = 100_000, seed: int = 42, *, n_items: int | None = None) -> GroundTruth:
    """The tastes behind :func:`generate`'s log of the same size and seed (the simulator's users follow them)."""
    plan = _plan(int(n_interactions), seed, CHUNK_ROWS, None if n_items is None else int(n_items))
    cat = plan.catalogue
    n_cat = len(CATALOGUE)
    global_mix = np.bincount(cat["category"], minlength=n_cat) / plan.n_items
    tastes = np.concatenate([
        _tastes(np.random.default_rng([plan.seed, number]), last - first, global_mix)
        for number, (first, last) in enumerate(plan.chunks)
    ])  # fmt: skip
    top = np.zeros(n_cat)
    np.maximum.at(top, cat["category"], cat["popularity"])
    return GroundTruth(
        user_ids=_id_strings("u", np.arange(plan.n_users), plan.n_users),
        item_ids=_id_strings("i", np.arange(plan.n_items), plan.n_items),
        tastes=tastes,
        item_category=cat["category"],
        appeal=cat["popularity"] / np.where(top > 0, top, 1.0)[cat["category"]],
    )


def _id_strings(prefix: str, codes: np.ndarray, count: int) -> np.ndarray:
    # Fixed-width ids (u0000001, i000001) so ids in events/ and docs stay valid at any scale.
    width = max(7 if prefix == "u" else 6, len(str(count)))
    return np.strings.add(prefix, np.strings.zfill((codes + 1).astype(str), width))


def generate(
    n_interactions: int = 100_000, seed: int = 42, chunk_rows: int = CHUNK_ROWS, *, n_items: int | None = None
) -> InteractionLog:
    """Generate a reproducible synthetic interaction log with power-law users and items.

    Parameters
    ----------
    n_interactions : int
        Number of interaction rows. Catalogue and user counts grow with it (see module docstring).
    seed : int
        Seed of ``np.random.default_rng``; the same seed gives an identical log.
    chunk_rows : int
        Rows per generation chunk; the same value gives the same log as :func:`write_parquet`.
    n_items : int, optional
        Catalogue size (>= 60) instead of the one that grows with ``n_interactions``. Item ids are ``i`` and
        the 1-based number, zero-padded to at least 6 digits (``i000001``). See "A large catalogue" in
        :mod:`pipeline.sources.synthetic_catalogue` for a catalogue large relative to the log.

    Returns
    -------
    InteractionLog
        Sorted by timestamp, ``source="synthetic"``; ``extra`` records the seed, the user tastes'
        dominant category per user and the cold users' codes.

    Raises
    ------
    ValueError
        If ``n_interactions`` is smaller than 20 or ``n_items`` smaller than 60.
    """
    plan = _plan(int(n_interactions), seed, chunk_rows, None if n_items is None else int(n_items))
    parts = list(_chunks(plan))
    users, items, timestamps, events = (np.concatenate([getattr(p, f) for p in parts])
                                        for f in ("users", "items", "timestamps", "events"))  # fmt: skip
    order = np.argsort(timestamps, kind="stable")
    log = InteractionLog(
        user_ids=_id_strings("u", np.arange(plan.n_users), plan.n_users),
        item_ids=_id_strings("i", np.arange(plan.n_items), plan.n_items),
        users=users[order],
        items=items[order],
        weights=event_strengths(events[order], EVENT_TYPES),
        timestamps=timestamps[order],
        events=events[order],
        event_types=list(EVENT_TYPES),
        titles=plan.catalogue["titles"].tolist(),
        categories=np.array(list(CATALOGUE))[plan.catalogue["category"]].tolist(),
        prices=plan.catalogue["prices"].astype(np.float64),
        source="synthetic",
        extra={
            "seed": seed,
            "cold_users": plan.cold_users.astype(np.int32),
            "user_top_category": np.concatenate([p.user_top_category for p in parts]),
        },
    )
    log.validate()
    return log


def write_parquet(
    n_interactions: int, seed: int, directory: Path, chunk_rows: int = CHUNK_ROWS, *, n_items: int | None = None
) -> tuple[Path, Path]:
    """Write the log :func:`generate` would return as Parquet, one chunk at a time (bounded memory).

    Returns ``(interactions, items)``: a directory of ``part-NNNNN.parquet`` files (columns ``user_id``,
    ``item_id``, ``event``, ``weight``, ``timestamp``; rows unsorted) and the items table
    (``item_id``, ``title``, ``category``, ``price``), the inputs of ``--source DIR --items FILE``.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    plan = _plan(int(n_interactions), seed, chunk_rows, None if n_items is None else int(n_items))
    interactions, items = directory / "interactions", directory / "items.parquet"
    interactions.mkdir(parents=True, exist_ok=True)
    events = pa.array(EVENT_TYPES)
    for number, chunk in enumerate(_chunks(plan)):
        table = pa.table({
            "user_id": _id_strings("u", chunk.users, plan.n_users),
            "item_id": _id_strings("i", chunk.items, plan.n_items),
            "event": events.take(pa.array(chunk.events)),
            "weight": event_strengths(chunk.events, list(EVENT_TYPES)),
            "timestamp": chunk.timestamps,
        })  # fmt: skip
        pq.write_table(table, interactions / f"part-{number:05d}.parquet")
    pq.write_table(
        pa.table(
            {
                "item_id": _id_strings("i", np.arange(plan.n_items), plan.n_items),
                "title": plan.catalogue["titles"],
                "category": np.array(list(CATALOGUE))[plan.catalogue["category"]],
                "price": plan.catalogue["prices"].astype(np.float64),
            }
        ),
        items,
    )
    return interactions, items
