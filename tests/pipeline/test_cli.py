"""The CLI end to end: a run publishes, bad input stops with one message and publishes nothing."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest

import pipeline.index
import pipeline.job
from pipeline.cli import main
from pipeline.cli_run import baseline_line
from pipeline.handler import handler
from pipeline.tuning.search import SearchSpace
from reccore.encoding import npy_bytes, sha256
from reccore.layout import FileEntry
from reccore.loading import load_model
from reccore.storage import open_store
from reccore.versions import list_versions, read_latest_version

SMALL = ["--interactions", "20000", "--seed", "3", "--no-tune"]


def test_run_publishes_and_prints_a_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--output", str(tmp_path), *SMALL]) == 0
    out = capsys.readouterr().out
    version = read_latest_version(open_store(str(tmp_path)))
    assert f"published {version}" in out
    for word in ("stage timings", "publish", "ndcg@10", "popularity", "20,000 interactions"):
        assert word in out
    model = load_model(open_store(str(tmp_path)))
    assert model.manifest.metrics["model"]["ndcg@10"] > model.manifest.metrics["popularity"]["ndcg@10"]
    assert model.manifest.params["factors"] == 50


def test_a_tuned_run_records_its_search_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    space = SearchSpace(factors=(8, 16), weightings=("log",), scalings=(0.0, 0.5), shrinkages=(0.0,), pop_alphas=(0.0,))
    monkeypatch.setattr("pipeline.tuning.search.SearchSpace", lambda: space)
    args = ["run", "--output", str(tmp_path), "--interactions", "20000", "--seed", "3"]
    assert main([*args, "--tune", "--split", "random"]) == 0
    out = capsys.readouterr().out
    assert "tuned on random-split validation" in out and "evaluation on a random split" in out
    manifest = load_model(open_store(str(tmp_path))).manifest
    assert manifest.tuning is not None and manifest.params["tuned"] is True
    assert manifest.params["split"] == manifest.tuning["objective"] == "random"
    assert len(manifest.tuning["rungs"][0]) == 4 + 1  # every setting of the space, and the default, on rung 0
    best, decision = manifest.tuning["best"], manifest.tuning["decision"]
    assert manifest.params["factors"] == best["factors"] and manifest.params["scaling"] == best["scaling"]
    assert best in [{k: v for k, v in t.items() if k != "ndcg@10"} for t in manifest.tuning["rungs"][-1]]
    assert {"chosen", "default", "margin", "standard_error", "reason"} <= decision.keys()


def test_reuse_skips_training_only_for_the_same_input_and_settings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["run", "--output", str(tmp_path), *SMALL, "--reuse"]
    assert main(args) == 0  # nothing published yet: trains
    first = read_latest_version(open_store(str(tmp_path)))
    capsys.readouterr()
    assert main(args) == 0
    assert f"reused {first}: not retrained" in capsys.readouterr().out
    assert read_latest_version(open_store(str(tmp_path))) == first
    assert main([*args, "--seed", "8"]) == 0  # other data: trains again
    assert read_latest_version(open_store(str(tmp_path))) != first
    second = read_latest_version(open_store(str(tmp_path)))
    assert main([*args, "--seed", "8", "--factors", "12"]) == 0  # another setting: trains again
    third = read_latest_version(open_store(str(tmp_path)))
    assert third != second
    assert main([*args, "--seed", "8", "--factors", "12", "--no-reuse"]) == 0  # asked to: trains again
    assert read_latest_version(open_store(str(tmp_path))) != third


def test_env_settings_are_the_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REC_OUTPUT", str(tmp_path))
    monkeypatch.setenv("REC_FACTORS", "8")
    assert main(["run", *SMALL]) == 0
    manifest = load_model(open_store(str(tmp_path))).manifest
    assert manifest.params["factors"] == 8
    assert manifest.params["tuned"] is False and manifest.tuning is None


def test_ratings_flags_reach_the_model(tmp_path: Path) -> None:
    args = ["run", "--output", str(tmp_path), *SMALL, "--min-rating", "2", "--centre", "--shrinkage", "0.3"]
    assert main([*args, "--pop-alpha", "0.25", "--force"]) == 0
    params = load_model(open_store(str(tmp_path))).manifest.params
    assert params["weighting"]["min_rating"] == 2.0 and params["weighting"]["centre"] is True
    assert params["shrinkage"] == 0.3 and params["pop_alpha"] == 0.25


def test_bad_input_file_is_one_message_and_publishes_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "events.csv"
    bad.write_text("user,item\n1,2\n")
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", "pipeline", "run", "--source", str(bad), "--output", str(out)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    message = result.stderr.strip()
    assert message.startswith("error:") and "events.csv" in message and "user_id" in message
    assert len(message.splitlines()) == 1
    assert not out.exists() or list_versions(open_store(str(out))) == []


def test_an_unreachable_output_fails_at_once_in_one_line_before_training(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The default output is s3://…: with no credentials, one line that says so and suggests a directory.
    import boto3

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_PROFILE",
                 "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "REC_OUTPUT"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)  # an earlier test's session holds credentials
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    loaded: list[object] = []

    class Recording:
        def load(self) -> None:
            loaded.append(self)

    monkeypatch.setattr(pipeline.job, "make_engine", lambda settings: Recording())
    assert main(["run", "--interactions", "2000"]) == 2
    message = capsys.readouterr().err.strip()
    assert message.startswith("error: cannot publish to s3://") and "no AWS credentials found" in message
    assert "--output DIR" in message and len(message.splitlines()) == 1
    assert not loaded  # refused before any work


def test_invalid_setting_is_one_message(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--factors", "1", "--output", "/nonexistent"]) == 2
    assert "factors" in capsys.readouterr().err


def test_model_that_does_not_beat_popularity_is_not_published(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def rigged(*args: object, **kwargs: object) -> dict[str, dict[str, float]]:
        return {"model": {"ndcg@10": 0.01}, "popularity": {"ndcg@10": 0.02}}

    monkeypatch.setattr(pipeline.job, "evaluate", rigged)
    assert main(["run", "--output", str(tmp_path), *SMALL]) == 2
    assert "does not beat popularity" in capsys.readouterr().err
    assert list_versions(open_store(str(tmp_path))) == []
    assert main(["run", "--output", str(tmp_path), "--force", *SMALL]) == 0
    assert len(list_versions(open_store(str(tmp_path)))) == 1


def test_hnsw_below_min_recall_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(pipeline.index, "HNSW_EF_SEARCH", 1)  # a deliberately poor search
    monkeypatch.setattr(pipeline.index, "HNSW_M", 4)
    assert main(["run", "--output", str(tmp_path), "--index", "hnsw", *SMALL]) == 2
    assert "recall@10" in capsys.readouterr().err
    assert list_versions(open_store(str(tmp_path))) == []


def test_hnsw_with_good_recall_is_published_with_its_recall(tmp_path: Path) -> None:
    assert main(["run", "--output", str(tmp_path), "--index", "hnsw", "--min-recall", "0.9", *SMALL]) == 0
    index = load_model(open_store(str(tmp_path))).manifest.index
    assert index.type == "hnsw" and index.recall_at_10 is not None and index.recall_at_10 >= 0.9


def test_lambda_handler_runs_the_same_job(tmp_path: Path) -> None:
    result = handler({"source": "synthetic", "interactions": 5000, "output": str(tmp_path), "unknown": 1}, None)
    assert result["version"] == read_latest_version(open_store(str(tmp_path)))
    assert result["data"]["n_interactions"] == 5000


def test_summary_says_which_split_and_what_popularity_scored(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "--output", str(tmp_path), "--interactions", "5000", "--seed", "3", "--force"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("NDCG@10 is on")]
    metrics = load_model(open_store(str(tmp_path))).manifest.metrics
    model, popular = metrics["model"]["ndcg@10"], metrics["popularity"]["ndcg@10"]
    assert len(lines) == 1
    line = lines[0]
    assert "time split" in line and "newest 20%" in line and f"{int(metrics['model']['users']):,} users" in line
    assert f"the model scored {model:.4f}, the popularity baseline {popular:.4f} ({model / popular:.2f}×" in line
    assert ("below it" in line) == (model <= popular)


def test_baseline_line_flags_a_forced_model_below_popularity() -> None:
    metrics = {"model": {"ndcg@10": 0.01, "users": 40.0}, "popularity": {"ndcg@10": 0.02, "users": 40.0}}
    line = baseline_line(metrics, "time")
    assert line.startswith("NDCG@10 is on a time split (each user's newest 20%")
    assert baseline_line(metrics, "random").startswith("NDCG@10 is on a random split (each user's seeded random 20%")
    assert "0.0100" in line and "0.0200" in line and "(0.50× the baseline; below it" in line and "--force" in line


def test_events_flag_and_no_user_arrays(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from reccore.eventlog import StoreLog
    from reccore.userstate import Event

    StoreLog(open_store(str(tmp_path / "log"))).write([("newcomer", Event("i000001", "purchase", 1_719_705_700))])
    args = ["run", "--events", str(tmp_path / "log" / "events"), "--no-user-arrays", "--output", str(tmp_path / "m")]
    assert main([*args, *SMALL, "--force"]) == 0
    model = load_model(open_store(str(tmp_path / "m")))
    assert model.n_users == 0 and model.manifest.data["user_arrays"] is False
    assert model.manifest.data["n_interactions"] == 20_001 and model.manifest.data["events"]["records"] == 1
    assert "user sync" not in capsys.readouterr().out  # no table configured


def test_run_help_lists_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "--split {time,random}" in out and "newest 20%" in out and "--reuse" in out


def test_n_items_flag_and_env_reach_the_manifest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert main(["run", "--output", str(tmp_path / "flag"), *SMALL, "--n-items", "3000", "--force"]) == 0
    manifest = load_model(open_store(str(tmp_path / "flag"))).manifest
    assert manifest.data["n_items"] == 3000 and manifest.data["n_interactions"] == 20_000
    monkeypatch.setenv("REC_N_ITEMS", "2500")
    assert main(["run", "--output", str(tmp_path / "env"), *SMALL, "--force"]) == 0
    assert load_model(open_store(str(tmp_path / "env"))).manifest.data["n_items"] == 2500


def test_n_items_changes_the_reuse_fingerprint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["run", "--output", str(tmp_path), *SMALL, "--reuse", "--force"]
    assert main([*args, "--n-items", "3000"]) == 0
    first = read_latest_version(open_store(str(tmp_path)))
    assert main([*args, "--n-items", "3001"]) == 0  # another catalogue: trains again
    assert read_latest_version(open_store(str(tmp_path))) != first


@pytest.mark.parametrize("value", ["59", "0", "-5", "abc", "1.5"])
@pytest.mark.parametrize("command", ["run", "generate"])
def test_invalid_n_items_is_one_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str, value: str
) -> None:
    out = tmp_path / "out"
    assert main([command, "--n-items", value, "--interactions", "2000", "--output", str(out)]) == 2
    message = capsys.readouterr().err.strip()
    assert message.startswith("error: invalid settings: n_items: ") and len(message.splitlines()) == 1
    assert not out.exists()


def test_generate_takes_n_items_and_writes_what_the_run_trains_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import pandas as pd

    from pipeline.sources.synthetic import generate

    args = ["generate", "--interactions", "3000", "--seed", "5", "--n-items", "1234", "--output", str(tmp_path)]
    assert main(args) == 0
    assert "the catalogue (1,234 items)" in capsys.readouterr().out
    items = pd.read_parquet(tmp_path / "items.parquet")
    frame = pd.concat([pd.read_parquet(p) for p in sorted((tmp_path / "interactions").glob("*.parquet"))])
    log = generate(3000, seed=5, n_items=1234)
    assert items["item_id"].tolist() == log.item_ids.tolist() and len(items) == 1234
    assert sorted(frame["item_id"]) == sorted(log.item_ids[log.items].tolist())


def test_help_lists_n_items(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("run", "generate"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        out = capsys.readouterr().out
        assert "--n-items" in out and "REC_N_ITEMS" in out


def test_a_model_with_a_bad_value_is_never_published(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import numpy as np

    real = pipeline.job.package

    def poisoned(*args: object, **kwargs: object) -> object:
        manifest, files = real(*args, **kwargs)  # type: ignore[arg-type]
        factors = np.load(io.BytesIO(files["item_factors.npy"]))
        factors[5, 0] = np.nan  # passes every shape check; only the thorough value scan finds it
        files["item_factors.npy"] = npy_bytes(factors)
        manifest.files["item_factors.npy"] = FileEntry(size=len(files["item_factors.npy"]),
                                                       sha256=sha256(files["item_factors.npy"]))  # fmt: skip
        return manifest, files

    monkeypatch.setattr(pipeline.job, "package", poisoned)
    assert main(["run", "--output", str(tmp_path), *SMALL]) == 2
    assert not (tmp_path / "models" / "LATEST").exists()
