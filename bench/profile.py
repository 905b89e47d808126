"""Where the time goes: the event-loop thread of a loaded server under cProfile, the model's stages timed
directly, and the batcher's round trip for a lone request.

The server side is profiled, not re-enacted, so the figures follow the app as it changes: its
event-loop time is grouped by the library each function lives in (a C builtin counts for whoever
called it). The model side (encode, pad, forward pass, ranking) runs on the batcher's thread and is
timed with model/'s own functions. Advice lines are written only while the profile shows their cause.
"""
from __future__ import annotations

import asyncio
import importlib.util
import logging
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
from bench.reference import TUTORIAL_HIDDEN_SIZE
from model.encoder import pad_sequences
from model.predictor import Predictor, RankQuery

logger = logging.getLogger(__name__)

PROFILE_BATCH_SIZE = 512
PROFILE_CONNECTIONS = 64
PROFILE_REQUEST_NAMES = 100
IDLE = "idle"
NAME_CHECKS = "name checks (encoding on the loop thread)"
# (what a path fragment or builtin name says, the stage it is counted under), first match wins
HTTP_STAGE = "uvicorn + httptools/h11 (HTTP parsing)"
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
    checkpoint_path: Path, device: str, num_threads: int, names: list[str], names_per_request: int,
    connections: int, seconds: float, work_dir: Path,
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


def per_call_ms(call: Callable[[], object], repeats: int) -> float:
    """Median wall time of one call, in milliseconds (one untimed call first)."""
    call()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def batcher_round_trip_ms(predictor: Predictor, name: str, repeats: int) -> float:
    """One lone name through the app's MicroBatcher with the default settings: wait, hop, predict, hop back."""
    settings = Settings()

    async def round_trips() -> float:
        batcher = MicroBatcher(predictor, settings.max_batch_size, settings.max_batch_wait_ms, settings.queue_size)
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
    rest = [whole - encode - pad - forward for whole, encode, pad, forward in zip(
        times["whole call"], times["encode"], times["pad"], times["forward pass"]
    )]
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


def advice(
    lone_ms: float, single: dict[str, float], batch: dict[str, float], loop: dict[str, float],
    batch_loop: dict[str, float], predictor: Predictor,
) -> list[str]:
    """What to change, written only while the measurements show the cause."""
    lines = []
    checks = batch_loop.get(NAME_CHECKS, 0.0)
    if checks > 0.15 * sum(batch_loop.values()):
        lines.append(
            f"- app/, model/: {checks / sum(batch_loop.values()):.0%} of the loop's time on a {PROFILE_REQUEST_NAMES}-name "
            "request is the limits check, which encodes (transliterates) every name on the event loop; the predictor "
            "then encodes each name again on the model thread. Encoding once and handing the ids on (e.g. a "
            "`Predictor` method that takes encoded names) would halve that work and free the loop."
        )
    wait_ms = Settings().max_batch_wait_ms
    single_predict = sum(single.values())
    if wait_ms > 0 and lone_ms > single_predict + wait_ms / 2:
        lines.append(
            f"- app/: a lone name spends {lone_ms:.2f} ms in the batcher for a {single_predict:.2f} ms prediction: it waited "
            f"max_batch_wait_ms ({wait_ms:g} ms, and asyncio's timer rounds waits up to whole milliseconds) for company "
            "although requests were not overlapping. The batcher waits only after a batch that had company; check that "
            "rule. Measured with the two-head model at 1, 8 and 64 connections: waiting every time 411 / 1,804 / "
            "3,725 req/s, never waiting 749 / 1,735 / 3,444, the rule 791 / 1,817 / 3,802."
        )
    batch_total = sum(batch.values())
    outside = batch["pad"] + batch[PREDICT_REST]
    if outside > 0.15 * batch_total:
        lines.append(
            f"- model/: at {PROFILE_BATCH_SIZE} names {outside / batch_total:.0%} of `Predictor.predict` is outside the "
            f"network (padding {batch['pad'] / batch_total:.0%}, ranking and building a tuple per label "
            f"{batch[PREDICT_REST] / batch_total:.0%}): Python work per name. The service calls `Predictor.rank`, which "
            "stops at lists of label ids and probabilities; a Python caller that writes its own output can too. "
            "Padding straight into the packed layout the network builds next would cut the rest."
        )
    if batch["forward pass"] > 0.5 * batch_total:
        config = predictor.checkpoint.network_config
        heads = config.num_heads
        bag = f", {'each' if heads > 1 else 'its'} with an n-gram bag of {config.ngram_buckets} buckets" if config.ngram_order else ""
        lines.append(
            f"- model/, training/: the forward pass is {batch['forward pass'] / batch_total:.0%} of a batch. "
            f"A {'bidirectional ' if config.bidirectional else ''}{config.architecture} with hidden {config.hidden_size} "
            f"(pooling {config.pooling}) under {heads} classifier head{'s' if heads > 1 else ''}{bag} does about "
            f"{multiply_adds_per_char(config) / tutorial_multiply_adds_per_char(config):.1f}x the tutorial cell's "
            "multiply-adds per character, run as a few large matrix products per step instead of many small calls: "
            "the ratio against the tutorial is set by the architecture the recipe picks and by batching together."
        )
    loop_total = sum(loop.values())
    framework = sum(ms for stage, ms in loop.items() if stage.startswith(("uvicorn", "Starlette", "asyncio")))
    if loop_total and framework > 0.5 * loop_total:
        faster_stack = (
            "; uvicorn here parses HTTP with pure-Python h11 and runs plain asyncio: `uvicorn[standard]` "
            "(httptools, uvloop) would take the same time off /ping and /classify (more requests per second for both, "
            "though a smaller /classify-to-/ping ratio, since /ping is nothing but that stack)"
            if importlib.util.find_spec("httptools") is None else ""
        )
        lines.append(
            f"- deployment: {framework / loop_total:.0%} of the event loop's time per request is the HTTP stack itself "
            f"(uvicorn, Starlette/FastAPI, asyncio){faster_stack}. One event loop per process caps single-name "
            "throughput; workers (NAMEORIGIN_WORKERS) are the lever where cores allow."
        )
    return lines


