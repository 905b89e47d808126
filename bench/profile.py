"""Where the time goes: each stage of the request path timed on its own, next to the HTTP figures.

A single-name /classify request is taken apart into the pieces the app runs (JSON parsing, schema
validation, the route's dependencies, the limits check, the batcher's wait and thread hand-off,
encoding, padding, the forward pass, ranking, the response model and its JSON); what /ping costs
over HTTP is the stack every request pays. The same split is done for one 512-name batch in process.
The advice lines are written only when the code they are about still looks that way.
"""
from __future__ import annotations

import asyncio
import inspect
import io
import json
import logging
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import anyio
import torch
from pydantic import TypeAdapter

from app.observability import JsonFormatter
from app.routes import router
from app.schemas import BatchClassifyResponse, ClassifyRequest, ClassifyResponse, NameResult, Prediction
from app.settings import Settings
from app.validation import check_classify_request
from bench.http import SingleNameRuns
from model.checkpoint import Checkpoint
from model.encoder import pad_sequences
from model.predictor import NamePrediction, Predictor

logger = logging.getLogger(__name__)

PROFILE_BATCH_SIZE = 512


def per_call_ms(call: Callable[[], object], repeats: int) -> float:
    """Median wall time of one call, in milliseconds (one untimed call first)."""
    call()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def thread_hops_ms(repeats: int) -> tuple[float, float]:
    """Empty round trips from the event loop to a thread, in ms: (FastAPI's threadpool, which runs
    every plain-`def` dependency; the batcher's `run_in_executor` hand-off to its model thread)."""
    executor = ThreadPoolExecutor(max_workers=1)

    async def hops() -> tuple[float, float]:
        loop = asyncio.get_running_loop()
        threadpool, executor_hops = [], []
        for _ in range(repeats):
            started = time.perf_counter()
            await anyio.to_thread.run_sync(int)
            threadpool.append(time.perf_counter() - started)
            started = time.perf_counter()
            await loop.run_in_executor(executor, int)
            executor_hops.append(time.perf_counter() - started)
        return statistics.median(threadpool) * 1000, statistics.median(executor_hops) * 1000

    try:
        return asyncio.run(hops())
    finally:
        executor.shutdown()


def sync_dependencies(route_path: str = "/classify") -> list[str]:
    """Names of the plain-`def` dependencies of a route: FastAPI runs each in its threadpool."""
    for route in router.routes:
        if getattr(route, "path", None) == route_path:
            return [
                dependant.call.__name__ for dependant in route.dependant.dependencies
                if dependant.call is not None and not inspect.iscoroutinefunction(dependant.call)
            ]
    raise ValueError(f"no route {route_path!r} in app.routes.router")


def response_bytes(prediction: NamePrediction, model_id: str, adapter: TypeAdapter) -> bytes:
    """What the route builds for one name and what FastAPI's response_model handling then does to it."""
    result = NameResult(
        name=prediction.name,
        predictions=[Prediction(label=p.label, probability=p.probability, log_probability=p.log_probability) for p in prediction.predictions],
    )
    response = ClassifyResponse(name=result.name, predictions=result.predictions, model_id=model_id)
    return json.dumps(adapter.dump_python(adapter.validate_python(response), mode="json")).encode()


def single_name_stages(checkpoint: Checkpoint, predictor: Predictor, name: str, repeats: int) -> dict[str, float]:
    """Milliseconds per stage of one single-name /classify, beyond what /ping also pays."""
    settings = Settings()
    body = json.dumps({"name": name, "top_k": 3}).encode()
    parsed = json.loads(body)
    request = ClassifyRequest.model_validate(parsed)
    char_ids = predictor.encoder.encode(name)
    ids, lengths = pad_sequences([char_ids])
    prediction = predictor.predict([name])[0]
    adapter = TypeAdapter(ClassifyResponse | BatchClassifyResponse)
    threadpool_hop, executor_hop = thread_hops_ms(repeats)
    num_sync_dependencies = len(sync_dependencies())

    def forward() -> None:
        with torch.inference_mode():
            predictor.network(ids.to(predictor.device), lengths)

    stages = {
        "JSON parse": per_call_ms(lambda: json.loads(body), repeats),
        "schema validation": per_call_ms(lambda: ClassifyRequest.model_validate(parsed), repeats),
        f"{num_sync_dependencies} sync dependencies (threadpool hops)": num_sync_dependencies * threadpool_hop,
        "limits check (encodes the name)": per_call_ms(
            lambda: check_classify_request(
                request.name_batch, False, 3, predictor.num_labels, predictor.encoder,
                settings.max_names_per_request, settings.max_name_length,
            ),
            repeats,
        ),
        "batcher wait (max_batch_wait_ms)": settings.max_batch_wait_ms,
        "hop to the model thread": executor_hop,
        "encode": per_call_ms(lambda: predictor.encoder.encode(name), repeats),
        "pad": per_call_ms(lambda: pad_sequences([char_ids]), repeats),
        "forward pass": per_call_ms(forward, repeats),
    }
    in_model = sum(stages[key] for key in ("encode", "pad", "forward pass"))
    stages["rank top-k, build results"] = max(0.0, per_call_ms(lambda: predictor.predict([name]), repeats) - in_model)
    stages["response model + JSON"] = per_call_ms(lambda: response_bytes(prediction, checkpoint.model_id, adapter), repeats)
    return stages


