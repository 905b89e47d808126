"""Where the time goes: the event-loop thread of a loaded server under cProfile, the model's stages timed
directly, and the batcher's round trip for a lone request.

The server side is profiled, not re-enacted, so the figures follow the app as it changes: its
event-loop time is grouped by the library each function lives in (a C builtin counts for whoever
called it). The model side (encode, pad, forward pass, ranking) runs on the batcher's thread and is
timed with model/'s own functions.
"""

from __future__ import annotations

import asyncio
import pstats
import statistics
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import torch

from app.batching import MicroBatcher
from app.settings import Settings
from bench.http import Server, SingleNameRuns, run_wrk, write_bodies
from model.encoder import pad_sequences
from model.predictor import Predictor, RankQuery

PROFILE_BATCH_SIZE = 512
PROFILE_CONNECTIONS = 64
PROFILE_REQUEST_NAMES = 100
IDLE = "idle"
NAME_CHECKS = "reading names (the checks, and the model's own when it runs on the loop)"
# (what a path fragment or builtin name says, the stage it is counted under), first match wins
HTTP_STAGE = "uvicorn + httptools/h11 (HTTP parsing)"
MODEL_STAGE = "the model (a lone small request runs on the loop)"
STAGES = (
    ("select.epoll", IDLE),  # asyncio's loop waiting for sockets
    # uvloop's loop (C) between the Python callbacks it runs: mostly waiting for sockets, but its own
    # socket reads and writes land here too, so with uvloop the loop's per-request time runs a little low
    ("run_forever", IDLE),
    ("/h11/", HTTP_STAGE),
    ("httptools", HTTP_STAGE),
    ("/uvicorn/", HTTP_STAGE),
    ("/starlette/", "Starlette/FastAPI (routing, dependencies, request, response)"),
    ("/fastapi/", "Starlette/FastAPI (routing, dependencies, request, response)"),
    ("/pydantic", "pydantic (request validation)"),
    ("json", "JSON (request parsing, answer writing with orjson)"),
    ("/prometheus_client/", "request log line + metrics"),
    ("/logging/", "request log line + metrics"),
    ("app/observability.py", "request log line + metrics"),
    ("datetime", "request log line + metrics"),
    ("model/encoder.py", NAME_CHECKS),
    ("unidecode", NAME_CHECKS),
    ("unicodedata", NAME_CHECKS),
    ("app/validation.py", NAME_CHECKS),
    ("app/batching.py", "batcher (queue, futures)"),
    # A lone request of up to Settings.inline_max_names names runs on the loop itself (app.batching)
    ("/model/", MODEL_STAGE),
    ("torch", MODEL_STAGE),
    ("numpy", MODEL_STAGE),
    ("/app/", "app routes"),
    ("/asyncio/", "asyncio event loop, sockets"),
    ("uvloop", "asyncio event loop, sockets"),
    ("selectors.py", "asyncio event loop, sockets"),
    ("socket", "asyncio event loop, sockets"),
)


def stage_of(function: tuple[str, int, str]) -> str | None:
    """The stage of a pstats function key, or None for a C builtin with no telling name."""
    filename, _, name = function
    text = name if filename == "~" else filename
    for fragment, stage in STAGES:
        if fragment in text:
            return stage
    return None if filename == "~" else "other Python"


def loop_seconds_by_stage(profile_path: Path) -> dict[str, float]:
    """Event-loop seconds per stage; a builtin without a stage of its own counts for its callers."""
    stats = pstats.Stats(str(profile_path)).stats
    seconds: dict[str, float] = defaultdict(float)
    for function, (_, _, own_seconds, _, callers) in stats.items():
        stage = stage_of(function)
        if stage is not None:
            seconds[stage] += own_seconds
            continue
        for caller, caller_stats in callers.items():  # caller_stats: (calls, primitive calls, own time, cumulative)
            seconds[stage_of(caller) or "other Python"] += caller_stats[2]
    seconds.pop(IDLE, None)
    return dict(seconds)


def profile_server_loop(
    checkpoint_path: Path,
    device: str,
    num_threads: int,
    names: list[str],
    names_per_request: int,
    connections: int,
    seconds: float,
    work_dir: Path,
) -> tuple[dict[str, float], int]:
    """Milliseconds per request on the event loop, by stage, under /classify load; and the request count.

    A server of its own (start-up is not profiled, so one load per profile)."""
    run_dir = work_dir / f"profile-{names_per_request}x{connections}"
    run_dir.mkdir()
    profile_path = run_dir / "server.prof"
    bodies = write_bodies(run_dir / "bodies.jsonl", names, names_per_request)
    with Server(checkpoint_path, device, num_threads, run_dir, profile_path=profile_path) as server:
        result = run_wrk(server.url("/classify"), bodies, connections, seconds)
    by_stage = loop_seconds_by_stage(profile_path)
    return {stage: total * 1000 / result.requests for stage, total in by_stage.items()}, result.requests


def batcher_round_trip_ms(predictor: Predictor, name: str, repeats: int) -> float:
    """One lone name through the app's MicroBatcher with the default settings: queue, wait, predict
    (on the loop: a lone name is under inline_max_names)."""
    settings = Settings()

    async def round_trips() -> float:
        batcher = MicroBatcher(
            predictor,
            settings.max_batch_size,
            settings.max_batch_wait_ms,
            settings.queue_size,
            inline_max_names=settings.inline_max_names,
        )
        await batcher.start()
        try:
            await batcher.classify([name], RankQuery(3))
            times = []
            for _ in range(repeats):
                started = time.perf_counter()
                await batcher.classify([name], RankQuery(3))
                times.append(time.perf_counter() - started)
            return statistics.median(times) * 1000
        finally:
            await batcher.stop()

    return asyncio.run(round_trips())