def multiply_adds_per_char(config) -> int:
    """Approximate multiply-adds per character of a recurrent network (one recurrent pass, a bag per head)."""
    if config.architecture == "concat":
        return tutorial_multiply_adds_per_char(config, config.hidden_size)
    gates = {"rnn": 1, "gru": 3, "lstm": 4}[config.architecture]
    directions = 2 if config.bidirectional else 1
    recurrent, input_size = 0, config.vocab_size
    for _ in range(config.num_layers):
        recurrent += directions * gates * config.hidden_size * (input_size + config.hidden_size)
        input_size = directions * config.hidden_size
    bag = config.ngram_order * config.ngram_dim  # ~order lookups per char
    return recurrent + config.num_heads * bag


def tutorial_multiply_adds_per_char(config, hidden_size: int = TUTORIAL_HIDDEN_SIZE) -> int:
    """The tutorial cell's i2h and i2o over cat(x, h), per character."""
    return (config.vocab_size + hidden_size) * (hidden_size + config.num_labels)


def profile_request_path(
    args_checkpoint: Path, device: str, num_threads: int, predictor: Predictor, names: list[str],
    single_runs: SingleNameRuns, repeats: int, seconds: float, work_dir: Path,
) -> tuple[list[str], list[str]]:
    """Lines for the page: where the time goes (a lone request, the loaded event loop, a big batch), and what to change."""
    at_one = single_runs[min(single_runs)]
    classify_p50 = statistics.median(run.p50_ms for run in at_one["/classify"])
    ping_p50 = statistics.median(run.p50_ms for run in at_one["/ping"])
    lone_ms = batcher_round_trip_ms(predictor, names[0], repeats)
    single = model_stages(predictor, names[:1], repeats)
    batch = model_stages(predictor, [names[index % len(names)] for index in range(PROFILE_BATCH_SIZE)], max(3, repeats // 20))
    loop, num_requests = profile_server_loop(
        args_checkpoint, device, num_threads, names, 1, PROFILE_CONNECTIONS, seconds, work_dir
    )
    batch_loop, num_batch_requests = profile_server_loop(
        args_checkpoint, device, num_threads, names, PROFILE_REQUEST_NAMES, 1, seconds, work_dir
    )
    request_model = model_stages(
        predictor, [names[index % len(names)] for index in range(PROFILE_REQUEST_NAMES)], max(3, repeats // 20), "rank"
    )
    where = [
        f"- A lone name (1 connection): /classify p50 {classify_p50:.2f} ms against /ping p50 {ping_p50:.2f} ms. In process, "
        f"the app's batcher answers one name in {lone_ms:.2f} ms, of which the prediction is {sum(single.values()):.2f} ms "
        f"({_shares(single)}); the rest is the batcher's wait for company and the hand-off to its thread and back.",
        f"- Under load ({PROFILE_CONNECTIONS} connections, one name each, {num_requests:,} requests, cProfile on the server's "
        f"event loop, model thread excluded): {sum(loop.values()):.3f} ms of loop time per request: {_shares(loop)}. "
        "cProfile's own cost inflates call-heavy Python; read the shares.",
        f"- {PROFILE_REQUEST_NAMES}-name requests (1 connection, {num_batch_requests:,} requests, cProfile as above): "
        f"{sum(batch_loop.values()):.2f} ms of loop time per request ({_shares(batch_loop, 2)}) around "
        f"{sum(request_model.values()):.1f} ms of `Predictor.rank` in the model thread; the loop's part is what "
        "measurement 3 loses.",
        f"- One {PROFILE_BATCH_SIZE}-name batch in process ({sum(batch.values()):.1f} ms): {_shares(batch, 1)}.",
    ]
    return where, advice(lone_ms, single, batch, loop, batch_loop, predictor)
