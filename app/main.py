"""The app factory and its lifespan: load the checkpoint, warm the model up, drain on shutdown.

`app` below is the factory's product so `uvicorn app.main:app` works; building it reads the
settings but loads nothing: the model is loaded only when the server starts the lifespan.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import torch
from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from app.accepted import keep_accepted
from app.batching import MicroBatcher
from app.body_limit import BodySizeLimitMiddleware
from app.dependencies import SERVICE_STATE_KEY, Service
from app.errors import install_error_handlers
from app.head import HeadAsGetMiddleware
from app.observability import WORKER_GAUGE_PERIOD_S, Metrics, RequestObservabilityMiddleware, configure_logging
from app.openapi import install_openapi
from app.reloading import ModelReloader, ReloadRefusedError, install_sighup, warm_and_check
from app.routes import router
from app.settings import Settings
from app.shedding import LoadSheddingMiddleware
from model.canary import WARMUP_NAMES, WARMUP_ROUNDS
from model.checkpoint import CheckpointError, read_checkpoint_bytes
from model.predictor import DeviceUnavailableError, Predictor, RankQuery, hold_threads
from model.scoring import LARGE_BATCH_MIN_READINGS

logger = logging.getLogger(__name__)

# The collector's young-generation threshold while serving, above the tracked objects one 1000-name
# request holds at its answer: its lists and dicts are freed by reference counting before the collector
# walks them, where CPython's 700 walked them a dozen times a request (docs/benchmarks.md, "Garbage
# collection"). The older generations keep their thresholds.
YOUNG_COLLECTION_THRESHOLD = 20_000

DESCRIPTION = """\
Guesses which language or nationality a person's name comes from, with a character-level RNN.

* `POST /classify` — one name or many; top-k labels with probabilities.
* `GET /model` — which checkpoint answers: labels, metrics, data fingerprint, device.
* `GET /healthz`, `GET /readyz`, `GET /metrics` — for orchestrators and Prometheus.
* `GET /` — a small web page to try it.

