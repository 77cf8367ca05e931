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

A large catalogue (``n_items`` given, large relative to ``n``). The story is the same: 20 categories, 5% cold
items, Zipf popularity within each category, users and their tastes sized by ``n`` alone. But a category of
``m`` warm items gets only its share of the ``n`` draws, while the Zipf weight of its rank-``r`` item falls as
``r ** -1.05``: past some rank the expected count is below one, so the draw misses much of the tail. Each
missed warm item that covering reaches gets exactly ONE interaction, moved from a busy item of its category.
Measured (seed 42), 1M items from 5M interactions: the draw missed 377k warm items, covering reached all but
501 of them, and the log has 5.05% cold items, 63% of items with exactly one interaction (median 1), and a
head whose busiest item has 15.8k; generating it takes ~8 s and ~0.9 GB. Covering is vectorised (one pass
per category: 0.4 s there). Covering takes rows only from the LAST chunk (the earlier ones are already yielded
or written), only from items with >= 3 interactions, and leaves each donor at least two, so it never turns a
warm item cold nor a donor into a one-interaction item. When those rows run out (a catalogue far larger than
the log, or a short last chunk), the least popular missed items simply stay without interactions: they are
in the catalogue, and the model counts them as cold (content-based vectors from their metadata, like the 5%
cold items); e.g. 200k items from 20k interactions leaves 91% of the catalogue cold. Every category also keeps
at least one warm item, whatever the size.

With ``n_items`` left to the rule (None), the log is byte-for-byte what earlier versions generated, including
two flaws of that path which the explicit-``n_items`` path fixes: a covering draw may take every row of a
donor item, so a few warm items end cold (measured over 50 seeds: nearly every seed at 5k rows, 16 at 20k,
1 at 100k), and under ~50 rows a category may have no warm item (18 of 2,000 seeds at 20 rows), whose draws
then land on a neighbouring category's item. ``generate(n, seed, n_items=k)`` with ``k`` the rule's size is
the rule-sized log whenever neither flaw occurs (100k rows, seed 42, for one).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import numpy as np

from pipeline.data import InteractionLog
from reccore.events import event_strengths

END_TIMESTAMP = 1_719_705_600  # 2024-06-30T00:00:00Z: fixed, so a seed reproduces the log exactly
SPAN_SECONDS = 180 * 86_400
EVENT_TYPES = ["view", "click", "purchase"]
EVENT_PROBS = np.array([0.75, 0.20, 0.05])
COLD_ITEM_SHARE = 0.05
COLD_USER_SHARE = 0.03
COLD_USER_WINDOW = 0.10  # cold users' rows fall in this newest fraction of the time range
CHUNK_ROWS = 2_000_000  # rows generated at a time: ~200 MB of working memory whatever the log's size
MIN_ITEMS = 60  # smallest explicit catalogue: 20 categories, each with warm items beside the 5% cold ones
DONOR_MIN_COUNT = 3  # covering takes rows only from items with at least this many interactions...
DONOR_KEEPS = 2  # ...and (explicit n_items) leaves each of them at least this many

# category -> (median price, nouns used in titles). Prices differ by category so that
# metadata predicts something.
CATALOGUE: dict[str, tuple[float, tuple[str, ...]]] = {
    "books": (15.0, ("Novel", "Cookbook", "Guide", "Anthology", "Memoir")),
    "electronics": (180.0, ("Headphones", "Speaker", "Charger", "Monitor", "Router")),
    "clothing": (35.0, ("Jacket", "Shirt", "Sweater", "Dress", "Scarf")),
    "home": (45.0, ("Lamp", "Rug", "Vase", "Clock", "Cushion")),
    "kitchen": (30.0, ("Pan", "Knife", "Kettle", "Blender", "Mug")),
    "sports": (50.0, ("Ball", "Racket", "Mat", "Helmet", "Bottle")),
    "toys": (25.0, ("Puzzle", "Robot", "Doll", "Kite", "Blocks")),
    "beauty": (20.0, ("Serum", "Lipstick", "Cream", "Palette", "Shampoo")),
    "garden": (40.0, ("Planter", "Hose", "Shears", "Seeds", "Lantern")),
    "music": (12.0, ("Album", "Vinyl", "Songbook", "Single", "Boxset")),
    "movies": (14.0, ("Film", "Documentary", "Series", "Collection", "Classic")),
    "games": (50.0, ("Console Game", "Board Game", "Card Game", "Controller", "Expansion")),
    "automotive": (60.0, ("Wiper", "Mat Set", "Dashcam", "Polish", "Tool Kit")),
    "pets": (22.0, ("Leash", "Bed", "Bowl", "Toy", "Treats")),
    "office": (18.0, ("Notebook", "Pen Set", "Stapler", "Desk Tray", "Planner")),
    "health": (25.0, ("Vitamins", "Thermometer", "Scale", "Brace", "Kit")),
    "jewelry": (90.0, ("Ring", "Necklace", "Bracelet", "Earrings", "Watch")),
    "baby": (28.0, ("Stroller", "Bib", "Rattle", "Blanket", "Monitor")),
    "tools": (55.0, ("Drill", "Hammer", "Wrench", "Saw", "Level")),
    "grocery": (8.0, ("Coffee", "Tea", "Chocolate", "Olive Oil", "Granola")),
}
ADJECTIVES = (
    "Classic", "Deluxe", "Compact", "Vintage", "Modern", "Essential", "Premium", "Eco",
    "Smart", "Cozy", "Bold", "Gentle", "Rapid", "Golden", "Silent", "Bright",
    "Rustic", "Urban", "Wild", "Lucky",
)  # fmt: skip


