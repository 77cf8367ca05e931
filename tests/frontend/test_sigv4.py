"""SigV4 signing of the dashboard's calls, verified by botocore against a fixed clock and fixed credentials.

The API is an httpx ``MockTransport`` that records each request exactly as it would go on the wire;
the verifier re-signs that recorded request with botocore and compares the Authorization headers.
"""

from __future__ import annotations

import datetime
import json
import re

import botocore.auth
import httpx
import pytest
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from api_client import ApiClient, ApiError
from sigv4 import SERVICE, IamAuth, region_from_host

NOW = datetime.datetime(2026, 1, 2, 3, 4, 5)
AMZ_DATE = "20260102T030405Z"
KEYS = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
STAGE_URL = "https://a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com/prod"


@pytest.fixture(autouse=True)
def fixed_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda *_, **__: NOW)


class Recorder:
    """A transport that answers 200 ``{}`` (or ``status``/``body``) and keeps every request it received."""

    def __init__(self, status: int = 200, body: object | None = None) -> None:
        self.requests: list[httpx.Request] = []
        self.status, self.body = status, {} if body is None else body

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        return httpx.Response(self.status, json=self.body)

    def client(self, base_url: str = STAGE_URL, auth: httpx.Auth | None = None) -> ApiClient:
        return ApiClient(base_url, timeout=1, auth=auth, transport=httpx.MockTransport(self))


def signed_headers(sent: httpx.Request) -> set[str]:
    found = re.search(r"SignedHeaders=([^,]+)", sent.headers["authorization"])
    assert found, sent.headers["authorization"]
    return set(found.group(1).split(";"))


def expected_authorization(sent: httpx.Request, credentials: Credentials, region: str) -> str:
    """botocore's Authorization for the request as sent, signing the headers the sender said it signed."""
    names = signed_headers(sent) - {"x-amz-date", "x-amz-security-token"}
    replay = AWSRequest(
        method=sent.method, url=str(sent.url), data=sent.content, headers={n: sent.headers[n] for n in names}
    )
    botocore.auth.SigV4Auth(credentials, SERVICE, region).add_auth(replay)
    return str(replay.headers["Authorization"])


def test_signed_calls_carry_a_signature_botocore_verifies() -> None:
    recorder = Recorder()
    client = recorder.client(auth=IamAuth(credentials=KEYS))
    client.recommend(user_id="u 0001", k=3, exclude_categories=["books"])
    client.items(q="red shoe", category="home/garden", limit=5)
    client.user_history("u/1", limit=2)

    assert len(recorder.requests) == 3
    for sent in recorder.requests:
        assert sent.headers["x-amz-date"] == AMZ_DATE
        assert sent.headers["authorization"].startswith(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260102/eu-west-1/execute-api/aws4_request, SignedHeaders="
        )
        assert {"host", "x-amz-date"} <= signed_headers(sent)
        assert sent.headers["authorization"] == expected_authorization(sent, KEYS, "eu-west-1")
        assert "x-amz-security-token" not in sent.headers
    post, get, history = recorder.requests
    assert signed_headers(post) == {"content-type", "host", "x-amz-date"}
    assert json.loads(post.content)["user_id"] == "u 0001"
    # The query goes out in the form that was signed: %20 for a space (never "+"), %2F for a slash.
    assert get.url.query == b"q=red%20shoe&category=home%2Fgarden&limit=5&offset=0"
    assert history.url.raw_path == b"/prod/users/u%2F1?limit=2"


def test_the_verifier_rejects_a_request_changed_after_signing() -> None:
    recorder = Recorder()
    recorder.client(auth=IamAuth(credentials=KEYS)).recommend(user_id="u0001", k=3)
    (sent,) = recorder.requests
    tampered = httpx.Request(sent.method, sent.url, headers=sent.headers, content=sent.content.replace(b"3", b"9"))
    assert tampered.headers["authorization"] != expected_authorization(tampered, KEYS, "eu-west-1")
    assert sent.headers["authorization"] != expected_authorization(sent, KEYS, "us-east-1")