Limits of this server: {max_names_per_request} names per request, {max_name_length} characters per
name, {max_body_bytes} bytes per body. Every refusal is a JSON `ErrorResponse` naming the field.
"""


def load_predictor(settings: Settings, path: Path | None = None) -> Predictor:
    """The predictor for the configured checkpoint (or `path`) and device; raises CheckpointError or
    DeviceUnavailableError."""
    return Predictor.from_path(
        path or settings.checkpoint_path,
        device=settings.device,
        num_threads=settings.torch_threads,
        large_batch_threads=settings.threads_for_large_batches(),
    )


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Service]]:
    settings: Settings = app.state.settings
    metrics: Metrics = app.state.metrics
    configure_logging(settings.log_level)
    # The event loop's own thread fixes its torch thread count now, before a large call on the model
    # thread can raise the process-wide default it would otherwise copy (model.scoring.intra_op_threads).
    hold_threads(settings.torch_threads)
    # Beside other workers, the model they accepted last (app.accepted); the configured file is then a
    # reload candidate (below), as it was for the others.
    copy = settings.accepted_checkpoint_copy
    from_copy = copy is not None and copy.exists()
    try:
        predictor = await asyncio.to_thread(_load_and_check, settings, copy if from_copy else None)
    except Exception as error:
        logger.error("cannot start: %s: %s", type(error).__name__, error)
        raise
    # Started from the copy: is the configured file the same model? If not (replaced while this worker
    # was down or starting, even by a SIGHUP's deploy), it is tried as a reload at once, watch or not.
    try_configured = from_copy and not await asyncio.to_thread(_holds_same_model, settings.checkpoint_path, predictor)
    batcher = MicroBatcher(
        predictor,
        max_batch_size=settings.max_batch_size,
        max_wait_ms=settings.max_batch_wait_ms,
        queue_size=settings.queue_size,
        on_batch=metrics.observe_batch,
        queue_wait_ms=settings.queue_wait_ms,
        inline_max_names=settings.inline_max_names,
    )
    await batcher.start()
    service = Service(batcher)
    refresher: asyncio.Task[None] | None = None
    watcher: asyncio.Task[None] | None = None
    reloader = ModelReloader(
        lambda: load_predictor(settings),
        batcher,
        settings.checkpoint_path,
        lambda new: _now_serving(new, metrics, copy),
        on_outcome=metrics.observe_reload,
    )
    uninstall_sighup = install_sighup(reloader)
    thresholds_before = gc.get_threshold()
    try:
        for _ in range(WARMUP_ROUNDS):
            await batcher.run_directly(WARMUP_NAMES, RankQuery(top_k=1))
        # Everything alive now (torch, the model, the framework) lives as long as the process: frozen,
        # the collector stops walking it each time requests' short-lived objects trigger a full
        # collection, which made every few 1000-name requests much slower (docs/benchmarks.md).
        gc.collect()
        gc.freeze()
        gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, *thresholds_before[1:])
        service.ready = True
        app.state.num_labels = predictor.num_labels  # the schema's top_k maximum (app.openapi)
        app.openapi_schema = None
        metrics.ready.set(1)
        metrics.track_queue_depth(lambda: batcher.queue_depth)
        checkpoint = predictor.checkpoint
        metrics.set_model(checkpoint.model_id, checkpoint.network_config.architecture, str(predictor.device))
        refresher = asyncio.create_task(_refresh_worker_gauges(metrics)) if metrics.multiprocess else None
        if try_configured:
            reloader.request("the configured file differs from the model the workers kept")
        if settings.reload_poll_s > 0:
            watcher = asyncio.create_task(reloader.watch(settings.reload_poll_s), name="nameorigin-checkpoint-watch")
        logger.info(
            "serving %s from %s on %s; torch threads %d, %d for a CPU call of %d readings or more",
            checkpoint.model_id,
            f"the copy the workers kept ({copy})" if from_copy else settings.checkpoint_path,
            predictor.device,
            torch.get_num_threads(),
            predictor.scorer.large_batch_threads or torch.get_num_threads(),
            LARGE_BATCH_MIN_READINGS,
        )
        yield {SERVICE_STATE_KEY: service}
    finally:
        # Readiness drops first so load balancers stop sending; then every queued request is answered.
        service.ready = False
        metrics.ready.set(0)
        uninstall_sighup()
        for task in (refresher, watcher):
            if task is not None:
                task.cancel()
        try:
            await reloader.stop()
            await batcher.stop()
        finally:  # even when a stop fails or is cancelled
            gc.unfreeze()  # a process that starts the app again (tests, embedding) must not keep this heap forever
            gc.set_threshold(*thresholds_before)  # nor this threshold
        logger.info("batcher drained; stopped")


def start_check(settings: Settings) -> tuple[str | None, bytes]:
    """What `python -m app` checks before it serves: the configured model loads and passes the reload's
    canary. Returns (why it cannot serve, or None; the file's bytes as checked). Run in a child process
    when several workers start, so the supervisor never holds a model or the readers' dictionaries
    (about 130 MiB it would keep for its whole life)."""
    try:
        predictor = _load_and_check(settings, None)
    except (CheckpointError, DeviceUnavailableError, ReloadRefusedError) as error:
        return str(error), b""
    return None, predictor.checkpoint.file_bytes


def _holds_same_model(path: Path, predictor: Predictor) -> bool:
    """Whether the file at `path` holds the bytes `predictor` was loaded from (the copy is those bytes,
    so a byte comparison says it, with no second load); False when it cannot be read (then it is
    tried, and refused, as a reload)."""
    try:
        return read_checkpoint_bytes(path) == predictor.checkpoint.file_bytes
    except CheckpointError:
        return False


def _load_and_check(settings: Settings, path: Path | None) -> Predictor:
    """Load, warm up and check a model as a reload does (app.reloading.warm_and_check): a model that a
    reload would refuse never serves from the start either."""
    predictor = load_predictor(settings, path)
    warm_and_check(predictor)
    return predictor


def _now_serving(predictor: Predictor, metrics: Metrics, accepted_copy: Path | None) -> None:
    """After a hot reload: the metrics name the new model, and the new model's long-lived objects are
    frozen out of the collector's walks like the first one's (unfreezing first lets it free the old
    model's cycles). Beside other workers it is the copy a starting worker loads from now on."""
    checkpoint = predictor.checkpoint
    metrics.set_model(checkpoint.model_id, checkpoint.network_config.architecture, str(predictor.device))
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    try:  # last: a copy that cannot be written must not keep the metrics naming the old model
        keep_accepted(accepted_copy, checkpoint.file_bytes)
    except OSError as error:
        logger.error(
            "serving %s, but could not keep it for workers that start again (they would serve the model before it): %s",
            checkpoint.model_id,
            error,
        )


async def _refresh_worker_gauges(metrics: Metrics) -> None:
    """Keep this worker's queue depth and process figures fresh in the shared metrics folder."""
    while True:
        metrics.update_worker_gauges()
        await asyncio.sleep(WORKER_GAUGE_PERIOD_S)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app: routes, error mapping, body limit, request logging and metrics. Loads no model."""
    settings = settings or Settings()
    # FastAPIOffline serves Swagger UI and ReDoc from files its package ships, not from a CDN: /docs
    # works offline and loads nothing from another host.
    app = FastAPIOffline(
        title="nameorigin",
        summary="Which language or nationality does a name come from?",
        description=DESCRIPTION.format(**settings.model_dump()),
        version="0.1.0",
        lifespan=lifespan,
        routes=list(router.routes),
        # A path with a trailing slash is not found, rather than redirected to a URL built from the
        # client's own Host header (a 307 with an empty body, not the error shape).
        redirect_slashes=False,
    )
    app.state.settings = settings
    app.state.metrics = Metrics(multiprocess=settings.metrics_dir is not None)
    install_openapi(app, settings)
    install_error_handlers(app)
    # Added last = outermost: the log line and metrics also see requests the body limit refuses, and
    # a HEAD request as HEAD.
    app.add_middleware(HeadAsGetMiddleware)
    app.add_middleware(BodySizeLimitMiddleware, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(LoadSheddingMiddleware)  # before the body limit reads anything
    app.add_middleware(RequestObservabilityMiddleware, metrics=app.state.metrics)
    return app


app = create_app()