def _sizes(n: int, n_items: int | None = None) -> tuple[int, int]:
    if n_items is None:
        n_items = int(np.clip(round(10_000 * np.sqrt(n / 100_000)), 60, 2_000_000))
    n_users = int(np.clip(round(6_500 * (n / 100_000) ** 0.94), 10, max(10, n // 2)))
    return n_items, n_users


def _catalogue(rng: np.random.Generator, n_items: int, strict: bool = False) -> dict[str, np.ndarray]:
    """Item categories, cold flags, popularity within category, titles and prices.

    ``strict`` (an explicit ``n_items``): every category keeps a warm item (its first item is made warm if the
    cold draw took them all), so no category's draws fall back on another category's item.
    """
    names = list(CATALOGUE)
    n_cat = len(names)
    # Uneven category sizes, every category non-empty.
    shares = rng.dirichlet(np.full(n_cat, 8.0))
    category = rng.choice(n_cat, size=n_items, p=shares)
    category[:n_cat] = np.arange(n_cat)
    rng.shuffle(category)
    cold = np.zeros(n_items, dtype=bool)
    cold[rng.choice(n_items, size=round(COLD_ITEM_SHARE * n_items), replace=False)] = True
    if strict:
        for c in np.flatnonzero(np.bincount(category[~cold], minlength=n_cat) == 0):
            cold[np.argmax(category == c)] = False
    # Rank of each item inside its category (random order), for Zipf popularity.
    order = np.lexsort((rng.random(n_items), category))
    starts = np.searchsorted(category[order], np.arange(n_cat))
    rank = np.empty(n_items, dtype=np.int64)
    rank[order] = np.arange(n_items) - starts[category[order]]
    popularity = (rank + 2.0) ** -1.05
    popularity[cold] = 0.0

    median_price = np.array([CATALOGUE[c][0] for c in names])
    prices = np.round(median_price[category] * rng.lognormal(0.0, 0.45, n_items), 2)
    nouns = np.array([noun for c in names for noun in CATALOGUE[c][1]])
    noun = category * 5 + rng.integers(0, 5, n_items)
    adjective = np.array(ADJECTIVES)[rng.integers(0, len(ADJECTIVES), n_items)]
    label = np.array([c.title() for c in names])[category]
    titles = np.strings.add(label, " #")
    for part in (np.arange(1, n_items + 1).astype(str), " ", adjective, " ", nouns[noun]):
        titles = np.strings.add(titles, part)
    return {"category": category, "cold": cold, "popularity": popularity, "prices": prices, "titles": titles}


def _sample_items(
    rng: np.random.Generator, inter_cat: np.ndarray, category: np.ndarray, popularity: np.ndarray
) -> np.ndarray:
    """Draw one item per interaction, inside its category, by popularity (inverse CDF)."""
    n_cat = int(category.max()) + 1
    warm = np.flatnonzero(popularity > 0)
    warm = warm[np.argsort(category[warm], kind="stable")]
    warm_cat = category[warm]
    mass = popularity[warm]
    mass = mass / np.bincount(warm_cat, weights=mass, minlength=n_cat)[warm_cat]
    cdf = np.cumsum(mass)
    first = np.searchsorted(warm_cat, np.arange(n_cat))
    last = np.searchsorted(warm_cat, np.arange(n_cat), side="right") - 1
    # Category c spans cdf values (c, c + 1]; clip guards float rounding at the edges.
    pos = np.searchsorted(cdf, inter_cat + rng.random(len(inter_cat)), side="right")
    pos = np.clip(pos, first[inter_cat], last[inter_cat])
    return warm[pos].astype(np.int32)


def _cover_warm_items(
    rng: np.random.Generator,
    items: np.ndarray,
    inter_cat: np.ndarray,
    catalogue: dict[str, np.ndarray],
    earlier_counts: np.ndarray,
    strict: bool = False,
) -> None:
    """Give each warm item no chunk drew one interaction, taken from a busy item of its category.

    ``items`` is the last chunk's draw (changed in place); ``earlier_counts`` counts the earlier chunks' items.
    Donors are rows of items with >= ``DONOR_MIN_COUNT`` interactions. ``strict`` (an explicit ``n_items``)
    also guarantees what the rule-sized path only makes likely: each donor item keeps >= ``DONOR_KEEPS``
    interactions (draws beyond that are replaced by other donor rows), and when a category's donors run out,
    its most popular missed items are the ones covered.
    """
    category, cold = catalogue["category"], catalogue["cold"]
    counts = earlier_counts + np.bincount(items, minlength=len(category))
    missed = np.flatnonzero((counts == 0) & ~cold)
    if len(missed) == 0:
        return
    donor_rows = np.flatnonzero(counts[items] >= DONOR_MIN_COUNT)
    donor_rows = donor_rows[np.argsort(inter_cat[donor_rows], kind="stable")]
    donor_cat = inter_cat[donor_rows]
    spare = counts - DONOR_KEEPS  # rows each item may give (strict)
    for c in np.unique(category[missed]):  # one pass per category (20), not per row
        need = missed[category[missed] == c]
        lo, hi = np.searchsorted(donor_cat, [c, c + 1])
        take = min(len(need), hi - lo)
        rows = donor_rows[lo + rng.choice(hi - lo, size=take, replace=False)]
        if strict:
            rows = _within_spare(rng, rows, donor_rows[lo:hi], items, spare)
            if len(rows) < len(need):
                need = need[np.argsort(-catalogue["popularity"][need], kind="stable")]
        items[rows] = need[: len(rows)]


def _occurrence(keys: np.ndarray) -> np.ndarray:
    """For each position, how many earlier positions hold the same key (0 for a key's first)."""
    order = np.argsort(keys, kind="stable")
    ordered = keys[order]
    occurrence = np.empty(len(keys), dtype=np.int64)
    occurrence[order] = np.arange(len(keys)) - np.searchsorted(ordered, ordered)
    return occurrence


def _within_spare(
    rng: np.random.Generator, rows: np.ndarray, pool: np.ndarray, items: np.ndarray, spare: np.ndarray
) -> np.ndarray:
    """``rows`` (drawn from ``pool``) without the draws that take an item past its ``spare`` rows, the
    shortfall refilled by a random order of the rest of ``pool`` under the same limit (fewer if it runs out).

    When no draw goes past, ``rows`` is returned unchanged and no random number is used.
    """
    fits = _occurrence(items[rows]) < spare[items[rows]]
    if fits.all():
        return rows
    kept = rows[fits]
    left = spare - np.bincount(items[kept], minlength=len(spare))
    rest = np.setdiff1d(pool, kept, assume_unique=True)
    rest = rng.permutation(rest[left[items[rest]] > 0])
    rest = rest[_occurrence(items[rest]) < left[items[rest]]]
    return np.concatenate([kept, rest[: len(rows) - len(kept)]])


@dataclass
class _Plan:
    """What is global to a log: sizes, catalogue, rows per user, cold users, and the users of each chunk."""

    n: int
    seed: int
    strict: bool  # n_items was given (not the size rule): see _catalogue and _cover_warm_items
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
    cat = _catalogue(rng, n_items, strict)
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
        items = _sample_items(rng, inter_cat, cat["category"], cat["popularity"])
        if number == len(plan.chunks) - 1:
            _cover_warm_items(rng, items, inter_cat, cat, counts, plan.strict)
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
        the 1-based number, zero-padded to at least 6 digits (``i000001``). See "A large catalogue" in the
        module docstring for a catalogue large relative to the log.

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