def batch_stages(predictor: Predictor, names: list[str], repeats: int) -> dict[str, float]:
    """Milliseconds per stage for one batch in process, as `Predictor.predict` runs it."""
    sequences = [predictor.encoder.encode(name) for name in names]
    ordered = sorted(sequences, key=len)
    step = predictor.max_batch_size
    chunks = [ordered[start : start + step] for start in range(0, len(ordered), step)]
    padded = [pad_sequences(chunk) for chunk in chunks]

    def forward() -> None:
        with torch.inference_mode():
            for ids, lengths in padded:
                predictor.network(ids.to(predictor.device), lengths)

    stages = {
        "encode": per_call_ms(lambda: [predictor.encoder.encode(name) for name in names], repeats),
        "pad": per_call_ms(lambda: [pad_sequences(chunk) for chunk in chunks], repeats),
        "forward pass": per_call_ms(forward, repeats),
    }
    total = per_call_ms(lambda: predictor.predict(names), repeats)
    stages["sort, rank top-k, build results"] = max(0.0, total - sum(stages.values()))
    return stages


def request_log_ms(repeats: int) -> float:
    """The JSON request log line every request writes at the default INFO level (/ping too)."""
    formatter = JsonFormatter()
    record = logging.LogRecord("app.observability", logging.INFO, __file__, 0, "request", None, None)
    record.fields = {"method": "POST", "path": "/classify", "status": 200, "latency_ms": 1.234, "num_names": 1}
    sink = io.StringIO()
    return per_call_ms(lambda: sink.write(formatter.format(record) + "\n"), repeats)


def _shares(stages: dict[str, float]) -> str:
    total = sum(stages.values())
    ranked = sorted(stages.items(), key=lambda item: -item[1])
    return ", ".join(f"{stage} {ms:.3f} ms ({ms / total:.0%})" for stage, ms in ranked)


def advice(stages: dict[str, float], batch_split: dict[str, float], checkpoint: Checkpoint) -> list[str]:
    """What to change, written only while the profile still shows the cause."""
    lines = []
    dependencies = sync_dependencies()
    if dependencies:
        lines.append(
            f"- Change in app/: /classify's dependencies {', '.join(dependencies)} are plain `def`, so FastAPI runs each "
            "in its threadpool: that many thread round trips per request, each one a wake-up the OS has to schedule "
            "on a busy 2-core machine (far more than the idle-loop figure above). They do no I/O; `async def` removes the hops."
        )
    wait_ms = Settings().max_batch_wait_ms
    if wait_ms > 0:
        lines.append(
            f"- Change in app/: the batcher waits up to {wait_ms:g} ms for company even when the model thread is idle; "
            "taking what is queued and waiting only while a batch is running gives the same batches under load "
            "and no added latency to a lone request."
        )
    outside = batch_split["pad"] + batch_split["sort, rank top-k, build results"]
    if outside > 0.2 * sum(batch_split.values()):
        lines.append(
            f"- Change in model/: at {PROFILE_BATCH_SIZE} names {outside / sum(batch_split.values()):.0%} of `Predictor.predict` "
            "is outside the network: `pad_sequences` builds one tensor per row, and every name gets frozen dataclasses "
            "built from Python floats; one `torch.nn.utils.rnn.pad_sequence` call and ranking on whole tensors would cut it."
        )
    if batch_split["forward pass"] > 0.5 * sum(batch_split.values()):
        config = checkpoint.network_config
        lines.append(
            f"- The forward pass leads in process: a {'bidirectional ' if config.bidirectional else ''}{config.architecture} "
            f"(hidden {config.hidden_size}, pooling {config.pooling}) costs several times the tutorial cell's arithmetic per "
            "character, so the in-process speed-up over the tutorial is bounded by the architecture the recipe picks."
        )
    return lines


def profile_request_path(
    checkpoint: Checkpoint, predictor: Predictor, names: list[str], single_runs: SingleNameRuns, repeats: int
) -> list[str]:
    """Lines for the page: the HTTP stack's share, each stage of a single-name request, a 512-name batch, advice."""
    at_one = single_runs[min(single_runs)]
    classify_p50 = statistics.median(run.p50_ms for run in at_one["/classify"])
    ping_p50 = statistics.median(run.p50_ms for run in at_one["/ping"])
    stages = single_name_stages(checkpoint, predictor, names[0], repeats)
    batch = [names[index % len(names)] for index in range(PROFILE_BATCH_SIZE)]
    batch_split = batch_stages(predictor, batch, max(3, repeats // 40))
    unattributed = classify_p50 - ping_p50 - sum(stages.values())
    return [
        f"- One name, one connection: /classify p50 {classify_p50:.2f} ms against /ping p50 {ping_p50:.2f} ms. "
        f"The /ping figure is the stack every request pays (wrk, the socket, uvicorn's pure-Python h11 parser, "
        f"the two middlewares, routing), of which the JSON request log line is {request_log_ms(repeats):.3f} ms.",
        f"- The {classify_p50 - ping_p50:.2f} ms /classify adds, each stage timed alone in process: {_shares(stages)}; "
        f"{unattributed:.2f} ms is left over: waiting for a core when a thread hands work to another on this loaded machine, "
        "the event loop's scheduling, FastAPI's body handling.",
        f"- One {PROFILE_BATCH_SIZE}-name batch in process ({sum(batch_split.values()):.1f} ms): {_shares(batch_split)}.",
        *advice(stages, batch_split, checkpoint),
    ]
