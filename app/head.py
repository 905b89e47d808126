"""HEAD answered wherever GET is (RFC 9110 9.3.2: a general-purpose server supports both).

FastAPI's routes take the methods they are declared with, so `HEAD /healthz` was a 405 that probes
and monitors which use HEAD read as the service being down. The request goes through as a GET; the
server writes the GET's status and headers and leaves the body out, because its own copy of the
request still says HEAD (uvicorn does this for every HEAD request).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send


class HeadAsGetMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "HEAD":
            scope = {**scope, "method": "GET"}
        await self.app(scope, receive, send)
