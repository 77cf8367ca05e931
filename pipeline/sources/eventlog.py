"""The training event log (``<prefix>/events/YYYY/MM/DD/HH/*``, NDJSON; :mod:`reccore.eventlog`) as a source.

Read alone (``--source s3://bucket/prefix/events/`` or a local directory) or added to a base log
(``--events URI`` with any ``--source``). Each record's strength is :func:`reccore.events.event_strength`
of its event and value. Event ids are unique per user, as in the user-state store
(:mod:`reccore.userstate`): a user's records sharing an ``event_id`` count once, the first in key order
(Firehose delivers at least once, and a client may retry a batch), while the same id from two users is
two events; records without one always count. Every problem raises one :class:`DataSourceError` naming
the object, the line and the field.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeGuard
from urllib.parse import urlparse

import numpy as np

from pipeline.data import MAX_EVENT_TYPES, InteractionLog
from reccore.errors import DataSourceError
from reccore.eventlog import parse_lines
from reccore.events import event_strength
from reccore.storage import open_store


def is_event_log(uri: str) -> bool:
    """Whether ``uri`` names an event-log prefix (a directory, or an ``s3://`` prefix ending in ``/``)."""
    if uri.startswith("s3://"):
        return uri.endswith("/") or urlparse(uri).path.rstrip("/").endswith("/events")
    return Path(uri).is_dir()


@dataclass
class EventRecords:
    """The log's records, deduplicated, as columns."""

    user_ids: list[str] = field(default_factory=list)
    item_ids: list[str] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    strengths: list[float] = field(default_factory=list)
    timestamps: list[int] = field(default_factory=list)
    objects: int = 0
    duplicates: int = 0  # records dropped as a repeat of the same user's event id

    def __len__(self) -> int:
        return len(self.user_ids)

    def add(self, record: EventRecord) -> None:
        self.user_ids.append(record.user_id)
        self.item_ids.append(record.item_id)
        self.events.append(record.event)
        self.strengths.append(record.strength)
        self.timestamps.append(record.timestamp)

    def stats(self, uri: str) -> dict[str, Any]:
        return {"uri": uri, "objects": self.objects, "records": len(self), "duplicates": self.duplicates}


@dataclass(frozen=True)
class EventRecord:
    """One valid record of the log: its ids, event, strength and time."""

    user_id: str
    item_id: str
    event: str
    strength: float
    timestamp: int
    event_id: str | None


@dataclass(frozen=True)
class Problem:
    """Why one line of the log is not a record: the field, the problem and the offending value."""

    field: str
    problem: str
    value: Any


def malformed_message(uri: str, count: int, field_name: str, problem: str, where: str, value_repr: str) -> str:
    """The one-line error both engines raise for the log's malformed records (the first problem's kind)."""
    return f"{uri}: {count} malformed record(s), field {field_name!r} {problem}; first is {where}: {value_repr}"


def empty_log_message(uri: str) -> str:
    """The one-line error both engines raise for a log read alone that holds no record."""
    return f"{uri}: the event log is empty (no records under this prefix)"


def unknown_items_message(items: str, count: int, uri: str, names: list[str], n_names: int) -> str:
    """The one-line error both engines raise for events naming items outside the items table."""
    shown = ", ".join(repr(x) for x in names[:5]) + (", ..." if n_names > 5 else "")
    return f"{items}: {count} event(s) in {uri} refer to {n_names} item_id(s) not in this items table: {shown}"


class _Problems:
    """Malformed records: reported as one line, the first problem's kind with its count and first place."""

    def __init__(self) -> None:
        self.first: tuple[Problem, str] | None = None
        self.count = 0

    def add(self, problem: Problem, where: str) -> None:
        if self.first is None:
            self.first = (problem, where)
        if (self.first[0].field, self.first[0].problem) == (problem.field, problem.problem):
            self.count += 1

    def raise_if_any(self, uri: str) -> None:
        if self.first is not None:
            problem, where = self.first
            raise DataSourceError(
                malformed_message(uri, self.count, problem.field, problem.problem, where, repr(problem.value))
            )


def _text(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    text = str(value).strip()
    return text or None


def _finite(value: Any) -> TypeGuard[int | float]:
    # json.loads accepts NaN and Infinity; neither is a weight or a time.
    return not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)


def parse_record(row: Any) -> EventRecord | Problem:
    """One parsed JSON value as a record, or the first thing wrong with it (the rules of both engines)."""
    if not isinstance(row, dict):
        return Problem("-", "is not a JSON object", row)
    user_id, item_id, event = _text(row.get("user_id")), _text(row.get("item_id")), _text(row.get("event"))
    value, timestamp, event_id = row.get("value"), row.get("timestamp"), row.get("event_id")
    for name, parsed in (("user_id", user_id), ("item_id", item_id), ("event", event)):
        if parsed is None:
            return Problem(name, "is missing or empty", row.get(name))
    if value is not None and not (_finite(value) and value > 0):
        return Problem("value", "must be a number > 0 or null", value)
    if not _finite(timestamp):
        return Problem("timestamp", "is not unix seconds", timestamp)
    if event_id is not None and not isinstance(event_id, str):
        return Problem("event_id", "must be a string or null", event_id)
    assert user_id is not None and item_id is not None and event is not None  # checked above
    return EventRecord(user_id, item_id, event, event_strength(event, value), int(timestamp), event_id)


def object_records(data: bytes) -> Iterator[tuple[int, EventRecord | Problem]]:
    """Each non-blank line of one log object, numbered from 1, as a record or a problem."""
    for number, line in enumerate(data.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            (row,) = parse_lines(line)
        except ValueError:
            yield number, Problem("-", "is not JSON", line[:80].decode(errors="replace"))
            continue
        yield number, parse_record(row)


def read_event_log(uri: str, s3_client: Any = None) -> EventRecords:
    """Every record under ``uri`` (objects in key order, which is time order), repeats dropped.

    A repeat is a record whose ``(user_id, event_id)`` an earlier record had: event ids are unique per
    user, so the same id from two users is two events, and a record without an id is never a repeat.

    Raises
    ------
    DataSourceError
        The prefix cannot be listed or read, or a record is malformed.
    """
    store = open_store(uri.rstrip("/"), client=s3_client)
    try:
        keys = store.list_keys("")
    except Exception as exc:  # botocore raises many types; the run needs one
        raise DataSourceError(f"{uri}: cannot list the event log ({type(exc).__name__}: {exc})") from exc
    records, problems, ids = EventRecords(objects=len(keys)), _Problems(), set[tuple[str, str]]()
    for key in keys:
        try:
            data = store.get(key)
        except Exception as exc:  # as above
            raise DataSourceError(f"{store.uri}/{key}: cannot read ({type(exc).__name__}: {exc})") from exc
        for number, parsed in object_records(data):
            if isinstance(parsed, Problem):
                problems.add(parsed, f"{key} line {number}")
            elif parsed.event_id is None:
                records.add(parsed)
            elif (parsed.user_id, parsed.event_id) in ids:
                records.duplicates += 1
            else:
                ids.add((parsed.user_id, parsed.event_id))
                records.add(parsed)
    problems.raise_if_any(uri)
    return records


def load_event_log(
    uri: str, base: InteractionLog | None = None, items: str | None = None, *, s3_client: Any = None
) -> InteractionLog:
    """An :class:`InteractionLog` of the event log at ``uri``, alone or appended to ``base``.

    Parameters
    ----------
    uri : str
        ``s3://bucket/prefix/events/`` or a local directory holding the log's objects.
    base : InteractionLog, optional
        A log from another source; its users, items and metadata are kept, the events' new ones added.
    items : str, optional
        The items table that defines the catalogue: an event for an item not in it stops the run, as for
        a file source. Without one, items the catalogue lacks are added (title = id, category ``unknown``).

    Raises
    ------
    DataSourceError
        The log is unreadable or malformed, alone and empty, or names items outside the items table.
    """
    from pipeline.sources.files import read_catalogue  # deferred with pandas, as in load_source

    records = read_event_log(uri, s3_client)
    if base is None and not len(records):
        raise DataSourceError(empty_log_message(uri))
    if base is None:
        if items is not None:
            item_ids, titles, categories, prices = read_catalogue(items, s3_client)
        else:
            item_ids, titles, categories, prices = np.array([], dtype=str), [], [], np.zeros(0)
        base = InteractionLog(
            user_ids=np.array([], dtype=str), item_ids=np.asarray(item_ids, dtype=str),
            users=np.zeros(0, np.int32), items=np.zeros(0, np.int32), weights=np.zeros(0, np.float32),
            timestamps=np.zeros(0, np.int64), events=np.zeros(0, np.int8), event_types=[],
            titles=list(titles), categories=list(categories), prices=np.asarray(prices, dtype=np.float64), source=uri,
        )  # fmt: skip
    log = _append(base, records, uri, strict_items=items)
    log.extra = {**base.extra, "events": records.stats(uri)}
    log.validate()
    return log


def _codes(known: np.ndarray, values: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Codes of ``values`` in ``known`` extended by the new ones (first-seen order), and the extended ids."""
    import pandas as pd  # deferred: load_source checks is_event_log on every run, pandas costs ~0.5 s

    index = pd.Index(known)
    codes = index.get_indexer(values)
    new = pd.unique(np.asarray(values, dtype=object)[codes < 0])
    if len(new):
        index = index.append(pd.Index(new))
        codes = index.get_indexer(values)
    return codes.astype(np.int32), index.to_numpy(dtype=str)


def _append(base: InteractionLog, records: EventRecords, uri: str, strict_items: str | None) -> InteractionLog:
    import pandas as pd  # deferred, as above

    from pipeline.sources.files import too_many_events_message

    if strict_items is not None and len(records):
        known = pd.Index(base.item_ids).get_indexer(records.item_ids) >= 0
        if not known.all():
            names = pd.unique(np.asarray(records.item_ids, dtype=object)[~known])
            raise DataSourceError(
                unknown_items_message(strict_items, int((~known).sum()), uri, list(names[:5]), len(names))
            )
    users, user_ids = _codes(base.user_ids, records.user_ids)
    items, item_ids = _codes(base.item_ids, records.item_ids)
    events, event_types = _codes(np.asarray(base.event_types, dtype=str), records.events)
    if len(event_types) > MAX_EVENT_TYPES:
        raise DataSourceError(too_many_events_message(uri, len(event_types)))
    added = item_ids[base.n_items :].tolist()
    return InteractionLog(
        user_ids=user_ids,
        item_ids=item_ids,
        users=np.concatenate([base.users, users]).astype(np.int32),
        items=np.concatenate([base.items, items]).astype(np.int32),
        weights=np.concatenate([base.weights, np.asarray(records.strengths, dtype=np.float32)]),
        timestamps=np.concatenate([base.timestamps, np.asarray(records.timestamps, dtype=np.int64)]),
        events=np.concatenate([base.events, events]).astype(np.int8),
        event_types=[str(e) for e in event_types],
        titles=[*base.titles, *added],
        categories=[*base.categories, *(["unknown"] * len(added))],
        prices=np.concatenate([base.prices, np.zeros(len(added))]),
        source=uri if base.n_interactions == 0 and base.source == uri else f"{base.source} + {uri}",
        extra=dict(base.extra),
    )


__all__ = [
    "EventRecord",
    "EventRecords",
    "Problem",
    "is_event_log",
    "load_event_log",
    "object_records",
    "read_event_log",
]
