"""How the dashboard authenticates: nothing by default (``make demo``), SigV4 signing when configured."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from api_settings import request_auth
from reccore.settings import get_frontend_settings
from sigv4 import IamAuth


@pytest.fixture(autouse=True)
def fresh_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("REC_API_AUTH", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    get_frontend_settings.cache_clear()
    yield
    get_frontend_settings.cache_clear()


def test_the_default_sends_unsigned_calls() -> None:
    assert get_frontend_settings().api_auth == "none"
    assert request_auth() is None


def test_iam_signs_with_the_region_from_aws_region(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REC_API_AUTH", "iam")
    monkeypatch.setenv("AWS_REGION", "eu-central-1")
    auth = request_auth()
    assert isinstance(auth, IamAuth) and auth.region == "eu-central-1"


def test_an_unknown_mode_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REC_API_AUTH", "basic")
    with pytest.raises(ValueError, match="api_auth"):
        get_frontend_settings()
