"""``python -m pipeline batch``: Parquet rows equal to the API's answers; the Lambda event runs it too."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from pipeline.cli import main
from pipeline.handler import handler
from tests.conftest import PublishedModel


def test_batch_output_equals_the_api_answers(
    client: Any, published_model: PublishedModel, tmp_path: Path, capsys: Any
) -> None:
    users_file = tmp_path / "users.txt"
    sample = [u["user_id"] for u in client.get("/users", params={"limit": 40}).json()["users"]] + ["nobody-known"]
    users_file.write_text("\n".join(sample) + "\n")
    output = tmp_path / "out" / "recs.parquet"
    assert main(["batch", "--model", published_model.uri, "--users", str(users_file), "--k", "7",
                 "--output", str(output), "--threads", "2"]) == 0  # fmt: skip
    assert "users/s" in capsys.readouterr().out
    table = pq.read_table(output).to_pylist()
    assert {row["user_id"] for row in table} == set(sample)
    for user in sample:
        rows = sorted((r for r in table if r["user_id"] == user), key=lambda r: r["rank"])
        api = client.post("/recommend", json={"user_id": user, "k": 7}).json()["items"]
        assert [r["item_id"] for r in rows] == [i["item_id"] for i in api]
        assert [r["source"] for r in rows] == [i["source"] for i in api]
        assert [r["rank"] for r in rows] == list(range(1, 8))


def test_the_pipeline_lambda_runs_a_batch_event(published_model: PublishedModel, tmp_path: Path) -> None:
    output = tmp_path / "all.parquet"
    result = handler({"command": "batch", "model": published_model.uri, "users": "all", "k": 3,
                      "output": str(output)}, None)  # fmt: skip
    table = pq.read_table(output)
    assert result["rows"] == table.num_rows == 3 * result["users"]
    assert result["model_version"] == published_model.version and result["users_per_second"] > 0
