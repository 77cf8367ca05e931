"""The DynamoDB user-state backend (the deployed default); the table's layout is :mod:`reccore.userstate.table`.

Writes to one user are serialised in-process (striped locks) and retried with jittered back-off across
processes; a conflict that outlasts the request's deadline is :class:`UserStateBusyError`, never an outage.
"""

from __future__ import annotations

import contextvars
import json
import logging
import random
import threading
import time
import zlib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from reccore.deadline import bounded, remaining
from reccore.errors import UserStateBusyError, UserStateError
from reccore.userstate import (
    DEFAULT_MAX_EVENTS,
    MAX_EVENT_IDS,
    MAX_SEEN,
    AppendResult,
    BaseWrite,
    Event,
    UserState,
    merge_seen,
    newest_events,
)
from reccore.userstate.table import EVENT_IDS_BYTES, EVENTS_BYTES, SEEN_BYTES, within_budget

logger = logging.getLogger(__name__)

_BATCH_WRITE = 25  # DynamoDB's BatchWriteItem limit
_PUT_ATTEMPTS = 12  # conditional-write attempts per user; the request's deadline usually ends them first
_BATCH_GET = 100  # DynamoDB's BatchGetItem limit
_WRITERS = 16  # users' puts in flight at once in a many-user append
_LOCK_STRIPES = 256
_THROTTLED = {"ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded"}


class _Conflict(Exception):
    """A conditional write lost to a concurrent one."""


def error_code(exc: BaseException) -> str:
    """The AWS error code of a botocore exception; "" for the shapes that carry none.

    ``ReadTimeoutError``, ``ConnectTimeoutError`` and ``EndpointConnectionError`` have ``response = None``.
    """
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return ""
    return str((response.get("Error") or {}).get("Code", ""))


