"""Connection limits uvicorn lacks: a deadline for the request (head and body), head size and count caps, and a
cap on open connections that closes the longest-idle one first; and half-closed clients answered.

A client that half-closes after sending (shutdown(SHUT_WR)) still reads: it gets its answers, and
the connection closes after the last one. A client that is really gone marks every request it had
in flight as such (CLIENT_GONE_SCOPE_KEY), so the request log counts it as 499, not as a 200 no one
received, and a pipelined request never writes to the closed socket.

A subclass of uvicorn's httptools protocol, because these are decided while the head is still
arriving, before any ASGI code runs: a middleware would only see a request once its whole head
was buffered, and idle sockets never reach it at all. uvicorn's own knobs (keep-alive timeout,
graceful-shutdown timeout) are passed by `app.server`; everything here reads `ConnectionLimits`,
which `app.server` hangs on the uvicorn config (the one object each protocol instance receives).
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import orjson
from uvicorn._types import ASGI3Application
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle
from uvicorn.server import ServerState

from app.observability import CLIENT_GONE_SCOPE_KEY, READ_TIMED_OUT_SCOPE_KEY

logger = logging.getLogger(__name__)

# On SIGTERM uvicorn stops accepting, then at once closes idle keep-alive connections (a request the
# client sent in that instant meets a reset) and answers the rest with Connection: close (their
# clients reconnect, and with several workers land in the backlog of a worker about to close its
# copy of the socket: reset). So existing connections are served as usual for SHUTDOWN_DRAIN_S,
# long enough for every worker to stop accepting, so reconnects are refused, not reset; then each is
# answered with Connection: close, and one still idle SHUTDOWN_IDLE_GRACE_S later is closed.
SHUTDOWN_DRAIN_S = 1.0
SHUTDOWN_IDLE_GRACE_S = 0.5
LIMITS_ATTRIBUTE = "nameorigin_connection_limits"  # where app.server puts ConnectionLimits on the Config
IDLE_REGISTRY_ATTRIBUTE = "nameorigin_idle_connections"  # per server: idle connections, oldest first


@dataclass(frozen=True)
class ConnectionLimits:
    """Values from Settings (their one home); see the README's settings table."""

    max_connections: int
    max_header_bytes: int
    max_header_count: int
    timeout_request_read_s: float


