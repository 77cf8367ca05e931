"""Settings: each field's environment variable is derived in one place."""

from __future__ import annotations

import pytest

from reccore.settings import PipelineSettings, ServiceSettings, env_name


def test_env_name_is_the_variable_the_settings_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(env_name("model_uri"), "/srv/models")
    monkeypatch.setenv(env_name("progress"), "false")
    assert env_name("model_uri") == "REC_MODEL_URI"
    assert ServiceSettings().model_uri == "/srv/models"
    assert PipelineSettings().progress is False


def test_env_name_refuses_an_unknown_field() -> None:
    with pytest.raises(ValueError, match="no_such"):
        env_name("no_such")


def test_progress_is_on_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(env_name("progress"), raising=False)
    assert PipelineSettings().progress is True
