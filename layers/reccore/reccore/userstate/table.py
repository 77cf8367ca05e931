"""The user-state table's layout: its keys, the two items per user, the TTL and each item's byte budget.

Partition key ``user_id`` S, sort key ``kind`` S; every attribute but the keys is JSON or a number, so no
``Decimal`` round trips::

    kind "base"   written by the pipeline after each publish (BatchWriteItem): the user's newest N training
                  interactions ("events"), "through" (the newest training timestamp), "seen" (every item id of
                  theirs, newest last, up to MAX_SEEN) and "version" (the model version synced)
    kind "live"   written by POST /events (optimistic read-modify-write on "rev"): the newest N events posted,
                  "seen", "event_ids" (the newest MAX_EVENT_IDS ids, for idempotent retries) and "rev"
    "ttl"         on both: epoch seconds after which DynamoDB may delete the item

Two items rather than one per user so that the pipeline's batched writes never race the events route.

No user can outgrow an item: DynamoDB caps one at 400 KB, and ids may be 256 characters, so besides their
counts each list is cut to a byte budget, newest kept (``EVENTS_BYTES``, ``SEEN_BYTES``, ``EVENT_IDS_BYTES``):
the seen-set reaches back 5,000 items or 200 KB of ids, whichever is less (about 3,000 ids of 64 characters).
"""

from __future__ import annotations

import json
from typing import Any

# The table's keys and TTL attribute: template.yaml declares the same (a test checks), create_table makes a local one.
KEY_SCHEMA = [{"AttributeName": "user_id", "KeyType": "HASH"}, {"AttributeName": "kind", "KeyType": "RANGE"}]
KEY_ATTRIBUTES = [{"AttributeName": "user_id", "AttributeType": "S"}, {"AttributeName": "kind", "AttributeType": "S"}]
TTL_ATTRIBUTE = "ttl"
# Byte budgets of one stored item's lists (JSON as stored): 360 KB in all, under DynamoDB's 400 KB item limit.
EVENTS_BYTES = 120_000
SEEN_BYTES = 200_000
EVENT_IDS_BYTES = 40_000


def within_budget(rows: list[Any], budget: int) -> list[Any]:
    """The newest rows (the list's tail) whose JSON encoding, as stored, fits in ``budget`` bytes."""
    size, kept = 2, 0  # the brackets
    for row in reversed(rows):
        size += len(json.dumps(row)) + 2  # the row and its ", " separator (json.dumps escapes to ASCII)
        if size > budget:
            break
        kept += 1
    return rows[len(rows) - kept :]


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
