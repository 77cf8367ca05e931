"""The pipeline's Lambda handler (pipeline/handler.py): the same job, one JSON log line per stage, no progress bars."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from pipeline.handler import handler
from pipeline.reporting import logger
from reccore.errors import DataSourceError


@pytest.fixture()
def log_lines() -> Iterator[io.StringIO]:
    ours = next(h for h in logger.handlers if getattr(h, "_rec_json", False))
    assert isinstance(ours, logging.StreamHandler)
    buffer = io.StringIO()
    previous = ours.setStream(buffer)
    yield buffer
    ours.setStream(previous)


def test_one_json_line_per_stage(tmp_path: Path, log_lines: io.StringIO, capsys: pytest.CaptureFixture[str]) -> None:
    context = SimpleNamespace(aws_request_id="req-1")
    result = handler({"interactions": 5000, "output": str(tmp_path), "force": True}, context)
    lines = [json.loads(line) for line in log_lines.getvalue().splitlines()]
    assert [(line["stage"], line["seconds"]) for line in lines] == list(result["timings"].items())
    assert all(line["message"] == "stage" and line["status"] == "finished" for line in lines)
    assert all(line["service"] == "pipeline" and line["level"] == "INFO" for line in lines)
    assert {line["request_id"] for line in lines} == {"req-1"}
    captured = capsys.readouterr()
    assert "\r" not in captured.err and "evaluate" not in captured.err
    assert "…" not in captured.out


def test_a_failed_stage_logs_one_error_line(tmp_path: Path, log_lines: io.StringIO) -> None:
    bad = tmp_path / "events.csv"
    bad.write_text("user,item\n1,2\n")
    with pytest.raises(DataSourceError):
        handler({"source": str(bad), "output": str(tmp_path / "out")}, None)
    lines = [json.loads(line) for line in log_lines.getvalue().splitlines()]
    assert [(line["stage"], line["status"], line["level"]) for line in lines] == [("load", "failed", "ERROR")]
    assert lines[0]["seconds"] >= 0
