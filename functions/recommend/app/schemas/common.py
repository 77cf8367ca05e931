"""Limits, text types and the error shape every request and response model shares."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

MAX_K = 100
MAX_IDS = 200  # bound on every other list of ids in a request
# Unix seconds up to 2100-01-01: larger values are almost always milliseconds, which would sort wrongly.
MAX_TIMESTAMP = 4_102_444_800
MAX_PAGE = 100
MAX_MAP_SAMPLE = 20_000
MAX_OFFSET = 10_000_000  # bound on paging offsets
MAX_TEXT = 200  # bound on query strings (q, category)
MAX_EVENTS = 500  # events per POST /events batch (Firehose's PutRecordBatch limit)
MAX_ID = 256  # user and item id length


def valid_unicode(value: str) -> str:
    """``value`` if UTF-8 can encode it; JSON's ``"\\udfff"`` decodes to a lone surrogate, which it cannot."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text (a lone UTF-16 surrogate is not)") from None
    return value


def json_integer(value: Any) -> Any:
    """Refuse what JSON Schema's ``integer`` refuses (strings, booleans); ``5.0`` is one, ``5.5`` is not."""
    if isinstance(value, str | bool):
        raise ValueError("must be a JSON integer")
    return value


Text = Annotated[str, AfterValidator(valid_unicode)]
"""A request string: any Unicode text, but never one a response could fail to encode."""


def trimmed(value: str) -> str:
    """``value`` if it has no leading or trailing whitespace: the training log trims ids, so " a" would be "a"."""
    if value != value.strip():
        raise ValueError("must not start or end with whitespace (training reads ids trimmed)")
    return value


LoggedId = Annotated[Text, AfterValidator(trimmed)]
"""An id that goes into the training log: the pipeline must read it back as the same id."""
# JSON integers in bounds. The bounds sit on the int itself, inside the BeforeValidator. Put on the field instead
# (``k: Annotated[int, BeforeValidator(...)] = Field(ge=1)``) they still validate, but pydantic hangs them on the
# wrapping validator and, for a nullable field, the spec shows ``"ge"``/``"le"``, which JSON Schema ignores
# (issue 20). strict=False: 4.0 is an integer in a strict model (json_integer still refuses strings and booleans).
TopK = Annotated[int, Field(ge=1, le=MAX_K, strict=False), BeforeValidator(json_integer)]
UnixSeconds = Annotated[int, Field(ge=0, le=MAX_TIMESTAMP, strict=False), BeforeValidator(json_integer)]
ItemId = str
RecommendationId = Annotated[str, Field(pattern=r"^[0-9a-f]{32}$", description="32 lowercase hex digits.")]


@dataclass(frozen=True, eq=False)  # hashed by identity: Annotated metadata in a union must hash
class JsonSchemaExtra:
    """``Annotated`` metadata adding keywords to a type's own JSON Schema (not the field's, which a union wraps)."""

    keywords: dict[str, Any]

    def __get_pydantic_json_schema__(self, core_schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        schema = handler(core_schema)
        schema.update(self.keywords)
        return schema


class StrictModel(BaseModel):
    # strict: JSON types as documented; "5" is not an integer and 0 is not a boolean.
    model_config = ConfigDict(extra="forbid", strict=True)


class ErrorResponse(BaseModel):
    """Every error: ``{"error": code, "message": ...}``."""

    error: str
    message: str
    details: list[dict[str, object]] | None = None


ERROR_DESCRIPTIONS = {
    400: "Bad request (`bad_request`; the message says which). A JSON body that cannot be parsed: bytes that are not "
    "valid UTF-8, arrays or objects nested too deeply (a little under 1,000 levels is the limit), or a number with "
    "more than 4,300 digits (a JSON syntax error is a 422 instead). A CORS preflight from an origin that is not "
    "allowed. Or, from uvicorn itself before the app runs, an HTTP request it cannot parse, such as a request line "
    "over its size limit (text/plain).",
    404: "Unknown id or route",
    413: "Request body larger than REC_MAX_BODY_BYTES",
    422: "Invalid parameters or body",
    503: "No model can be served yet (nothing published, loading, or the store unreachable); see Retry-After",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries documenting ``statuses`` with the shared :class:`ErrorResponse` shape."""
    responses: dict[int | str, dict[str, Any]] = {
        status: {"model": ErrorResponse, "description": ERROR_DESCRIPTIONS[status]} for status in statuses
    }
    if 400 in responses:  # the server's own answer to unparseable HTTP: the one error the app cannot shape
        responses[400]["content"] = {"text/plain": {"schema": {"type": "string"}}}
    return responses


COMMON_ERRORS = error_responses(400, 413, 422, 503)  # any route can answer these
