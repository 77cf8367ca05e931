"""The training event log: every accepted event, as newline-delimited JSON under ``<prefix>/events/``.

Two writers, one layout (Firehose's own: ``events/YYYY/MM/DD/HH/<object>``, UTC), so the pipeline reads
the log the same way whoever wrote it:

- :class:`FirehoseLog` puts records on an Amazon Data Firehose delivery stream whose S3 destination is the
  bucket's ``<prefix>/events/`` (the deployed default; template.yaml);
- :class:`StoreLog` writes one object per batch through an :class:`~reccore.storage.ArtifactStore` (a model
  directory or S3 prefix), when no stream is configured.

One record per line::

    {"user_id": "u1", "item_id": "i9", "event": "purchase", "value": null, "timestamp": 1719705600,
     "event_id": "…" | null, "recommendation_id": "…" | null, "received_at": 1719705601}

``recommendation_id`` is the id of the ``POST /recommend`` answer the event followed, if the client sent it:
the online experiments join it to the impressions (:mod:`reccore.impressions`).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from reccore.errors import EventLogError
from reccore.storage import ArtifactStore
from reccore.userstate import Event

EVENTS_DIR = "events"
RECORD_FIELDS = ("user_id", "item_id", "event", "value", "timestamp", "event_id", "recommendation_id", "received_at")
_FIREHOSE_BATCH = 500  # PutRecordBatch's limit


def record(user_id: str, event: Event, received_at: int) -> dict[str, Any]:
    """The log record of one event (keys: :data:`RECORD_FIELDS`)."""
    return {
        "user_id": user_id,
        "item_id": event.item_id,
        "event": event.event,
        "value": event.value,
        "timestamp": event.timestamp,
        "event_id": event.event_id,
        "recommendation_id": event.recommendation_id,
        "received_at": received_at,
    }


def ndjson(records: Sequence[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(r, ensure_ascii=False, separators=(",", ":")).encode() + b"\n" for r in records)


def partition(now: datetime) -> str:
    """Firehose's default time partition of an object written at ``now``: ``YYYY/MM/DD/HH``."""
    return f"{now:%Y/%m/%d/%H}"


class EventLog(Protocol):
    """Where accepted events go for training."""

    def write(self, events: Sequence[tuple[str, Event]]) -> None:
        """Append ``(user_id, event)`` pairs to the log; raise :class:`EventLogError` on failure."""


class StoreLog:
    """One NDJSON object per batch under ``<directory>/YYYY/MM/DD/HH/`` of an artifact store (``events/``)."""

    def __init__(self, store: ArtifactStore, directory: str = EVENTS_DIR) -> None:
        self.store = store
        self.directory = directory

    def write(self, events: Sequence[tuple[str, Event]]) -> None:
        received = int(time.time())
        self.put_records([record(u, e, received) for u, e in events])

    def put_records(self, records: Sequence[dict[str, Any]]) -> None:
        """Append JSON records as one object; raise :class:`EventLogError` on failure."""
        if not records:
            return
        now = datetime.now(UTC)
        name = self.directory.rsplit("/", 1)[-1]
        key = f"{self.directory}/{partition(now)}/{name}-{now:%Y%m%dT%H%M%S.%f}-{uuid.uuid4().hex[:8]}.json"
        try:
            self.store.put(key, ndjson(records))
        except Exception as exc:  # any storage failure: one error type for the caller
            raise EventLogError(f"event log unavailable ({type(exc).__name__})") from exc


class FirehoseLog:
    """PutRecordBatch to a delivery stream; the client is created lazily (``AWS_ENDPOINT_URL_FIREHOSE`` honoured)."""

    def __init__(self, stream: str, client: Any | None = None, client_config: Any | None = None) -> None:
        self.stream = stream
        self._client = client
        self._client_config = client_config
        self._lock = threading.Lock()

    @property
    def client(self) -> Any:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    import boto3  # deferred: the API imports this module at start-up

                    self._client = boto3.client("firehose", config=self._client_config)
        return self._client

    def write(self, events: Sequence[tuple[str, Event]]) -> None:
        received = int(time.time())
        self.put_records([record(u, e, received) for u, e in events])

    def put_records(self, log_records: Sequence[dict[str, Any]]) -> None:
        """Put JSON records on the stream (500 a call, failed ones resent); raise :class:`EventLogError`."""
        records = [{"Data": ndjson([r])} for r in log_records]
        for start in range(0, len(records), _FIREHOSE_BATCH):
            pending = records[start : start + _FIREHOSE_BATCH]
            for _ in range(3):
                try:
                    response = self.client.put_record_batch(DeliveryStreamName=self.stream, Records=pending)
                except Exception as exc:  # any client failure: one error type for the caller
                    raise EventLogError(f"event stream unavailable ({type(exc).__name__})") from exc
                if not response.get("FailedPutCount"):
                    break
                # Resend only the records Firehose did not take (it answers per record, in order).
                pending = [
                    r for r, res in zip(pending, response["RequestResponses"], strict=True) if "ErrorCode" in res
                ]
            else:
                raise EventLogError(f"event stream rejected {len(pending)} record(s) after 3 attempts")


def create_stream(client: Any, stream: str, bucket: str, prefix: str) -> None:
    """Create a DirectPut stream into ``s3://bucket/prefix/events/`` if missing (local stacks and tests on moto;
    AWS uses template.yaml's EventsDeliveryStream)."""
    if stream in client.list_delivery_streams(Limit=10_000)["DeliveryStreamNames"]:
        return
    client.create_delivery_stream(
        DeliveryStreamName=stream,
        DeliveryStreamType="DirectPut",
        ExtendedS3DestinationConfiguration={
            "RoleARN": "arn:aws:iam::123456789012:role/local-firehose",
            "BucketARN": f"arn:aws:s3:::{bucket}",
            "Prefix": f"{prefix}/{EVENTS_DIR}/",
        },
    )


def parse_lines(data: bytes) -> list[dict[str, Any]]:
    """The records of one log object (blank lines skipped); raises ``ValueError`` on a malformed line."""
    return [json.loads(line) for line in data.splitlines() if line.strip()]
