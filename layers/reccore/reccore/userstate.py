"""Per-user state out of the model artifact: each user's newest interactions and every item they have seen.

One interface, :class:`UserStateStore`, two backends:

- :class:`EmbeddedStore` (no table configured, e.g. serving a model from a directory): the model artifact
  keeps the training histories; this holds the events posted since, in process memory.
- :class:`DynamoStore` (the deployed default): a DynamoDB table, read with one ``Query`` per user.

Table layout (partition key ``user_id`` S, sort key ``kind`` S; every attribute but the keys is JSON or a number,
so no ``Decimal`` round trips)::

    kind "base"   written by the pipeline after each publish (BatchWriteItem): the user's newest N training
                  interactions ("events"), "through" (the newest training timestamp), "seen" (every item id of
                  theirs, newest last, up to MAX_SEEN) and "version" (the model version synced)
    kind "live"   written by POST /events (optimistic read-modify-write on "rev"): the newest N events posted,
                  "seen", "event_ids" (the newest MAX_EVENT_IDS ids, for idempotent retries) and "rev"
    "ttl"         on both: epoch seconds after which DynamoDB may delete the item

Two items rather than one per user so that the pipeline's batched writes never race the events route.
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from reccore.errors import UserStateError

DEFAULT_MAX_EVENTS = 200
MAX_SEEN = 5_000  # seen-item exclusion reaches this far back, past the N newest events
MAX_EVENT_IDS = 2_000
# The table's keys and TTL attribute: template.yaml declares the same (a test checks), create_table makes a local one.
KEY_SCHEMA = [{"AttributeName": "user_id", "KeyType": "HASH"}, {"AttributeName": "kind", "KeyType": "RANGE"}]
KEY_ATTRIBUTES = [{"AttributeName": "user_id", "AttributeType": "S"}, {"AttributeName": "kind", "AttributeType": "S"}]
TTL_ATTRIBUTE = "ttl"
_BATCH_WRITE = 25  # DynamoDB's BatchWriteItem limit
_PUT_ATTEMPTS = 4


class _Conflict(Exception):
    """A conditional write lost to a concurrent one."""


@dataclass(frozen=True)
class Event:
    """One interaction: an item id, the event type, an optional value (rating / weight), unix seconds."""

    item_id: str
    event: str
    timestamp: int
    value: float | None = None
    event_id: str | None = None

    def encode(self) -> list[Any]:
        return [self.item_id, self.event, self.timestamp, self.value]

    @classmethod
    def decode(cls, row: list[Any]) -> Event:
        item_id, event, timestamp, value = row
        return cls(str(item_id), str(event), int(timestamp), None if value is None else float(value))


@dataclass
class UserState:
    """What the store knows of one user. ``base`` comes from training, ``live`` from events posted since."""

    user_id: str
    base: list[Event] = field(default_factory=list)  # oldest first
    base_through: int | None = None
    live: list[Event] = field(default_factory=list)  # oldest first
    seen: list[str] = field(default_factory=list)  # distinct item ids, oldest first

    def fresh(self, cutoff: int | None) -> list[Event]:
        """Live events newer than ``cutoff`` (a model's newest training timestamp) and the synced base."""
        floor = max(cutoff if cutoff is not None else -1, self.base_through if self.base_through is not None else -1)
        return [e for e in self.live if e.timestamp > floor]


@dataclass(frozen=True)
class AppendResult:
    accepted: int  # events stored
    duplicates: int  # events whose event_id the store already had


class UserStateStore(Protocol):
    """Where per-user state lives; see the module docstring."""

    def get(self, user_id: str) -> UserState | None:
        """The user's state, or ``None`` if the store has nothing for them. Raises :class:`UserStateError`."""

    def append(self, events: Sequence[tuple[str, Event]]) -> AppendResult:
        """Add ``(user_id, event)`` pairs; an ``event_id`` seen before is not added again."""

    def put_base(self, states: Iterable[UserState], version: str) -> int:
        """Replace the training-side state (``base``, ``base_through``, ``seen``) of each user; returns the count."""


def _merge_seen(seen: list[str], items: Iterable[str]) -> list[str]:
    merged = dict.fromkeys(seen)
    for item in items:
        merged.pop(item, None)
        merged[item] = None  # re-seen items move to the newest end
    return list(merged)[-MAX_SEEN:]


def _newest(events: list[Event], limit: int) -> list[Event]:
    return sorted(events, key=lambda e: e.timestamp)[-limit:]


class EmbeddedStore:
    """In-process state: the events posted since the model was trained (histories stay in the artifact)."""

    def __init__(self, max_events: int = DEFAULT_MAX_EVENTS) -> None:
        self.max_events = max_events
        self._lock = threading.Lock()
        self._states: dict[str, UserState] = {}
        self._event_ids: dict[str, list[str]] = defaultdict(list)

    def get(self, user_id: str) -> UserState | None:
        with self._lock:
            state = self._states.get(user_id)
            if state is None:
                return None
            return UserState(user_id, list(state.base), state.base_through, list(state.live), list(state.seen))

    def append(self, events: Sequence[tuple[str, Event]]) -> AppendResult:
        accepted = duplicates = 0
        with self._lock:
            for user_id, event in events:
                known = self._event_ids[user_id]
                if event.event_id is not None and event.event_id in known:
                    duplicates += 1
                    continue
                if event.event_id is not None:
                    known.append(event.event_id)
                    del known[:-MAX_EVENT_IDS]
                state = self._states.setdefault(user_id, UserState(user_id))
                state.live = _newest([*state.live, event], self.max_events)
                state.seen = _merge_seen(state.seen, [event.item_id])
                accepted += 1
        return AppendResult(accepted, duplicates)

    def put_base(self, states: Iterable[UserState], version: str) -> int:
        count = 0
        with self._lock:
            for new in states:
                state = self._states.setdefault(new.user_id, UserState(new.user_id))
                state.base, state.base_through = new.base[-self.max_events :], new.base_through
                state.seen = _merge_seen(new.seen, state.seen)
                count += 1
        return count


class DynamoStore:
    """The DynamoDB backend. The client is created lazily and honours ``AWS_ENDPOINT_URL_DYNAMODB``."""

    def __init__(
        self,
        table: str,
        max_events: int = DEFAULT_MAX_EVENTS,
        ttl_days: float = 365.0,
        client: Any | None = None,
        client_config: Any | None = None,
    ) -> None:
        self.table = table
        self.max_events = max_events
        self.ttl_seconds = int(ttl_days * 86_400)
        self._client = client
        self._client_config = client_config
        self._client_lock = threading.Lock()

    @property
    def client(self) -> Any:
        if self._client is None:
            with self._client_lock:
                if self._client is None:
                    import boto3  # deferred: importing the store must not cost boto3's import time

                    self._client = boto3.client("dynamodb", config=self._client_config)
        return self._client

    def _call(self, operation: str, **kwargs: Any) -> Any:
        try:
            return getattr(self.client, operation)(TableName=self.table, **kwargs)
        except Exception as exc:  # botocore raises many types; callers handle one
            code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
            if code == "ConditionalCheckFailedException":
                raise _Conflict from exc
            detail = f": {code}" if code else ""
            raise UserStateError(f"user-state table unavailable ({type(exc).__name__}{detail})") from exc

    def get(self, user_id: str) -> UserState | None:
        response = self._call(
            "query",
            KeyConditionExpression="user_id = :u",
            ExpressionAttributeValues={":u": {"S": user_id}},
            ConsistentRead=True,
        )
        items = {item["kind"]["S"]: item for item in response.get("Items", [])}
        if not items:
            return None
        state = UserState(user_id)
        seen: list[str] = []
        if "base" in items:
            base = items["base"]
            state.base = [Event.decode(row) for row in json.loads(base["events"]["S"])]
            state.base_through = int(base["through"]["N"]) if "through" in base else None
            seen = json.loads(base["seen"]["S"])
        if "live" in items:
            live = items["live"]
            state.live = [Event.decode(row) for row in json.loads(live["events"]["S"])]
            seen = _merge_seen(seen, json.loads(live["seen"]["S"]))
        state.seen = seen
        return state

    def append(self, events: Sequence[tuple[str, Event]]) -> AppendResult:
        by_user: dict[str, list[Event]] = defaultdict(list)
        for user_id, event in events:
            by_user[user_id].append(event)
        accepted = duplicates = 0
        for user_id, user_events in by_user.items():
            added, repeated = self._append_user(user_id, user_events)
            accepted, duplicates = accepted + added, duplicates + repeated
        return AppendResult(accepted, duplicates)

    def _append_user(self, user_id: str, events: list[Event]) -> tuple[int, int]:
        for _ in range(_PUT_ATTEMPTS):
            current = self._call("get_item", Key=self._key(user_id, "live"), ConsistentRead=True).get("Item")
            live = [Event.decode(r) for r in json.loads(current["events"]["S"])] if current else []
            seen = json.loads(current["seen"]["S"]) if current else []
            ids: list[str] = json.loads(current["event_ids"]["S"]) if current else []
            rev = int(current["rev"]["N"]) if current else 0
            known = set(ids)
            new: list[Event] = []
            for event in events:
                if event.event_id is not None:
                    if event.event_id in known:
                        continue
                    known.add(event.event_id)
                    ids.append(event.event_id)
                new.append(event)
            if not new:
                return 0, len(events)
            item = {
                **self._key(user_id, "live"),
                "events": {"S": json.dumps([e.encode() for e in _newest([*live, *new], self.max_events)])},
                "seen": {"S": json.dumps(_merge_seen(seen, (e.item_id for e in new)))},
                "event_ids": {"S": json.dumps(ids[-MAX_EVENT_IDS:])},
                "rev": {"N": str(rev + 1)},
                "ttl": {"N": str(int(time.time()) + self.ttl_seconds)},
            }
            try:
                self._call(
                    "put_item",
                    Item=item,
                    ConditionExpression="attribute_not_exists(user_id) OR rev = :rev",
                    ExpressionAttributeValues={":rev": {"N": str(rev)}},
                )
            except _Conflict:  # a concurrent writer won the race: read again and retry
                continue
            return len(new), len(events) - len(new)
        raise UserStateError(f"user-state update for one user kept conflicting after {_PUT_ATTEMPTS} attempts")

    def put_base(self, states: Iterable[UserState], version: str) -> int:
        expires = str(int(time.time()) + self.ttl_seconds)
        batch: list[dict[str, Any]] = []
        count = 0
        for state in states:
            item = {
                **self._key(state.user_id, "base"),
                "events": {"S": json.dumps([e.encode() for e in state.base[-self.max_events :]])},
                "seen": {"S": json.dumps(state.seen[-MAX_SEEN:])},
                "version": {"S": version},
                "ttl": {"N": expires},
            }
            if state.base_through is not None:
                item["through"] = {"N": str(state.base_through)}
            batch.append({"PutRequest": {"Item": item}})
            count += 1
            if len(batch) == _BATCH_WRITE:
                self._write_batch(batch)
                batch = []
        if batch:
            self._write_batch(batch)
        return count

    def _write_batch(self, requests: list[dict[str, Any]]) -> None:
        pending = {self.table: requests}
        for attempt in range(8):
            try:
                response = self.client.batch_write_item(RequestItems=pending)
            except Exception as exc:  # any failure of the call: one error type for the caller
                raise UserStateError(f"user-state batch write failed ({type(exc).__name__})") from exc
            pending = response.get("UnprocessedItems") or {}
            if not pending:
                return
            time.sleep(min(1.0, 0.05 * 2**attempt))  # throttled: back off as DynamoDB asks
        raise UserStateError("user-state batch write: items still unprocessed after 8 attempts")

    @staticmethod
    def _key(user_id: str, kind: str) -> dict[str, Any]:
        return {"user_id": {"S": user_id}, "kind": {"S": kind}}


def create_table(client: Any, table: str) -> None:
    """Create the user-state table if missing (local stacks: the demo and the tests; AWS uses template.yaml)."""
    try:
        client.create_table(
            TableName=table, KeySchema=KEY_SCHEMA, AttributeDefinitions=KEY_ATTRIBUTES, BillingMode="PAY_PER_REQUEST"
        )
    except client.exceptions.ResourceInUseException:
        return
    client.get_waiter("table_exists").wait(TableName=table, WaiterConfig={"Delay": 0.2, "MaxAttempts": 50})
    client.update_time_to_live(
        TableName=table, TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE}
    )
