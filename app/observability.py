"""Logs and metrics: JSON log lines, one per request, and the Prometheus metrics behind /metrics.

Names are personal data: the request line carries how many names a request held, and the names
themselves only when logging is at DEBUG.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, cast

import orjson
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
    multiprocess,
)
from starlette.requests import Request
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger(__name__)

NAMES_SCOPE_KEY = "nameorigin.names"
# Set by app.connections when the client went away before its answer was written; such a request is
# logged and counted with nginx's 499 "client closed request", never as the status nobody received.
CLIENT_GONE_SCOPE_KEY = "nameorigin.client_gone"
CLIENT_GONE_STATUS = 499
# A request whose body did not come within the read deadline: the server answered 408 and closed, so
# the client did not leave of its own accord (it was counted as 499).
READ_TIMED_OUT_SCOPE_KEY = "nameorigin.read_timed_out"
READ_TIMED_OUT_STATUS = 408
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
PROCESS_GAUGES = {  # process_* figures from prometheus_client's ProcessCollector, per worker in multiprocess mode
    "resident_memory_bytes": "Resident memory of the worker",
    "cpu_seconds_total": "CPU seconds the worker has used",
    "open_fds": "Open file descriptors of the worker",
}
PROCESS_COLLECTOR = ProcessCollector(registry=None)  # this process's memory, CPU and open files
WORKER_GAUGE_PERIOD_S = 5.0


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, plus the record's `fields` extra.

    It writes a line for every request, so it is written for speed: orjson, and the timestamp's date
    and time of day formatted once per second (docs/benchmarks.md, "The HTTP path"). What orjson
    refuses (a lone surrogate in a name, an integer over 64 bits) is written by the json module.
    """

    def __init__(self) -> None:
        super().__init__()
        self._second = -1
        self._second_text = ""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": self.timestamp(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        payload.update(getattr(record, "fields", {}))
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        try:
            return orjson.dumps(payload, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
        except orjson.JSONEncodeError:
            return json.dumps(payload, ensure_ascii=False, default=str)

    def timestamp(self, created: float) -> str:
        """`created` in ISO 8601, UTC, to the millisecond: what `datetime.isoformat(timespec=
        "milliseconds")` writes, with datetime's own rounding (to the microsecond, half to even)."""
        fraction, whole = math.modf(created)
        microseconds = round(fraction * 1_000_000)
        if microseconds < 0:  # before 1970: modf's parts are both negative
            whole, microseconds = whole - 1, microseconds + 1_000_000
        if microseconds >= 1_000_000:
            whole, microseconds = whole + 1, microseconds - 1_000_000
        second = int(whole)
        if second != self._second:
            self._second_text = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
            self._second = second
        return f"{self._second_text}.{microseconds // 1000:03d}+00:00"


def configure_logging(level: str) -> None:
    """Send every log record to stderr as JSON at `level`; calling it again only changes the level.

    The JSON line holds no caller, thread or process, so records skip looking them up (the logging
    HOWTO's "Optimization" switches): a record is made for every request's line.
    """
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    root = logging.getLogger()
    root.setLevel(level)
    if not any(getattr(handler, "nameorigin_json", False) for handler in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        handler.nameorigin_json = True  # type: ignore[attr-defined]
        root.addHandler(handler)


def record_names(request: Request, name_batch: list[str]) -> None:
    """Tell the request log and metrics which names this request carried."""
    request.scope[NAMES_SCOPE_KEY] = name_batch


MULTIPROCESS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"  # prometheus_client's own switch (Settings.metrics_dir)


class Metrics:
    """The service's Prometheus metrics, in a registry of its own so two apps never collide.

    With one worker the registry is scraped directly, with the process's own memory, CPU and open
    files. With several (`multiprocess`: Settings.metrics_dir is set), each worker writes its values
    to the shared folder and a scrape reads them all: counters and histograms are summed over workers, live gauges
    summed (or the minimum, for readiness) over the workers alive, and process figures come per
    worker (a `pid` label).
    """

    def __init__(self, multiprocess: bool = False) -> None:
        self.registry = CollectorRegistry()
        self.multiprocess = multiprocess
        self.requests = Counter(
            "nameorigin_http_requests", "HTTP requests answered", ["method", "path", "status"], registry=self.registry
        )
        self.in_progress = Gauge(
            "nameorigin_http_requests_in_progress",
            "HTTP requests received and not yet answered",
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self.latency = Histogram(
            "nameorigin_http_request_duration_seconds",
            "Time from request to last response byte",
            ["method", "path"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        # A refused reload is otherwise only a log line: the old model keeps serving and /readyz stays 200.
        self.reloads = Counter(
            "nameorigin_reloads",
            "Hot reloads of the checkpoint: swapped (a new model serves), unchanged (the same model), refused",
            ["outcome"],
            registry=self.registry,
        )
        self.names_classified = Counter(
            "nameorigin_names_classified", "Names run through the model", registry=self.registry
        )
        self.request_names = Histogram(
            "nameorigin_request_names",
            "Names per answered /classify request",
            buckets=SIZE_BUCKETS,
            registry=self.registry,
        )
        self.batch_names = Histogram(
            "nameorigin_batch_names", "Names per model call (micro-batch)", buckets=SIZE_BUCKETS, registry=self.registry
        )
        self.batch_requests = Histogram(
            "nameorigin_batch_requests",
            "Requests coalesced into one model call",
            buckets=SIZE_BUCKETS,
            registry=self.registry,
        )
        self.model_latency = Histogram(
            "nameorigin_model_call_duration_seconds",
            "Time per model call (micro-batch), on the event loop or the model thread",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "nameorigin_queue_depth",
            "Requests waiting for the model",
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self.ready = Gauge(
            "nameorigin_ready",
            "1 once the model is loaded and warmed up",
            registry=self.registry,
            multiprocess_mode="livemin",
        )
        # A gauge of value 1 rather than an Info metric: Info cannot be shared across worker processes.
        self.model = Gauge(
            "nameorigin_model_info",
            "The model being served",
            ["id", "architecture", "device"],
            registry=self.registry,
            multiprocess_mode="max",
        )
        self._queue_depth_source: Callable[[], float] | None = None
        if self.multiprocess:
            self._process = {
                name: Gauge(f"nameorigin_worker_{name}", help_text, registry=self.registry, multiprocess_mode="liveall")
                for name, help_text in PROCESS_GAUGES.items()
            }
        else:
            self.registry.register(PROCESS_COLLECTOR)  # the one reader of /proc/self, in every app's registry

    def observe_reload(self, outcome: str) -> None:
        """One reload attempt's outcome (app.reloading.RELOAD_OUTCOMES)."""
        self.reloads.labels(outcome).inc()

    def set_model(self, model_id: str, architecture: str, device: str) -> None:
        self.model.clear()  # after a hot reload only the new model is being served
        self.model.labels(model_id, architecture, device).set(1)

    def observe_batch(self, num_requests: int, num_names: int, seconds: float) -> None:
        self.model_latency.observe(seconds)
        self.batch_requests.observe(num_requests)
        self.batch_names.observe(num_names)
        self.names_classified.inc(num_names)

    def track_queue_depth(self, depth: Callable[[], float]) -> None:
        if self.multiprocess:
            self._queue_depth_source = depth  # read at each of this worker's scrapes and batches
        else:
            self.queue_depth.set_function(depth)

    def render(self) -> bytes:
        if not self.multiprocess:
            return generate_latest(self.registry)
        self.update_worker_gauges()
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]  # unannotated in prometheus_client
        return generate_latest(registry)

    def update_worker_gauges(self) -> None:
        """This worker's queue depth and process figures, written to the shared folder (each worker
        calls it on a timer, so a scrape answered by another sees them fresh)."""
        if self._queue_depth_source is not None:
            self.queue_depth.set(self._queue_depth_source())
        for metric in PROCESS_COLLECTOR.collect():
            for sample in metric.samples:
                gauge = self._process.get(sample.name.removeprefix("process_"))
                if gauge is not None:
                    gauge.set(sample.value)


def _route_of(scope: Scope) -> BaseRoute | None:
    """The route that matches a request the router never saw or never marked: one the load shedder
    answered 503 before routing (overload was counted under "unmatched", off every route's dashboard),
    and Starlette's plain routes and mounts (the offline docs), which do not set scope["route"]."""
    app = scope.get("app")
    for route in getattr(getattr(app, "router", None), "routes", ()):
        match, _ = route.matches(scope)
        if match == Match.FULL:
            return cast(BaseRoute, route)
    return None


class RequestObservabilityMiddleware:
    """Times every HTTP request, counts it in the metrics and writes its one JSON log line."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics
        # The labelled children, looked up once per (method, path, status): prometheus_client's
        # `labels()` validates and hashes its arguments on every call, twice per request otherwise.
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status_code = 500  # what the client sees if the app dies before answering

        async def send_with_status(message: Message) -> None:
            nonlocal status_code
            if message["type"] == "http.response.start":
                status_code = message["status"]
            await send(message)

        self.metrics.in_progress.inc()
        try:
            await self.app(scope, receive, send_with_status)
        finally:
            self.metrics.in_progress.dec()
            self._observe(scope, status_code, time.perf_counter() - started)

    def _observe(self, scope: Scope, status_code: int, seconds: float) -> None:
        if scope.get(READ_TIMED_OUT_SCOPE_KEY):
            status_code = READ_TIMED_OUT_STATUS
        elif scope.get(CLIENT_GONE_SCOPE_KEY):
            status_code = CLIENT_GONE_STATUS  # nobody received the answer the app wrote
        route = scope.get("route") or _route_of(scope)
        path = getattr(route, "path", "unmatched")  # the route template keeps label values few
        method = scope["method"]
        key = (method, path, status_code)
        children = self._children.get(key)
        if children is None:
            children = (
                self.metrics.requests.labels(method, path, str(status_code)),
                self.metrics.latency.labels(method, path),
            )
            self._children[key] = children
        requests, latency = children
        requests.inc()
        latency.observe(seconds)
        name_batch = scope.get(NAMES_SCOPE_KEY)
        fields: dict[str, Any] = {
            "method": method,
            "path": scope["path"],
            "status": status_code,
            "latency_ms": round(seconds * 1000, 3),
            "num_names": len(name_batch) if name_batch is not None else 0,
        }
        if name_batch is not None:
            if 200 <= status_code < 300:  # a refused request of 200,000 names was counted as carried
                self.metrics.request_names.observe(len(name_batch))
            if logger.isEnabledFor(logging.DEBUG):
                fields["names"] = name_batch
        logger.info("request", extra={"fields": fields})
