"""The synthetic shop's catalogue: categories, titles, prices and Zipf popularity; items drawn and covered.

:func:`catalogue` makes the items, :func:`sample_items` draws an interaction's item inside its category by
popularity, and :func:`cover_warm_items` gives every warm item the draw missed one interaction
(:mod:`pipeline.sources.synthetic` tells the whole generative story).

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

import numpy as np

COLD_ITEM_SHARE = 0.05
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


def catalogue(rng: np.random.Generator, n_items: int, strict: bool = False) -> dict[str, np.ndarray]:
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


def sample_items(
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


def cover_warm_items(
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
