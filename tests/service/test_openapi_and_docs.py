"""The spec documents every error status the app can answer, /docs can be switched off, CORS errors are JSON."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from reccore.settings import get_service_settings


@pytest.fixture()
def build_app(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., FastAPI]]:
    """A new app from the given ``REC_*`` variables (settings re-read)."""
    from app.main import create_app

    def build(**env: str) -> FastAPI:
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        get_service_settings.cache_clear()
        return create_app()

    yield build
    get_service_settings.cache_clear()


def test_every_operation_documents_400_413_422_and_503_with_the_error_shape(build_app: Callable[..., FastAPI]) -> None:
    spec = TestClient(build_app()).get("/openapi.json").json()
    operations = [(path, method, op) for path, ops in spec["paths"].items() for method, op in ops.items()]
    assert len(operations) >= 10
    for path, method, operation in operations:
        for status in ("400", "413", "422", "503"):
            schema = operation["responses"][status]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorResponse"}, (path, method, status)
        # uvicorn answers a request it cannot parse (before the app runs) in plain text: documented as such.
        assert set(operation["responses"]["400"]["content"]) == {"application/json", "text/plain"}
    assert "HTTPValidationError" not in spec["components"]["schemas"]  # no 422 documented in FastAPI's own shape
    assert "404" in spec["paths"]["/items/{item_id}"]["get"]["responses"]
    health = spec["components"]["schemas"]["Health"]["properties"]
    assert {"stale", "stale_reason"} <= set(health)


@pytest.mark.parametrize("path", ["/recommend", "/events"])
def test_the_400_description_lists_the_unparseable_bodies(build_app: Callable[..., FastAPI], path: str) -> None:
    """The body routes document what a 400 means for them: a body that cannot be parsed, and why (issue 20)."""
    spec = TestClient(build_app()).get("/openapi.json").json()
    description = spec["paths"][path]["post"]["responses"]["400"]["description"]
    for cause in ("not valid UTF-8", "nested too deeply", "4,300 digits", "CORS preflight"):
        assert cause in description, cause


def test_docs_are_served_by_default(build_app: Callable[..., FastAPI]) -> None:
    api = TestClient(build_app())
    for path in ("/docs", "/redoc", "/openapi.json"):
        assert api.get(path).status_code == 200, path


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_docs_pages_load_every_asset_from_the_service_itself(build_app: Callable[..., FastAPI], page: str) -> None:
    """Offline (or behind a firewall) the pages still render: no script or style comes from a CDN."""
    api = TestClient(build_app())
    html = api.get(page).text
    assets = re.findall(r"""(?:src|href)=["']([^"']+)["']|url: ["']([^"']+)["']""", html)
    urls = [a or b for a, b in assets]
    assert urls and not [u for u in urls if "//" in u], urls  # every URL is a path on this service
    scripts = [u for u in urls if u.endswith(".js")]
    assert scripts, html
    for url in urls:
        response = api.get(url)
        assert response.status_code == 200, url
    assert len(api.get(scripts[0]).content) > 500_000  # the real bundle, not a placeholder


@pytest.mark.parametrize("value", ["false", "0", "no"])
def test_docs_can_be_switched_off(build_app: Callable[..., FastAPI], value: str) -> None:
    api = TestClient(build_app(REC_DOCS_ENABLED=value))
    for path in ("/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect", "/docs/assets/swagger-ui-bundle.js"):
        response = api.get(path)
        assert response.status_code == 404, path
        assert response.json()["error"] == "not_found"


def test_a_rejected_cors_preflight_answers_in_the_error_shape(build_app: Callable[..., FastAPI]) -> None:
    api = TestClient(build_app(REC_CORS_ORIGINS="https://dashboard.example"))
    preflight = {"access-control-request-method": "POST", "access-control-request-headers": "content-type"}
    allowed = api.options("/recommend", headers={"origin": "https://dashboard.example", **preflight})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://dashboard.example"
    rejected = api.options("/recommend", headers={"origin": "https://evil.example", **preflight})
    assert rejected.status_code == 400
    assert rejected.headers["content-type"] == "application/json"
    assert rejected.json() == {"error": "bad_request", "message": "Disallowed CORS origin"}


def test_a_body_over_the_limit_is_413_in_the_error_shape(client: Any) -> None:
    response = client.post(
        "/recommend",
        content=b"{" + b" " * get_service_settings().max_body_bytes + b"}",
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"