RANK_REST = "sort, rank top-k into lists"
PREDICT_REST = "sort, rank top-k, build a tuple per label"


def model_stages(predictor: Predictor, names: list[str], repeats: int, method: str = "predict") -> dict[str, float]:
    """Milliseconds per stage of `Predictor.predict(names)` (or `.rank`, what the service calls), each
    timed with model/'s own functions.

    The stages and the whole call are timed back to back in every repetition, and what the whole
    call spends beyond the stages (sorting, ranking, building answers) is the median of those
    per-repetition differences, so machine noise between separate timings does not leak into it.
    """
    sequences = [predictor.encoder.encode(name) for name in names]
    ordered = sorted(sequences, key=len)
    step = predictor.scorer.max_batch_size
    chunks = [ordered[start : start + step] for start in range(0, len(ordered), step)]
    padded = [pad_sequences(chunk) for chunk in chunks]

    def forward() -> None:
        with torch.inference_mode():
            for ids, lengths in padded:
                predictor.network(ids.to(predictor.device), lengths)
        if predictor.device.type == "cuda":
            torch.cuda.synchronize()  # kernels run asynchronously: time them to the end

    stages: dict[str, Callable[[], object]] = {
        "encode": lambda: [predictor.encoder.encode(name) for name in names],
        "pad": lambda: [pad_sequences(chunk) for chunk in chunks],
        "forward pass": forward,
        "whole call": lambda: getattr(predictor, method)(names),
    }
    times: dict[str, list[float]] = {stage: [] for stage in stages}
    for stage in stages.values():
        stage()  # warm-up
    for _ in range(repeats):
        for stage, call in stages.items():
            started = time.perf_counter()
            call()
            times[stage].append((time.perf_counter() - started) * 1000)
    rest = [
        whole - encode - pad - forward
        for whole, encode, pad, forward in zip(
            times["whole call"], times["encode"], times["pad"], times["forward pass"], strict=True
        )
    ]
    return {
        "encode": statistics.median(times["encode"]),
        "pad": statistics.median(times["pad"]),
        "forward pass": statistics.median(times["forward pass"]),
        PREDICT_REST if method == "predict" else RANK_REST: max(0.0, statistics.median(rest)),
    }


def _shares(stages: dict[str, float], digits: int = 3) -> str:
    total = sum(stages.values())
    ranked = sorted(stages.items(), key=lambda item: -item[1])
    return ", ".join(f"{stage} {ms:.{digits}f} ms ({ms / total:.0%})" for stage, ms in ranked)


def profile_request_path(
    args_checkpoint: Path,
    device: str,
    num_threads: int,
    predictor: Predictor,
    names: list[str],
    single_runs: SingleNameRuns,
    repeats: int,
    seconds: float,
    work_dir: Path,
) -> list[str]:
    """Lines for the page: where the time goes for a lone request, the loaded event loop and a big batch."""
    at_one = single_runs[min(single_runs)]
    classify_p50 = statistics.median(run.p50_ms for run in at_one["/classify"])
    ping_p50 = statistics.median(run.p50_ms for run in at_one["/ping"])
    lone_ms = batcher_round_trip_ms(predictor, names[0], repeats)
    single = model_stages(predictor, names[:1], repeats)
    batch = model_stages(
        predictor, [names[index % len(names)] for index in range(PROFILE_BATCH_SIZE)], max(3, repeats // 20)
    )
    loop, num_requests = profile_server_loop(
        args_checkpoint, device, num_threads, names, 1, PROFILE_CONNECTIONS, seconds, work_dir
    )
    batch_loop, num_batch_requests = profile_server_loop(
        args_checkpoint, device, num_threads, names, PROFILE_REQUEST_NAMES, 1, seconds, work_dir
    )
    request_model = model_stages(
        predictor, [names[index % len(names)] for index in range(PROFILE_REQUEST_NAMES)], max(3, repeats // 20), "rank"
    )
    return [
        f"- A lone name, 1 connection: /classify p50 {classify_p50:.2f} ms, /ping p50 {ping_p50:.2f} ms; in process the "
        f"batcher answers one name in {lone_ms:.2f} ms, the prediction alone {sum(single.values()):.2f} ms ({_shares(single)}).",
        f"- {PROFILE_CONNECTIONS} connections, one name each ({num_requests:,} requests, event loop under cProfile): "
        f"{sum(loop.values()):.3f} ms of loop time per request: {_shares(loop)}.",
        f"- {PROFILE_REQUEST_NAMES}-name requests, 1 connection ({num_batch_requests:,} requests, event loop under cProfile): "
        f"{sum(batch_loop.values()):.2f} ms of loop time per request ({_shares(batch_loop, 2)}), the model "
        f"included (a lone request of up to NAMEORIGIN_INLINE_MAX_NAMES names runs on the loop); `Predictor.rank` alone in "
        f"process: {sum(request_model.values()):.1f} ms.",
        f"- One {PROFILE_BATCH_SIZE}-name batch in process ({sum(batch.values()):.1f} ms): {_shares(batch, 1)}.",
    ]