def test_signature_matches_the_published_sigv4_test_vector() -> None:
    """AWS's SigV4 test suite, "get-vanilla": GET / on example.amazonaws.com, 2015-08-30T12:36:00Z."""
    request = httpx.Request("GET", "https://example.amazonaws.com/")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(botocore.auth, "get_current_datetime", lambda *_, **__: datetime.datetime(2015, 8, 30, 12, 36))
        mp.setattr("sigv4.SERVICE", "service")
        IamAuth(region="us-east-1", credentials=KEYS).sign(request)
    assert request.headers["authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
        "SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
    )


def test_temporary_credentials_send_and_sign_their_session_token() -> None:
    session = Credentials("ASIAEXAMPLE", "secret", token="session-token-value")
    recorder = Recorder()
    recorder.client(auth=IamAuth(credentials=session)).health()
    (sent,) = recorder.requests
    assert sent.headers["x-amz-security-token"] == "session-token-value"
    assert "x-amz-security-token" in signed_headers(sent)
    assert sent.headers["authorization"] == expected_authorization(sent, session, "eu-west-1")


def test_the_unsigned_default_sends_no_credentials() -> None:
    recorder = Recorder()
    recorder.client().recommend(k=2)
    (sent,) = recorder.requests
    assert not {"authorization", "x-amz-date", "x-amz-security-token"} & set(sent.headers)


def test_region_comes_from_the_url_before_the_configured_one() -> None:
    assert region_from_host("a1b2c3d4e5.execute-api.ap-southeast-2.amazonaws.com") == "ap-southeast-2"
    assert region_from_host("abc.execute-api.cn-north-1.amazonaws.com.cn") == "cn-north-1"
    assert region_from_host("api.example.com") is None
    recorder = Recorder()
    recorder.client(auth=IamAuth(region="us-west-2", credentials=KEYS)).health()
    recorder.client("https://api.example.com/v1", auth=IamAuth(region="us-west-2", credentials=KEYS)).health()
    stage, custom = recorder.requests
    assert "/eu-west-1/execute-api/" in stage.headers["authorization"]
    assert "/us-west-2/execute-api/" in custom.headers["authorization"]
    assert custom.headers["authorization"] == expected_authorization(custom, KEYS, "us-west-2")


def test_credentials_come_from_the_standard_chain(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDFROMENV")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env-secret")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    recorder = Recorder()
    recorder.client(auth=IamAuth()).health()
    (sent,) = recorder.requests
    assert sent.headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDFROMENV/20260102/eu-west-1/")
    assert sent.headers["authorization"] == expected_authorization(
        sent, Credentials("AKIDFROMENV", "env-secret"), "eu-west-1"
    )


def test_a_call_that_cannot_be_signed_is_an_api_error(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/config")
    recorder = Recorder()
    with pytest.raises(ApiError, match=r"Cannot sign the call .*no AWS region"):
        recorder.client("https://api.example.com", auth=IamAuth(credentials=KEYS)).health()
    assert not recorder.requests


def test_a_gateway_refusal_says_the_api_needs_signed_calls() -> None:
    recorder = Recorder(status=403, body={"message": "Forbidden"})
    with pytest.raises(ApiError) as caught:
        recorder.client().health()
    assert caught.value.status == 403 and caught.value.code is None
    assert "refused the call (Forbidden)" in str(caught.value) and "signed" in str(caught.value)


def test_no_credentials_is_an_api_error_that_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                 "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                 "AWS_WEB_IDENTITY_TOKEN_FILE"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/config")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    recorder = Recorder()
    with pytest.raises(ApiError, match=r"Cannot sign the call .*no AWS credentials found"):
        recorder.client(auth=IamAuth()).health()
    assert not recorder.requests
