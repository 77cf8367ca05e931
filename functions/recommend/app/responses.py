"""A JSON response without FastAPI's response-model pass, for hot routes whose output is built to the schema."""

from __future__ import annotations

import json
from typing import Any

from fastapi import Response


def json_response(payload: dict[str, Any], status_code: int = 200) -> Response:
    # allow_nan=False: a NaN would be invalid JSON; routes map non-finite scores before this.
    # "replace": requests are validated to be UTF-8 text, but a response must encode whatever reaches it.
    body = json.dumps(payload, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8", "replace")
    return Response(content=body, status_code=status_code, media_type="application/json")