def refusal(status: int, reason: str, error: str, field: str, message: str, extra_headers: bytes = b"") -> bytes:
    """A complete HTTP/1.1 answer with an ErrorResponse body (the reason in `errors`, as everywhere)
    that closes the connection."""
    body = orjson.dumps(
        {"error": error, "message": message, "errors": [{"field": field, "message": message, "type": error}]}
    )
    return (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n".encode()
        + extra_headers
        + b"connection: close\r\n\r\n"
        + body
    )


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the limits in `ConnectionLimits`."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.limits: ConnectionLimits = getattr(config, LIMITS_ATTRIBUTE)
        if not hasattr(server_state, IDLE_REGISTRY_ATTRIBUTE):
            setattr(server_state, IDLE_REGISTRY_ATTRIBUTE, OrderedDict())
        self.idle: OrderedDict[LimitedHttpToolsProtocol, None] = getattr(server_state, IDLE_REGISTRY_ATTRIBUTE)
        self.read_timer: asyncio.TimerHandle | None = None
        self.reading_head = True
        self.head_bytes = 0
        self.head_count = 0
        self.head_refusal: bytes | None = None
        # The request whose app is running; uvicorn's `cycle` is the newest parsed, maybe a pipelined one.
        self.running: RequestResponseCycle | None = None
        self.read_closed = False
        self.shutting_down = False
        # A request answered before its body was all in (413, 415, a shed 503): the parser reads the
        # rest as that body, so the next head is only counted once it has (it was counted as head bytes,
        # and the next request on the connection refused with 431).
        self.body_pending = False
        self.idle_after_body = False

    # A connection is idle from its start, and after each response, until a request head is complete:
    # a slowloris client that never finishes its head stays idle, so it is the first to be closed.
    def _become_idle(self) -> None:
        self.idle[self] = None
        self.idle.move_to_end(self)
        self.reading_head, self.head_bytes, self.head_count = True, 0, 0
        if self.read_timer is not None:
            self.read_timer.cancel()
        self.read_timer = self.loop.call_later(self.limits.timeout_request_read_s, self._read_timed_out)

    def _become_busy(self) -> None:
        self.idle.pop(self, None)
        self.reading_head = False
        self._cancel_read_timer()

    def _cancel_read_timer(self) -> None:
        if self.read_timer is not None:
            self.read_timer.cancel()
            self.read_timer = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._become_idle()
        if len(self.connections) <= self.limits.max_connections:
            return
        oldest = next(iter(self.idle))
        if oldest is not self:
            logger.debug("connection cap reached: closing the longest-idle connection")
            oldest._become_busy()  # out of the registry now: it is only counted until its close completes
            oldest.transport.close()
            return
        logger.warning("connection cap of %d reached and none idle: refusing a connection", self.limits.max_connections)
        self._become_busy()
        self.transport.write(
            refusal(
                503,
                "Service Unavailable",
                "overloaded",
                "connection",
                "too many open connections",
                b"retry-after: 1\r\n",
            )
        )
        self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._become_busy()
        for cycle in (self.running, *(queued for queued, _ in self.pipeline)):
            if cycle is not None and not cycle.response_complete:
                cycle.disconnected = True  # uvicorn marks only the newest parsed request
                cycle.scope[CLIENT_GONE_SCOPE_KEY] = True  # type: ignore[literal-required]
                cycle.message_event.set()
        super().connection_lost(exc)

    def eof_received(self) -> bool | None:  # type: ignore[override]  # asyncio.Protocol allows True; uvicorn narrows it
        """The client half-closed: keep writing while it has requests to answer, then close."""
        self.read_closed = True
        if self.pipeline or (self.running is not None and not self.running.response_complete):
            return True  # keep the transport open for the answers
        return None  # nothing to answer: asyncio closes the connection

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: ASGI3Application) -> None:
        self.running = cycle
        # Each request's own, installed as its app starts (a pipelined one when its turn comes): one
        # write per answer, see HeadWithBody. An upgrade request never gets here and keeps uvicorn's path.
        cycle.transport = HeadWithBody(self.transport)
        super()._start_asgi_task(cycle, app)

    def _read_timed_out(self) -> None:
        self.read_timer = None
        if self.transport.is_closing():
            return
        # A client that started a request hears why; one that never did, or was already answered (a
        # shed request whose body is still trickling in), is just closed.
        partial_head = self.reading_head and self.head_bytes > 0
        waiting_for_body = not self.reading_head and self.cycle is not None and not self.cycle.response_started
        if waiting_for_body:  # its app is waiting for the body: the log line says 408, what was sent
            self.cycle.scope[READ_TIMED_OUT_SCOPE_KEY] = True  # type: ignore[literal-required]
        if partial_head or waiting_for_body:
            message = f"the request was not complete within {self.limits.timeout_request_read_s:g} s"
            self.transport.write(refusal(408, "Request Timeout", "request_timeout", "request", message))
        self.transport.close()

    def data_received(self, data: bytes) -> None:
        if self.reading_head:
            self.head_bytes += len(data)
        super().data_received(data)
        # A head still arriving is refused as soon as it outgrows the cap, not once it is complete.
        if self.reading_head and self.head_bytes > self.limits.max_header_bytes and not self.transport.is_closing():
            self._refuse_head(f"the request head is over {self.limits.max_header_bytes} bytes")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if not self.reading_head:  # a pipelined request after a complete one
            self.reading_head, self.head_bytes, self.head_count = True, 0, 0

    def on_header(self, name: bytes, value: bytes) -> None:
        self.head_count += 1
        if self.head_count > self.limits.max_header_count:
            self.head_refusal = self._head_too_large(f"more than {self.limits.max_header_count} header fields")
            raise HeadTooLargeError  # stops the parser; uvicorn answers through send_400_response below
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
        if size > self.limits.max_header_bytes:
            self.head_refusal = self._head_too_large(f"the request head is over {self.limits.max_header_bytes} bytes")
            raise HeadTooLargeError
        # No longer idle (never evicted), but the deadline runs on until the body is in: a slow body
        # holds a connection like a slow head.
        self.idle.pop(self, None)
        self.reading_head = False
        self.body_pending = True
        previous = self.cycle
        super().on_headers_complete()
        if self.shutting_down and self.cycle is not previous:  # no new cycle: an upgrade request
            self.cycle.keep_alive = False  # answered, then closed: the server is draining

    def on_message_complete(self) -> None:
        self._cancel_read_timer()
        self.body_pending = False
        super().on_message_complete()
        if self.idle_after_body:
            self.idle_after_body = False
            if not self.transport.is_closing():
                self._become_idle()

    def on_response_complete(self) -> None:
        if self.running is not None and isinstance(self.running.transport, HeadWithBody):
            self.running.transport.flush()  # a response with no body write (HEAD) ends here
        pipelined = bool(self.pipeline)  # uvicorn starts the next pipelined request, if any
        super().on_response_complete()
        if pipelined or self.transport.is_closing():
            return
        if self.read_closed:  # a half-closed client has had its last answer
            self.transport.close()
            return
        if self.body_pending:  # idle once the rest of its body has been read (and dropped by uvicorn)
            self.idle_after_body = True
            return
        self._become_idle()

    def shutdown(self) -> None:
        """Drain (see SHUTDOWN_DRAIN_S): keep serving for a moment, then close once answered."""
        self.loop.call_later(SHUTDOWN_DRAIN_S, self._close_when_answered)

    def _close_when_answered(self) -> None:
        if self.transport.is_closing():
            return
        self.shutting_down = True
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.keep_alive = False
            return
        self.loop.call_later(SHUTDOWN_IDLE_GRACE_S, self._close_if_idle)

    def _close_if_idle(self) -> None:
        if not self.transport.is_closing() and (self.cycle is None or self.cycle.response_complete):
            self.transport.close()

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to what its parser cannot read (a bad request line, a bad chunk size, two
        Content-Lengths) was text/plain; every other refusal is an ErrorResponse, so this one is too."""
        if self.head_refusal is None:
            message = f"the request is not valid HTTP/1.1 ({msg.rstrip('.')})"
            self.transport.write(refusal(400, "Bad Request", "malformed_http", "request", message))
            self.transport.close()
            return
        self.transport.write(self.head_refusal)
        self.transport.close()

    def _refuse_head(self, message: str) -> None:
        self.transport.write(self._head_too_large(message))
        self.transport.close()

    def _head_too_large(self, message: str) -> bytes:
        logger.warning("431: %s", message)
        return refusal(431, "Request Header Fields Too Large", "headers_too_large", "headers", message)


class HeadTooLargeError(Exception):
    """Raised inside a parser callback to stop reading a head that breaks a limit."""


CONTINUE_LINE = b"HTTP/1.1 100 Continue\r\n\r\n"  # the interim answer uvicorn writes before a body is read


class HeadWithBody(asyncio.Transport):
    """The transport one response is written through: its head goes out with the first body bytes.

    uvicorn writes a response's status line and headers, then its body, as two writes: two send(2)
    calls per answer, the largest single line of a /ping in the profile. Held back until the body
    comes, the head leaves in the same write (one call: `writelines`, a writev under uvloop;
    figures in docs/benchmarks.md, "The HTTP path"). The head is never held longer than its
    response: what has no body write (HEAD, an error after the head) goes out at the response's end
    or at close, and a head whose connection is already gone is dropped. Only `write`, `close` and
    `is_closing` are used by uvicorn's response cycle; the rest stays on the connection's own
    transport.

    The price: an app that sends a head and then waits (a stream whose first chunk is slow, a route
    that reads its body after answering) delays its head until the first body bytes. Every route
    and middleware here sends head and body back to back.
    """

    def __init__(self, transport: asyncio.Transport) -> None:
        super().__init__()
        self._transport = transport
        self._head: bytes | None = None
        self._head_seen = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        head = self._head
        if head is not None:
            self._head = None
            self._transport.writelines((head, data))
        elif self._head_seen or data == CONTINUE_LINE:
            self._transport.write(data)
        else:
            self._head_seen = True
            self._head = bytes(data)

    def flush(self) -> None:
        """Write a head still held (a response that ends without a body write)."""
        if self._head is not None:
            head, self._head = self._head, None
            if not self._transport.is_closing():  # uvloop refuses writes to a closed connection
                self._transport.write(head)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()
