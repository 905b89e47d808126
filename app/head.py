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
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return
        as_get = {**scope, "method": "GET"}  # a copy: the server's own still says HEAD
        try:
            await self.app(as_get, receive, send)
        finally:
            if "route" in as_get:  # the route matched, for the request log and metrics outside
                scope["route"] = as_get["route"]
