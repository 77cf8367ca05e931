"""The dashboard's only link to the recommend API, and the only module that knows its routes.

Every call has a timeout and either returns the parsed JSON body (shapes defined by
``functions/recommend/app/schemas/``) or raises one ``ApiError`` whose message can be
shown to a user as it is: connection refused, timeout, the API's own ``message`` for a
4xx, and a plain statement for a 5xx.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from sigv4 import SigningError

JSON = dict[str, Any]


class ApiError(Exception):
    """A failed API call; ``str(error)`` is fit to show to a user.

    Parameters
    ----------
    message
        What went wrong, in words a dashboard user understands.
    status
        The HTTP status, or None when no response arrived (refused, timeout, bad URL).
    code
        The API's machine-readable ``error`` code, when it sent one.
    """

    def __init__(self, message: str, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code


class ApiClient:
    """A small typed client of the recommend API.

    Parameters
    ----------
    base_url
        The API's base URL, e.g. ``http://127.0.0.1:8000`` or an API Gateway stage URL.
    timeout
        Seconds before any call is abandoned (connect, read, write and pool alike).
    auth
        Optional httpx auth flow applied to every call: ``sigv4.IamAuth`` for a stack whose routes
        require IAM authorization; None (the local default) sends no credentials.
    transport
        Optional httpx transport, for tests that must not open sockets.
    """

    def __init__(
        self,
        base_url: str,
        timeout: float = 5.0,
        auth: httpx.Auth | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        # A stage URL like https://x.execute-api/prod needs the trailing slash kept so
        # that relative routes resolve under the stage rather than replacing it.
        self._http = httpx.Client(base_url=self.base_url + "/", timeout=timeout, auth=auth, transport=transport)

    def close(self) -> None:
        self._http.close()

    def health(self) -> JSON:
        """``GET /health``: model version, counts and when it was loaded."""
        return self._request("GET", "health")

    def recommend(
        self,
        user_id: str | None = None,
        k: int = 10,
        exclude_seen: bool = True,
        recent_items: list[str] | None = None,
        include_categories: list[str] | None = None,
        exclude_categories: list[str] | None = None,
        diversity: float = 0.0,
        explain: bool = False,
    ) -> JSON:
        """``POST /recommend``: top-k for a known user, a session (fold-in), or neither (popular); with
        ``explain``, each item says ``because`` of which history items."""
        body: JSON = {"k": k, "exclude_seen": exclude_seen}
        if diversity:
            body["diversity"] = diversity
        if explain:
            body["explain"] = True
        optional = {
            "user_id": user_id,
            "recent_items": recent_items,
            "include_categories": include_categories,
            "exclude_categories": exclude_categories,
        }
        # Empty lists are left out: an empty include list would mean "no category at all".
        body.update({key: value for key, value in optional.items() if value})
        return self._request("POST", "recommend", json=body)

    def items(self, q: str | None = None, category: str | None = None, limit: int = 50, offset: int = 0) -> JSON:
        """``GET /items``: a page of the catalogue, filtered by title text and category."""
        return self._request("GET", "items", params=_params(q=q, category=category, limit=limit, offset=offset))

    def item(self, item_id: str) -> JSON:
        """``GET /items/{item_id}``: one item with its popularity."""
        return self._request("GET", f"items/{_segment(item_id)}")

    def similar(self, item_id: str, k: int = 10) -> JSON:
        """``GET /items/{item_id}/similar``: nearest items by cosine."""
        return self._request("GET", f"items/{_segment(item_id)}/similar", params={"k": k})

    def item_map(self, sample: int | None = None, ids: tuple[str, ...] = ()) -> JSON:
        """``GET /items/map``: the items' 2-D projection, sampled, plus the listed ``ids``."""
        return self._request("GET", "items/map", params=_params(sample=sample, ids=list(ids)))

    def categories(self) -> JSON:
        """``GET /categories``: every category with its item count."""
        return self._request("GET", "categories")

    def users(self, q: str | None = None, limit: int = 50, offset: int = 0) -> JSON:
        """``GET /users``: a page of known users, filtered by id text."""
        return self._request("GET", "users", params=_params(q=q, limit=limit, offset=offset))

    def user_history(self, user_id: str, limit: int = 20) -> JSON:
        """``GET /users/{user_id}``: the user's most recent interactions."""
        return self._request("GET", f"users/{_segment(user_id)}", params={"limit": limit})

    def post_events(self, events: list[JSON]) -> JSON:
        """``POST /events``: record interactions; the next recommendation takes them into account."""
        return self._request("POST", "events", json={"events": events})

    def experiment(self) -> JSON:
        """``GET /experiment``: the champion/challenger experiment with every look, or ``{"experiment": null}``."""
        return self._request("GET", "experiment")

    def _request(self, method: str, path: str, **kwargs: Any) -> JSON:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.ConnectError as exc:
            raise ApiError(f"Cannot reach the API at {self.base_url} ({_reason(exc)}). Is it running?") from exc
        except httpx.TimeoutException as exc:
            raise ApiError(f"The API at {self.base_url} did not answer within {self.timeout:g} s.") from exc
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise ApiError(f"Cannot call the API at {self.base_url!r}: {_reason(exc)}.") from exc
        except SigningError as exc:
            raise ApiError(f"Cannot sign the call to the API at {self.base_url}: {exc}.") from exc
        return _parse(response)


def _parse(response: httpx.Response) -> JSON:
    status = response.status_code
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.is_success:
        if not isinstance(body, dict):
            raise ApiError(f"The API answered {response.request.url.path} with something that is not JSON.", status)
        return body
    detail = body if isinstance(body, dict) else {}
    message = str(detail.get("message") or response.reason_phrase or "no details")
    code = detail.get("error")
    if status in (401, 403) and code is None:
        # The gateway's IAM authorizer refused the call before the API saw it (the API's own errors carry a code).
        raise ApiError(
            f"The API gateway refused the call ({message}): the deployed API requires requests signed with "
            "AWS credentials allowed to call it (execute-api:Invoke); configure the dashboard's IAM signing.",
            status,
        )
    if status == 503:
        raise ApiError(f"The API is not ready: {message}", status, code)
    if status >= 500:
        raise ApiError(f"The API failed (HTTP {status}): {message}", status, code)
    raise ApiError(message, status, code)


def _params(**values: object) -> dict[str, object]:
    # httpx would send None as an empty string, which the API reads as a filter.
    return {key: value for key, value in values.items() if value not in (None, "", [])}


def _segment(value: str) -> str:
    return quote(value, safe="")


def _reason(exc: Exception) -> str:
    return str(exc) or type(exc).__name__
