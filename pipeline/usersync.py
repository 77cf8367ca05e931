"""After a publish: each user's newest training interactions into the user-state table (``base`` items).

A user is written only if they have an interaction newer than the cut-off of the last successful sync to
the same table (recorded in that version's manifest as ``data["user_sync"]["through"]``): the others' stored
history is already current. This assumes the training log only grows (new events appended); after
rewriting history, a run against a fresh table or ``full=True`` writes everyone.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from pipeline.data import InteractionLog, order_by_user
from reccore.errors import ArtifactIntegrityError, UserStateError
from reccore.events import event_strength
from reccore.settings import PipelineSettings
from reccore.storage import ArtifactStore
from reccore.userstate import MAX_SEEN, Event, UserState, UserStateStore
from reccore.userstate.dynamodb import DynamoStore
from reccore.versions import list_versions, read_manifest, record_in_manifest

logger = logging.getLogger(__name__)

SYNC_KEY = "user_sync"  # manifest.data[...] of the version synced


def previous_cutoff(store: ArtifactStore, table: str, max_events: int, exclude: str) -> int | None:
    """The ``through`` of the newest version (other than ``exclude``) synced to ``table`` with the same N."""
    for version in reversed(list_versions(store)):
        if version == exclude:
            continue
        try:
            record = read_manifest(store, version).data.get(SYNC_KEY)
        except ArtifactIntegrityError as exc:  # an unreadable old manifest: look further back
            logger.warning("user sync: skipping version %s: %s", version, exc)
            continue
        if (
            isinstance(record, dict)
            and record.get("status") == "ok"
            and record.get("table") == table
            and record.get("events_per_user") == max_events
        ):
            through = record.get("through")
            return int(through) if through is not None else None
    return None


def user_states(
    log: InteractionLog, max_events: int, changed_since: int | None = None
) -> tuple[Iterator[UserState], int]:
    """The ``base`` state of every user with an interaction newer than ``changed_since`` (all if None).

    Returns the states (built lazily, one user at a time, so memory stays flat at millions of users) and how
    many there will be. Each state holds the user's newest ``max_events`` interactions (oldest first), every
    distinct item they touched (newest last, up to ``MAX_SEEN``) and ``base_through``, the log's newest
    timestamp (the training cut-off: later live events are fresh).
    """
    through = int(log.timestamps.max()) if log.n_interactions else None
    order = order_by_user(log.users, -log.timestamps)  # newest first within a user
    counts = np.bincount(log.users, minlength=log.n_users)
    indptr = np.concatenate([[0], np.cumsum(counts)])
    newest = np.full(log.n_users, np.iinfo(np.int64).min, dtype=np.int64)
    np.maximum.at(newest, log.users, log.timestamps)
    selected = np.flatnonzero(counts > 0)
    if changed_since is not None:
        selected = selected[newest[selected] > changed_since]
    defaults = np.array([event_strength(name) for name in log.event_types] or [1.0], dtype=np.float32)

    def states() -> Iterator[UserState]:
        for user in selected.tolist():
            rows = order[indptr[user] : indptr[user + 1]]
            recent = rows[:max_events][::-1]
            events = [
                # value only where the strength is not the event's default (a rating or explicit weight)
                Event(item, log.event_types[code], ts, None if np.isclose(w, defaults[code]) else float(w))
                for item, code, ts, w in zip(
                    log.item_ids[log.items[recent]].tolist(), log.events[recent].tolist(),
                    log.timestamps[recent].tolist(), log.weights[recent].tolist(), strict=True,
                )
            ]  # fmt: skip
            seen = list(dict.fromkeys(log.item_ids[log.items[rows]].tolist()))[:MAX_SEEN][::-1]
            yield UserState(str(log.user_ids[user]), base=events, base_through=through, seen=seen)

    return states(), len(selected)


def sync_users(
    log: InteractionLog,
    target: UserStateStore,
    version: str,
    *,
    table: str,
    max_events: int,
    changed_since: int | None,
) -> dict[str, Any]:
    """Write the changed users' base state; returns the record kept in the manifest and the run summary.

    Raises whatever ``target.put_base`` raises (:class:`~reccore.errors.UserStateError`); the caller reports it.
    """
    start = time.perf_counter()
    states, selected = user_states(log, max_events, changed_since)
    result = target.put_base(states, version)
    users_with_history = int(np.count_nonzero(np.bincount(log.users, minlength=log.n_users)))
    return {
        "status": "ok",
        "table": table,
        "events_per_user": max_events,
        "through": int(log.timestamps.max()) if log.n_interactions else None,
        "changed_since": changed_since,
        "users_written": result.written,
        "users_skipped": users_with_history - selected,  # already current
        # Users the table refused (each logged with DynamoDB's reason): the sync goes on with the others.
        "users_failed": len(result.skipped),
        "failed_examples": [user[:80] for user in result.skipped[:10]],
        "seconds": round(time.perf_counter() - start, 3),
    }


def sync_and_record(
    log: InteractionLog, settings: PipelineSettings, store: ArtifactStore, version: str, full: bool = False
) -> dict[str, Any]:
    """Sync the users into the table and record it in the version's manifest; a failure is reported, not raised.

    The version is live already: a failed sync leaves the table as it was (the next run retries those users,
    since this version records no successful sync) and never un-publishes.
    """
    table = settings.user_table
    since = None if full else previous_cutoff(store, table, settings.user_events, exclude=version)
    target = DynamoStore(table, max_events=settings.user_events)
    try:
        record = sync_users(log, target, version, table=table, max_events=settings.user_events, changed_since=since)
    except UserStateError as exc:
        logger.error("user sync to %s failed after publishing %s: %s", table, version, exc)
        record = {"status": "failed", "table": table, "error": str(exc), "changed_since": since}
    record_in_manifest(store, version, SYNC_KEY, record)
    return record
