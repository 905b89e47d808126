"""Request bodies read as RFC 8259 JSON: UTF-8 only, no duplicate keys, bounded numbers and nesting.

The standard library's decoder is lenient where a server should not be: it guesses UTF-16 and
UTF-32 from the bytes, lets a later duplicate key silently win, reads NaN and Infinity, and fails
on deep nesting or a 5,000-digit integer with an exception FastAPI answers as a bare 400. Here each
of those is refused with a `BodyDecodeError` that says what was wrong; `app.errors` answers it.
A route reads its body through `validated_body`, never FastAPI's own body parameter.
"""

from __future__ import annotations

import json
import math
from typing import Any, TypeVar

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

MAX_INTEGER_DIGITS = 20  # any integer field of the API fits in far fewer; int() itself stops at 4,300
MAX_FLOAT_CHARACTERS = 400  # a float64 needs 17 significant digits; 0.000...1 with 300 zeros is still in range
UTF8_BOM = b"\xef\xbb\xbf"
GZIP_MAGIC = b"\x1f\x8b"


class BodyDecodeError(StarletteHTTPException):
    """A body that is not RFC 8259 JSON the service accepts. An HTTPException, so FastAPI re-raises it
    from its body reading instead of turning it into a bare 400."""

    def __init__(self, status_code: int, message: str, error_type: str) -> None:
        super().__init__(status_code, message)
        self.error_type = error_type


def decode_json_body(body: bytes) -> Any:
    """The JSON value of `body`; raises BodyDecodeError (400 undecodable, 422 duplicate keys) or, for
    malformed JSON, json.JSONDecodeError (which FastAPI reports as `json_invalid`)."""
    if body.startswith(UTF8_BOM):
        raise BodyDecodeError(400, "the body starts with a byte order mark; JSON must be UTF-8 without one", "not_utf8")
    if body.startswith(GZIP_MAGIC):  # its header's NUL byte made it "UTF-16 or UTF-32"
        message = "the body is gzip data with no Content-Encoding saying so; send the JSON uncompressed"
        raise BodyDecodeError(400, message, "not_utf8")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        hint = " (it looks like UTF-16 or UTF-32)" if b"\x00" in body[:4] else ""
        message = f"the body is not UTF-8{hint}: byte {error.start} cannot be decoded; JSON must be UTF-8 (RFC 8259)"
        raise BodyDecodeError(400, message, "not_utf8") from None
    if "\x00" in text[:4]:  # UTF-16/32 without a byte order mark: NULs between the ASCII characters
        raise BodyDecodeError(400, "the body looks like UTF-16 or UTF-32; JSON must be UTF-8 (RFC 8259)", "not_utf8")
    try:
        return json.loads(
            text,
            object_pairs_hook=_object_without_duplicates,
            parse_int=_bounded_int,
            parse_float=_finite_float,
            parse_constant=_no_constant,
        )
    except RecursionError:
        raise BodyDecodeError(400, "the body is nested too deeply to decode", "json_too_deep") from None


def _object_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) == len(pairs):
        return result
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            raise BodyDecodeError(422, f"the key {key!r} appears more than once in one object", "duplicate_key")
        seen.add(key)
    raise AssertionError("unreachable: fewer keys than pairs means a duplicate")


def _bounded_int(digits: str) -> int:
    if len(digits.lstrip("-")) > MAX_INTEGER_DIGITS:
        message = f"an integer of {len(digits.lstrip('-'))} digits; at most {MAX_INTEGER_DIGITS} are accepted"
        raise BodyDecodeError(400, message, "number_too_large")
    return int(digits)


def _finite_float(text: str) -> float:
    if len(text) > MAX_FLOAT_CHARACTERS:  # as long integers are: float() would read 200,000 digits
        message = f"a number of {len(text)} characters; at most {MAX_FLOAT_CHARACTERS} are accepted"
        raise BodyDecodeError(400, message, "number_too_large")
    value = float(text)
    if not math.isfinite(value):
        raise BodyDecodeError(400, f"the number {text[:40]} is out of range", "number_too_large")
    return value


def _no_constant(name: str) -> float:
    raise BodyDecodeError(400, f"{name} is not JSON (RFC 8259 has no NaN or Infinity)", "json_invalid")


ModelT = TypeVar("ModelT", bound=BaseModel)


async def validated_body(request: Request, model: type[ModelT]) -> ModelT:
    """The body decoded by `decode_json_body` and validated by `model`, refused as FastAPI's own body
    parameter refuses (RequestValidationError with the same error types and `body` locations, 422).

    For the hot route: FastAPI's dependency and body-field machinery costs more per one-name request
    than reading and validating the body itself (docs/benchmarks.md, "Route body reading")."""
    raw = await request.body()
    try:
        payload = decode_json_body(raw) if raw else None
    except json.JSONDecodeError as error:
        problem = {"type": "json_invalid", "loc": ("body", error.pos), "msg": "JSON decode error", "input": {}}
        raise RequestValidationError([{**problem, "ctx": {"error": error.msg}}]) from None
    if payload is None:  # no body, or JSON null: what FastAPI calls a missing body
        raise RequestValidationError([{"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}])
    try:
        return model.model_validate(payload, from_attributes=True)  # as FastAPI validates a body field
    except ValidationError as error:
        problems = error.errors(include_url=False)
        raise RequestValidationError([{**problem, "loc": ("body", *problem["loc"])} for problem in problems]) from None
