"""Every way the pipeline gets data, behind one function: :func:`load_source`."""

from __future__ import annotations

from pipeline.data import InteractionLog
from reccore.errors import ConfigError, DataSourceError

SYNTHETIC = "synthetic"
MOVIELENS_100K = "movielens-100k"


def load_source(
    source: str,
    items: str | None = None,
    *,
    interactions: int = 100_000,
    seed: int = 42,
    events: str | None = None,
    n_items: int | None = None,
) -> InteractionLog:
    """Load an interaction log from a named source or a table.

    Parameters
    ----------
    source : str
        ``"synthetic"``, ``"movielens-100k"``, a local path / ``s3://bucket/key`` URI of a
        ``.csv``, ``.csv.gz``, ``.parquet`` or ``.pq`` interactions table, or an event log
        (``s3://bucket/prefix/events/`` or a local directory; :mod:`pipeline.sources.eventlog`).
    items : str, optional
        Items table for a file source (``item_id`` plus ``title``, ``category``, ``price``).
    interactions : int
        Number of rows for ``"synthetic"``; ignored otherwise.
    seed : int
        Seed for ``"synthetic"``; ignored otherwise.
    events : str, optional
        An event log whose records are added to ``source``'s (new users and items included).
    n_items : int, optional
        Catalogue size for ``"synthetic"`` (>= 60; default: grows with ``interactions``); ignored otherwise.

    Returns
    -------
    InteractionLog
        Validated log whose ``source`` names where it came from.

    Raises
    ------
    DataSourceError
        The input is missing, unreadable or malformed (the message names the file), or
        ``items`` was given for a source that has its own catalogue.
    ConfigError
        ``interactions`` or ``n_items`` is too small for the synthetic generator.
    """
    from pipeline.sources.eventlog import is_event_log, load_event_log

    if is_event_log(source):
        if events is not None:
            raise DataSourceError(f"{events}: --events adds a log to a base source; {source} is a log already")
        return load_event_log(source, None, items)
    base = _load_base(source, items, interactions, seed, n_items)
    return base if events is None else load_event_log(events, base, items)


def _load_base(source: str, items: str | None, interactions: int, seed: int, n_items: int | None) -> InteractionLog:
    if source in (SYNTHETIC, MOVIELENS_100K) and items is not None:
        raise DataSourceError(f"{items}: an items table applies only to file sources, not to {source!r}")
    if source == SYNTHETIC:
        from pipeline.sources.synthetic import generate

        try:
            return generate(interactions, seed, n_items=n_items)
        except ValueError as exc:
            raise ConfigError(f"synthetic source: {exc}") from exc
    if source == MOVIELENS_100K:
        from pipeline.sources.movielens import load_movielens_100k

        return load_movielens_100k()
    # Deferred: pandas/pyarrow cost ~0.5 s to import and the synthetic path needs neither.
    from pipeline.sources.files import load_files

    return load_files(source, items)


__all__ = ["MOVIELENS_100K", "SYNTHETIC", "load_source"]
