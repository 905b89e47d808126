"""Load shedding: while the batcher's queue is full, /classify waits a moment for a place
(`queue_wait_ms`), then is refused before its body is read.

A request the queue cannot take would otherwise be read, decoded and validated first, and that work
is what starves the model under a flood of retries; refused here it costs a header check. The
answer is the same 503 `overloaded` as the batcher's own (which still catches the race where the
queue fills between this check and the put), with a Retry-After drawn to spread the retries. The
short wait comes first because a client that retries the instant it is refused would spin the event
loop with refusals and take the CPU the model needs to drain the queue; parked, it costs nothing.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from app.dependencies import SERVICE_STATE_KEY, Service
from app.errors import overloaded_response

SHED_PATH = "/classify"


class LoadSheddingMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == SHED_PATH and scope["method"] == "POST":
            service: Service | None = scope.get("state", {}).get(SERVICE_STATE_KEY)
            if service is not None and service.batcher.queue_full and not await service.batcher.wait_for_room():
                response = overloaded_response(service.batcher.queue_size, service.batcher.retry_after_s())
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
