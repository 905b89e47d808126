"""The one place where exceptions become HTTP answers: status code plus an `ErrorResponse` body.

Every refusal names the field (or `body`, or the header) and says what was wrong, so a client never
has to guess, and bad input never turns into a 500.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import Response

from app.batching import BatcherClosedError, ClientGoneError, QueueFullError
from app.json_body import BodyDecodeError
from app.observability import CLIENT_GONE_STATUS
from app.schemas import ErrorResponse, FieldError
from app.validation import FieldProblem, InvalidRequestError
from model.encoder import NameEncodingError

RETRY_AFTER_SECONDS = "1"
MAX_LISTED_PROBLEMS = 100  # a 1000-name batch has at most this many wrong names in practice; then a count
LONE_SURROGATE_MESSAGE = (
    "not text: it holds a lone UTF-16 surrogate (an escape from \\ud800 to \\udfff without its pair), which "
    "is no Unicode character; a character outside the Basic Multilingual Plane is escaped as a surrogate pair"
)


class UnsupportedMediaTypeError(Exception):
    """A body sent with a Content-Type other than JSON, or compressed (a Content-Encoding other than
    identity): both are 415 (RFC 9110 15.5.16); the header that was wrong is the field."""

    def __init__(self, header: str, message: str) -> None:
        super().__init__(message)
        self.header = header


class BodyTooLargeError(StarletteHTTPException):
    """A body over the size limit. An HTTPException so FastAPI re-raises it while reading the body."""

    def __init__(self, max_body_bytes: int, received: str) -> None:
        super().__init__(413, f"request body is {received}; at most {max_body_bytes} bytes are accepted")


class ModelNotReadyError(RuntimeError):
    """A request arrived before the model was loaded and warmed up, or after shutdown began."""


def error_response(
    status_code: int,
    error: str,
    message: str,
    problems: Sequence[FieldProblem] = (),
    headers: Mapping[str, str] | None = None,
    total: int | None = None,
) -> JSONResponse:
    """The error answer; at most MAX_LISTED_PROBLEMS problems are listed, then a count of the rest of
    `total` (default: as many as given): 90,000 unknown keys made a 7.8 MB answer to a 1 MB body."""
    total = len(problems) if total is None else total
    listed = list(problems[:MAX_LISTED_PROBLEMS])
    if total > len(listed):
        more = total - len(listed)
        listed.append(FieldProblem("body", f"and {more} more problems of the same request", "too_many_problems"))
    body = ErrorResponse(
        error=error,
        message=message,
        errors=[FieldError(field=problem.field, message=problem.message, type=problem.type) for problem in listed],
    )
    return JSONResponse(body.model_dump(), status_code=status_code, headers=headers)


def _field_of(loc: Sequence[Any]) -> str:
    """('body', 'names', 2) -> 'names[2]'; the body itself -> 'body'."""
    parts = list(loc[1:] if loc and loc[0] == "body" else loc)
    field = ""
    for part in parts:
        field += f"[{part}]" if isinstance(part, int) else (f".{part}" if field else str(part))
    return field or "body"


def _problem_from_pydantic(error: dict[str, Any]) -> FieldProblem:
    if error["type"] == "json_invalid":
        position = error["loc"][-1] if len(error["loc"]) > 1 else "?"
        detail = error.get("ctx", {}).get("error", "invalid JSON").removesuffix(" at")  # "Invalid control character at"
        return FieldProblem("body", f"malformed JSON: {detail} (at character {position})", "json_invalid")
    if error["type"] == "missing" and tuple(error["loc"]) == ("body",):
        return FieldProblem("body", "a JSON object body is required", "missing")
    if error["type"] == "string_unicode":  # what pydantic says of a lone surrogate such as "\ud800"
        return FieldProblem(_field_of(error["loc"]), LONE_SURROGATE_MESSAGE, error["type"])
    return FieldProblem(_field_of(error["loc"]), error["msg"], error["type"])


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    # only the listed ones are described; error_response counts the rest
    problems = [_problem_from_pydantic(error) for error in errors[:MAX_LISTED_PROBLEMS]]
    return error_response(422, "invalid_request", "the request is not valid; see errors", problems, total=len(errors))


async def _invalid_request(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, InvalidRequestError)
    return error_response(422, "invalid_request", "the request is not valid; see errors", exc.problems)


async def _unencodable_name(request: Request, exc: Exception) -> JSONResponse:
    # Names are checked before batching; this is the safety net if the model still refuses one.
    problems = [FieldProblem("names", str(exc), "unreadable_name")]
    return error_response(422, "invalid_request", "the request is not valid; see errors", problems)


async def _unsupported_media_type(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, UnsupportedMediaTypeError)
    problems = [FieldProblem(exc.header, str(exc), "unsupported_media_type")]
    return error_response(415, "unsupported_media_type", str(exc), problems)


def overloaded_response(queue_size: int, retry_after_s: int) -> JSONResponse:
    """503 for a request the full queue cannot take (app.shedding, or the batcher's own refusal)."""
    message = f"{queue_size} requests are already waiting for the model; retry after {retry_after_s} s"
    return error_response(
        503,
        "overloaded",
        message,
        [FieldProblem("request", message, "overloaded")],
        headers={"Retry-After": str(retry_after_s)},
    )


async def _queue_full(request: Request, exc: Exception) -> JSONResponse:
    service = getattr(request.state, "service", None)  # app.dependencies.SERVICE_STATE_KEY
    if service is None:
        return error_response(503, "overloaded", str(exc), headers={"Retry-After": RETRY_AFTER_SECONDS})
    return overloaded_response(service.batcher.queue_size, service.batcher.retry_after_s())


async def _not_ready(request: Request, exc: Exception) -> JSONResponse:
    return error_response(
        503, "not_ready", f"the model is not ready: {exc}", headers={"Retry-After": RETRY_AFTER_SECONDS}
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if isinstance(exc, BodyTooLargeError):
        return error_response(413, "body_too_large", exc.detail, [FieldProblem("body", exc.detail, "body_too_large")])
    if isinstance(exc, BodyDecodeError):
        error = "invalid_request" if exc.status_code == 422 else "undecodable_body"
        return error_response(exc.status_code, error, exc.detail, [FieldProblem("body", exc.detail, exc.error_type)])
    if exc.status_code == 400:  # FastAPI's own "error parsing the body": never a refusal without a reason
        return error_response(
            400, "undecodable_body", str(exc.detail), [FieldProblem("body", str(exc.detail), "body_unreadable")]
        )
    error = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return error_response(exc.status_code, error, str(exc.detail), headers=exc.headers)


async def _client_gone(request: Request, exc: Exception) -> Response:
    # The client went away (or was closed for missing the request deadline) before its body was in, or
    # before its explained request was through: no one can read an answer, and it is no server error.
    # Logged and counted as 499.
    return Response(status_code=CLIENT_GONE_STATUS)


def install_error_handlers(app: FastAPI) -> None:
    """Register the mapping: exception type -> status code and ErrorResponse body."""
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(InvalidRequestError, _invalid_request)
    app.add_exception_handler(NameEncodingError, _unencodable_name)
    app.add_exception_handler(UnsupportedMediaTypeError, _unsupported_media_type)
    app.add_exception_handler(QueueFullError, _queue_full)
    app.add_exception_handler(BatcherClosedError, _not_ready)
    app.add_exception_handler(ModelNotReadyError, _not_ready)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(ClientDisconnect, _client_gone)
    app.add_exception_handler(ClientGoneError, _client_gone)  # gone while a request ran in chunks
