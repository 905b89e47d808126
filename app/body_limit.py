"""Refuses request bodies over the size limit before they are read into memory.

A declared Content-Length over the limit fails on the first read, before any byte of the body is
taken; a chunked body fails as soon as the bytes received pass the limit. Either way the route sees
`BodyTooLargeError`, which `app.errors` answers with 413.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import BodyTooLargeError


class BodySizeLimitMiddleware:
    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        limit = self.max_body_bytes
        received = 0

        async def receive_within_limit() -> Message:
            nonlocal received
            if declared is not None and declared.isdigit() and int(declared) > limit:
                raise BodyTooLargeError(limit, f"{declared} bytes (Content-Length)")
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLargeError(limit, f"more than {limit} bytes")
            return message

        await self.app(scope, receive_within_limit, send)
