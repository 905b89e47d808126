"""How routes reach what `lifespan` created: settings, metrics, the predictor and the batcher.

A request that arrives before the model is ready (or after shutdown began) gets
`ModelNotReadyError` here, which becomes a 503, never an AttributeError 500.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from app.batching import MicroBatcher
from app.errors import ModelNotReadyError, UnsupportedMediaTypeError
from app.observability import Metrics
from app.settings import Settings
from model.predictor import Predictor

SERVICE_STATE_KEY = "service"


@dataclass
class Service:
    """The batcher and the model it serves; `ready` turns True after warm-up, False when draining."""

    batcher: MicroBatcher
    ready: bool = False

    @property
    def predictor(self) -> Predictor:
        """The model serving now: the batcher's, so a hot reload (`MicroBatcher.swap_predictor`) has one
        place to change it."""
        return self.batcher.predictor


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings  # set by the app factory; state is untyped
    return settings


async def get_metrics(request: Request) -> Metrics:
    metrics: Metrics = request.app.state.metrics
    return metrics


async def get_service(request: Request) -> Service:
    service: Service | None = getattr(request.state, SERVICE_STATE_KEY, None)
    if service is None:
        raise ModelNotReadyError("no model is loaded (the app's lifespan has not run)")
    if not service.ready:
        raise ModelNotReadyError("the model is warming up or the server is shutting down")
    return service


async def require_json_body(request: Request) -> None:
    """415 unless the body is declared as JSON (application/json or any application/*+json) and sent
    as it is: a compressed body (Content-Encoding gzip, br, ...) would otherwise be read as JSON text
    and refused for the wrong reason, or a plain one with the header accepted against its word."""
    codings = [
        coding.strip().lower() for value in request.headers.getlist("content-encoding") for coding in value.split(",")
    ]
    if any(coding not in ("", "identity") for coding in codings):  # every header, every listed coding
        encoding = ", ".join(request.headers.getlist("content-encoding"))
        message = f"Content-Encoding {encoding} is not supported; send the body uncompressed"
        raise UnsupportedMediaTypeError("Content-Encoding", message)
    content_type = request.headers.get("content-type")
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type == "application/json" or (media_type.startswith("application/") and media_type.endswith("+json")):
        return
    raise UnsupportedMediaTypeError(
        "Content-Type", f"Content-Type must be application/json; got {content_type or 'none'}"
    )
