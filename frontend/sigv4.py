"""SigV4 signing of the dashboard's API calls, for a stack whose routes require IAM authorization.

The signature is botocore's own (``botocore.auth.SigV4Auth``, service ``execute-api``) over what
httpx is about to send: the method, the URL exactly as it goes on the wire, the ``host`` and
``content-type`` headers and the body. Credentials come from botocore's standard chain
(environment, shared config and SSO, container or instance role), resolved on the first call.
botocore is imported only when signing is configured, so a dashboard with ``REC_API_AUTH=none``
(the local default) runs without it.
"""

from __future__ import annotations

import re
from collections.abc import Generator
from typing import Any
from urllib.parse import parse_qsl, quote

import httpx

SERVICE = "execute-api"
# https://<api-id>.execute-api.<region>.amazonaws.com[.cn]/<stage>: the default endpoint of an HTTP API.
_REGION_IN_HOST = re.compile(r"\.execute-api\.([a-z]{2}(?:-[a-z]+)+-\d+)\.amazonaws\.com(?:\.cn)?$")
# Headers whose values must not change after signing; httpx adds others (accept, user-agent) unsigned.
_SIGNED_HEADERS = ("host", "content-type")


class SigningError(Exception):
    """A call that cannot be signed: no credentials, or no region to sign for."""


def region_from_host(host: str) -> str | None:
    """The region named by an ``execute-api`` host, or None for any other host (a custom domain)."""
    match = _REGION_IN_HOST.search(host.lower())
    return match.group(1) if match else None


class IamAuth(httpx.Auth):
    """An httpx auth flow that signs each request with SigV4 for API Gateway's IAM authorization.

    Parameters
    ----------
    region
        Region to sign for when the request's host does not name one (``AWS_REGION``); a host
        like ``<id>.execute-api.eu-west-1.amazonaws.com`` always wins. Last fallback: botocore's
        configured region (``AWS_DEFAULT_REGION`` or the profile).
    credentials
        botocore ``Credentials``; None resolves them through the standard chain on first use.
    """

    requires_request_body = True

    def __init__(self, region: str | None = None, credentials: Any | None = None) -> None:
        self.region = region
        self._credentials = credentials
        self._session: Any | None = None

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        self.sign(request)
        yield request

    def sign(self, request: httpx.Request) -> None:
        """Add ``Authorization``, ``X-Amz-Date`` (and ``X-Amz-Security-Token``) to ``request`` in place."""
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        # httpx writes spaces in a query as "+", which SigV4 would sign as a literal plus while the
        # gateway reads a space: send the query in the strict RFC 3986 form that both sides agree on.
        request.url = request.url.copy_with(query=_rfc3986_query(request.url.query) or None)
        headers = {name: request.headers[name] for name in _SIGNED_HEADERS if name in request.headers}
        unsigned = AWSRequest(method=request.method, url=str(request.url), data=request.content, headers=headers)
        credentials = self._resolve_credentials().get_frozen_credentials()
        SigV4Auth(credentials, SERVICE, self._region_for(request.url.host)).add_auth(unsigned)
        for name in ("Authorization", "X-Amz-Date", "X-Amz-Security-Token"):
            if name in unsigned.headers:
                request.headers[name] = unsigned.headers[name]

    def _region_for(self, host: str) -> str:
        region = region_from_host(host) or self.region or self._botocore_session().get_config_variable("region")
        if not region:
            raise SigningError(f"no AWS region to sign for: {host} names none; set AWS_REGION (or AWS_DEFAULT_REGION)")
        return str(region)

    def _resolve_credentials(self) -> Any:
        if self._credentials is None:
            self._credentials = self._botocore_session().get_credentials()
            if self._credentials is None:
                raise SigningError(
                    "no AWS credentials found (environment, shared config or SSO, container or instance role)"
                )
        return self._credentials

    def _botocore_session(self) -> Any:
        if self._session is None:
            import botocore.session

            self._session = botocore.session.Session()
        return self._session


def _rfc3986_query(query: bytes) -> bytes:
    pairs = parse_qsl(query.decode("ascii"), keep_blank_values=True)
    return "&".join(f"{quote(key, safe='-_.~')}={quote(value, safe='-_.~')}" for key, value in pairs).encode()
