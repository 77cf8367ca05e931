"""The shared JSON log format: one object per line, with the service's name and the record's extra fields."""

from __future__ import annotations

import io
import json
import logging

from reccore.logs import JsonFormatter, json_logger


def test_a_record_is_one_json_line_with_its_extra_fields() -> None:
    record = logging.LogRecord("svc", logging.WARNING, __file__, 1, "stage %s", ("load",), None)
    record.seconds = 0.25
    line = JsonFormatter("pipeline").format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["message"] == "stage load" and entry["level"] == "WARNING"
    assert entry["service"] == "pipeline" and entry["seconds"] == 0.25
    assert entry["timestamp"].endswith("Z")


def test_json_logger_adds_its_handler_once() -> None:
    first = json_logger("test-logs-once")
    second = json_logger("test-logs-once")
    ours = [h for h in second.handlers if getattr(h, "_rec_json", False)]
    assert first is second and len(ours) == 1 and not second.propagate
    buffer = io.StringIO()
    assert isinstance(ours[0], logging.StreamHandler)
    ours[0].setStream(buffer)
    second.info("hello", extra={"n": 1})
    assert json.loads(buffer.getvalue()) | {"timestamp": None} == {
        "level": "INFO", "message": "hello", "timestamp": None, "service": "test-logs-once",
        "logger": "test-logs-once", "n": 1,
    }  # fmt: skip