_STRIPES = [threading.Lock() for _ in range(_LOCK_STRIPES)]  # one user's writes in this process: one at a time


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
        """One table call; throttling is retried with back-off while the request's deadline allows."""
        for attempt in range(8):
            left = remaining()
            if left is not None and left <= 0:
                raise UserStateError("user-state table: the request's deadline passed before the call")
            try:
                return getattr(self.client, operation)(TableName=self.table, **kwargs)
            except Exception as exc:  # botocore raises many types, some without a response: one error for callers
                code = error_code(exc)
                if code == "ConditionalCheckFailedException":
                    raise _Conflict from exc
                pause = min(1.0, 0.05 * 2**attempt) * random.uniform(0.5, 1.0)
                if code in _THROTTLED and attempt < 7 and bounded(pause) == pause:
                    time.sleep(pause)
                    continue
                detail = f": {code}" if code else ""
                raise UserStateError(f"user-state table unavailable ({type(exc).__name__}{detail})") from exc
        raise AssertionError("unreachable")  # the last attempt returns or raises

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
            seen = merge_seen(seen, json.loads(live["seen"]["S"]))
        state.seen = seen
        return state

    def append(self, events: Sequence[tuple[str, Event]]) -> AppendResult:
        by_user: dict[str, list[Event]] = defaultdict(list)
        for user_id, event in events:
            by_user[user_id].append(event)
        if len(by_user) > 1:
            return self._append_many(by_user)
        added, repeated = self._append_user(*next(iter(by_user.items())))
        return AppendResult(added, repeated)

    def _append_user(self, user_id: str, events: list[Event]) -> tuple[int, int]:
        with _STRIPES[zlib.crc32(user_id.encode("utf-8", "surrogatepass")) % _LOCK_STRIPES]:
            for attempt in range(_PUT_ATTEMPTS):
                try:
                    return self._try_append(user_id, events)
                except _Conflict:  # another process's writer won the race: back off, read again, retry
                    pause = min(0.2, 0.01 * 2**attempt) * random.uniform(0.5, 1.5)
                    left = remaining()
                    if left is not None and left <= pause:
                        break
                    time.sleep(pause)
        raise UserStateBusyError(
            "too many concurrent writes for this user: their state kept changing under the update; retry"
        )

    def _try_append(self, user_id: str, events: list[Event]) -> tuple[int, int]:
        current = self._call("get_item", Key=self._key(user_id, "live"), ConsistentRead=True).get("Item")
        put, added = self._next_live(user_id, current, events)
        if put is not None:
            self._call("put_item", **put)
        return added, len(events) - added

    def _next_live(self, user_id: str, current: dict[str, Any] | None, events: list[Event]) -> tuple[Any, int]:
        """The conditional put that adds ``events`` to the ``current`` live item (None if all are repeats)."""
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
            return None, 0
        item = {
            **self._key(user_id, "live"),
            "events": {"S": self._events_json(newest_events([*live, *new], self.max_events))},
            "seen": {"S": json.dumps(within_budget(merge_seen(seen, (e.item_id for e in new)), SEEN_BYTES))},
            "event_ids": {"S": json.dumps(within_budget(ids[-MAX_EVENT_IDS:], EVENT_IDS_BYTES))},
            "rev": {"N": str(rev + 1)},
            "ttl": {"N": str(int(time.time()) + self.ttl_seconds)},
        }
        condition = "attribute_not_exists(user_id) OR rev = :rev"
        put = {"Item": item, "ConditionExpression": condition, "ExpressionAttributeValues": {":rev": {"N": str(rev)}}}
        return put, len(new)

    def _append_many(self, by_user: dict[str, list[Event]]) -> AppendResult:
        """Many users in few round trips: their live items read with BatchGetItem (100 a call), then each
        user's conditional put, ``_WRITERS`` at a time. A user whose put loses to a concurrent writer is
        replayed on its own, with retries. (TransactWriteItems would cut the puts to one call per 100 users,
        but moto copies the table for each: 3 s growing to 33 s for 500 users, measured.)"""
        users = list(by_user)
        current: dict[str, dict[str, Any]] = {}
        for start in range(0, len(users), _BATCH_GET):
            keys = [self._key(u, "live") for u in users[start : start + _BATCH_GET]]
            pending: dict[str, Any] = {self.table: {"Keys": keys, "ConsistentRead": True}}
            while pending:
                response = self._batch_call("batch_get_item", RequestItems=pending)
                for item in response.get("Responses", {}).get(self.table, []):
                    current[item["user_id"]["S"]] = item
                pending = response.get("UnprocessedKeys") or {}

        def write(user: str) -> tuple[int, int]:
            put, added = self._next_live(user, current.get(user), by_user[user])
            if put is None:
                return 0, len(by_user[user])
            try:
                self._call("put_item", **put)
            except _Conflict:
                return self._append_user(user, by_user[user])
            return added, len(by_user[user]) - added

        context = contextvars.copy_context()  # each worker in the request's context (its deadline)
        with ThreadPoolExecutor(min(_WRITERS, len(users))) as pool:
            results = list(pool.map(lambda user: context.copy().run(write, user), users))
        return AppendResult(sum(r[0] for r in results), sum(r[1] for r in results))

    def _batch_call(self, operation: str, **kwargs: Any) -> Any:
        """A call that names its table inside its arguments (``_call`` adds ``TableName`` itself)."""
        left = remaining()
        if left is not None and left <= 0:
            raise UserStateError("user-state table: the request's deadline passed before the call")
        try:
            return getattr(self.client, operation)(**kwargs)
        except Exception as exc:  # botocore raises many types, some without a response: one error for callers
            code = error_code(exc)
            detail = f": {code}" if code else ""
            raise UserStateError(f"user-state table unavailable ({type(exc).__name__}{detail})") from exc

    @staticmethod
    def _events_json(events: list[Event]) -> str:
        return json.dumps(within_budget([e.encode() for e in events], EVENTS_BYTES))

    def put_base(self, states: Iterable[UserState], version: str) -> BaseWrite:
        expires = str(int(time.time()) + self.ttl_seconds)
        batch: list[dict[str, Any]] = []
        written, skipped = 0, list[str]()
        for state in states:
            item = {
                **self._key(state.user_id, "base"),
                "events": {"S": self._events_json(state.base[-self.max_events :])},
                "seen": {"S": json.dumps(within_budget(state.seen[-MAX_SEEN:], SEEN_BYTES))},
                "version": {"S": version},
                "ttl": {"N": expires},
            }
            if state.base_through is not None:
                item["through"] = {"N": str(state.base_through)}
            batch.append({"PutRequest": {"Item": item}})
            if len(batch) == _BATCH_WRITE:
                done, failed = self._write_batch(batch)
                written, skipped = written + done, skipped + failed
                batch = []
        if batch:
            done, failed = self._write_batch(batch)
            written, skipped = written + done, skipped + failed
        return BaseWrite(written, skipped)

    def _write_batch(self, requests: list[dict[str, Any]]) -> tuple[int, list[str]]:
        """Write a batch; if DynamoDB refuses the batch for one item's sake, write its items one by one."""
        pending = {self.table: requests}
        for attempt in range(8):
            try:
                response = self.client.batch_write_item(RequestItems=pending)
            except Exception as exc:  # any failure of the call: one error type for the caller
                if error_code(exc) == "ValidationException":  # one bad item refuses the whole batch
                    return self._write_each(pending[self.table])
                raise UserStateError(f"user-state batch write failed ({type(exc).__name__})") from exc
            pending = response.get("UnprocessedItems") or {}
            if not pending:
                return len(requests), []
            time.sleep(min(1.0, 0.05 * 2**attempt))  # throttled: back off as DynamoDB asks
        raise UserStateError("user-state batch write: items still unprocessed after 8 attempts")

    def _write_each(self, requests: list[dict[str, Any]]) -> tuple[int, list[str]]:
        written, skipped = 0, list[str]()
        for request in requests:
            item = request["PutRequest"]["Item"]
            try:
                self.client.put_item(TableName=self.table, Item=item)
                written += 1
            except Exception as exc:  # botocore raises many types; only a refused item is this user's alone
                if error_code(exc) != "ValidationException":
                    raise UserStateError(f"user-state write failed ({type(exc).__name__})") from exc
                logger.warning("user sync: skipping user %r: %s", item["user_id"]["S"][:80], exc)
                skipped.append(item["user_id"]["S"])
        return written, skipped

    @staticmethod
    def _key(user_id: str, kind: str) -> dict[str, Any]:
        return {"user_id": {"S": user_id}, "kind": {"S": kind}}
