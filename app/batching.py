"""Micro-batching: concurrent requests share one model call.

Requests wait in a bounded asyncio queue; one loop takes the first, waits at most `max_wait_ms`
for others to join (up to `max_batch_size` names), runs the whole batch and routes each request's
rows of the answer back through its future. A batch takes only what is already queued, without
waiting, when it holds `FULL_ENOUGH_NAMES` or when the previous batch had no company (requests are
not overlapping, so waiting would only add latency).

A request that asks for explanations is cut into chunks of about `EXPLAIN_CHUNK_COST` (each name
weighs its length as read, squared: explaining occludes every character and scores the name again),
each queued after whatever arrived meanwhile, never two in one model call: one request of 1000 long full names took 20-38 s in one
model call and held every other client for all of it. A request without explanations is cut the
same way when its names hold more than `PLAIN_CHUNK_PARTS` parts (words) in all, each part being
read on its own. Between chunks the request stops if its client has gone, and chunks a hot reload
answered with another model are asked again, so one model answers the whole request.

A lone request (a batch with no company) of up to `inline_max_names` names, INLINE_CHARS_PER_NAME
characters a name, and no explanations runs on the event loop itself, and the loop serves others
before the next batch; every other batch runs on a single worker thread, so the loop keeps
accepting and answering while it runs. For a lone client the hand-off to the thread and back costs
about as much as a small model call. Under load, batches on the loop raised the throughput too but
made the tail of the latency worse, so batches with company keep the thread; and a 1000-name call
gained nothing worth pausing the loop for (figures in docs/benchmarks.md, "The HTTP path").
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import random
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import NamedTuple

from model.encoder import clean_text, visible_length
from model.predictor import Predictor, RankedNames, RankQuery
from model.scoring import on_process_threads

logger = logging.getLogger(__name__)


class QueueFullError(RuntimeError):
    """More requests are waiting for the model than the queue holds: shed load instead of queueing forever."""


class BatcherClosedError(RuntimeError):
    """The batcher is not running (not started yet, or draining for shutdown)."""


class Answer(NamedTuple):
    """A request's rows and the predictor that computed them: after a hot reload the answer names the
    model that really answered, not the one serving when the request arrived."""

    ranked: RankedNames
    predictor: Predictor


@dataclass
class _Job:
    names: list[str]
    query: RankQuery
    future: asyncio.Future[Answer] = field(repr=False)


# Waiting for company pays when it spreads a model call's fixed cost over more names. At 64 names the
# per-name work is already larger than that cost, so a big request, or a batch grown that big, runs
# at once: waiting would only add latency (docs/benchmarks.md, "Why the code is as it is").
FULL_ENOUGH_NAMES = 64

# The character budget of a batch run on the event loop, per name of `inline_max_names`: the data's
# names average 7.4 characters, and a long many-part name costs several network passes (a full
# name is read whole and part by part), so names, not only characters, are bounded too.
INLINE_CHARS_PER_NAME = 8

# What explaining costs per unit of a name's length squared on one core (README.md, "Explanations"): a
# chunk of this many units is 50-100 ms, so other requests wait about that long at most between two
# chunks of a large explained request.
EXPLAIN_CHUNK_COST = 12_000
EXPLAIN_REASK_ROUNDS = 3  # hot reloads in a row during one chunked request before it is refused

# Parts (words) of a request without explanations that one model call takes: a request of more is cut
# into chunks of about this many, queued as an explained one's are. A full name is read whole and part
# by part, so its cost grows with its parts, and one call of many held every other client as long
# (README.md, "Explanations"). 1000 "Given Surname" names stay one call.
PLAIN_CHUNK_PARTS = 2048

ClientGone = Callable[[], Awaitable[bool]]  # whether the client that sent a request has disconnected


class ClientGoneError(RuntimeError):
    """The client disconnected while its explained request was being answered chunk by chunk."""


def explain_chunks(names: list[str], budget: int) -> list[list[str]]:
    """`names` in order, cut where the next name would take a chunk over `budget` (each name weighs its
    length as read squared: "ﷺ" is one code point and 18 letters to occlude; a name over the budget is
    a chunk of its own)."""
    return _cut(names, [(len(name) if name.isascii() else visible_length(name)) ** 2 for name in names], budget)


def _cut(names: list[str], weights: list[int], budget: int) -> list[list[str]]:
    """`names` in order, cut where the next name's weight would take a chunk over `budget`; never an empty
    chunk (a name over the budget is a chunk of its own)."""
    chunks: list[list[str]] = [[]]
    cost = 0
    for name, weight in zip(names, weights, strict=True):
        if chunks[-1] and cost + weight > budget:
            chunks.append([])
            cost = 0
        chunks[-1].append(name)
        cost += weight
    return chunks


def plain_chunks(names: list[str], budget: int) -> list[list[str]]:
    """`names` in one chunk when their parts (words) number at most `budget`, else in order, cut where the
    next name would take a chunk over it (a name over the budget is a chunk of its own)."""
    # Most requests are under the budget at a glance, counted in C over all the names at once: words
    # between whitespace of any kind, and commas and middle dots (not symbols, which only clean_text
    # makes spaces); 0.11 ms for 1000 surnames, a fifth of a regex's time per name
    if sum(map(len, names)) // 2 + len(names) <= budget:  # a part and its separator take two characters
        return [names]
    joined = " ".join(names)
    if len(joined.split()) + joined.count(",") + joined.count("\u30fb") <= budget:
        return [names]
    parts = [_part_count(name) for name in names]
    return [names] if sum(parts) <= budget else _cut(names, parts, budget)


_PART_SEPARATORS = re.compile(r"[\s\u30fb,]+")  # what the reader splits a full name on, and commas


def _part_count(name: str) -> int:
    """About how many parts the reader splits `name` into: words between whitespace of any kind (the
    ideographic space of 山田\u3000太郎, tabs), the katakana middle dot and commas, once its symbols are
    spaces (clean_text). ASCII names, most of them, skip the cleaning."""
    if name.isascii():  # a bound, not the count ("Lee, Ann" is 3), for a fifth of the regex's time
        return len(name.split()) + name.count(",") or 1
    text = clean_text(name)
    return len(_PART_SEPARATORS.split(text.strip(" ,"))) if text else 1


# Retry-After is whole seconds (RFC 9110), so a queue that drains in milliseconds would tell every
# shed client "1" and bring them all back in the same instant. Each refusal draws from 1..this (or
# twice the drain time, if longer) so the retries arrive spread out.
RETRY_AFTER_SPREAD_S = 3
DRAIN_RATE_SMOOTHING = 0.2  # weight of the newest batch in the drain-rate average

BatchObserver = Callable[[int, int, float], None]  # (requests, names, seconds in the model) per batch


class MicroBatcher:
    """Coalesces `classify` calls into batched `Predictor.rank_requests` calls: a lone small request on
    the event loop, the rest on one worker thread."""

    def __init__(
        self,
        predictor: Predictor,
        max_batch_size: int,
        max_wait_ms: float,
        queue_size: int,
        on_batch: BatchObserver | None = None,
        queue_wait_ms: float = 0.0,
        inline_max_names: int = 0,
    ) -> None:
        """The limits come from Settings (max_batch_size, max_batch_wait_ms, queue_size, queue_wait_ms,
        inline_max_names), their one home; inline_max_names 0 runs every batch on the worker thread."""
        self.predictor = predictor
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_ms / 1000
        self.queue_size = queue_size
        self.queue_wait_s = queue_wait_ms / 1000
        self.inline_max_names = inline_max_names
        # Requests that found the queue full, oldest first, each woken when a batch frees a place
        # (a timed-out one stays here, done, until a wake-up passes over it).
        self._room_waiters: deque[asyncio.Future[None]] = deque()
        self.on_batch = on_batch
        self._queue: asyncio.Queue[_Job | None] | None = None
        # A job taken from the queue that could not join the batch being gathered: the next batch's first.
        self._carried: _Job | None = None
        self._loop_task: asyncio.Task[None] | None = None
        # One thread: the network is not re-entrant-safe to share, and torch already uses every
        # core inside one call. Batches run one at a time, here or on the loop, never both at once.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nameorigin-model")
        self._accepting = False
        # Whether the last batch held more than one request: the sign of load that makes waiting pay.
        # Waiting every time halves a lone connection's rate, never waiting loses under load
        # (docs/benchmarks.md); this keeps both. A new server assumes load until a lone batch shows otherwise.
        self._last_batch_had_company = True
        self._drain_rate: float | None = None  # requests answered per second of model time, smoothed

    @property
    def queue_depth(self) -> int:
        return self._queue.qsize() if self._queue is not None else 0

    @property
    def queue_full(self) -> bool:
        return self._queue is not None and self._queue.full()

    async def wait_for_room(self, timeout_s: float | None = None) -> bool:
        """Whether the queue has a place, waiting up to `timeout_s` (default `queue_wait_s`) for one.

        A request that finds the queue full parks here, which costs the event loop nothing, instead
        of being refused at once: clients that retry the instant they are refused would otherwise
        spin the loop with refusals and starve the model of the CPU it needs to drain the queue."""
        if not self.queue_full:
            return True
        timeout_s = self.queue_wait_s if timeout_s is None else timeout_s
        if timeout_s <= 0 or not self._accepting:
            return False
        waiter = asyncio.get_running_loop().create_future()
        self._room_waiters.append(waiter)
        try:
            async with asyncio.timeout(timeout_s):
                await waiter
        except TimeoutError:
            pass
        return not self.queue_full

    def _wake_room_waiters(self) -> None:
        """Wake as many parked requests, oldest first, as the queue has free places (all when stopping:
        they learn at once that the batcher is closed)."""
        free = self.queue_size - self.queue_depth if self._accepting else len(self._room_waiters)
        while free > 0 and self._room_waiters:
            waiter = self._room_waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                free -= 1

    def retry_after_s(self) -> int:
        """Seconds a shed client should wait: drawn from 1..max(RETRY_AFTER_SPREAD_S, twice the time the
        queue takes to drain at the measured rate), so retries spread out instead of returning at once."""
        drain_s = self.queue_size / self._drain_rate if self._drain_rate else 0.0
        return random.randint(1, max(RETRY_AFTER_SPREAD_S, math.ceil(2 * drain_s)))

    async def start(self) -> None:
        """Start the batching loop on the running event loop."""
        self._queue = asyncio.Queue(maxsize=self.queue_size)
        self._loop_task = asyncio.create_task(self._run(), name="nameorigin-batcher")
        self._accepting = True

    async def run_directly(self, names: list[str], query: RankQuery) -> RankedNames:
        """One model call on the worker thread, bypassing the queue (warm-up uses this)."""
        loop = asyncio.get_running_loop()
        return (await loop.run_in_executor(self._executor, self.predictor.rank_requests, [(names, query)]))[0]

    def swap_predictor(self, predictor: Predictor) -> None:
        """Serve `predictor` from the next batch on; a batch already in the model finishes on the old one.

        The one place a hot reload changes the model: the loop reads `self.predictor` once per batch,
        on the event loop, so no batch ever mixes two models."""
        self.predictor = predictor

    async def classify(self, names: list[str], query: RankQuery) -> RankedNames:
        """Answers for `names` (already validated) under `query`, one row per name in input order."""
        return (await self.answer(names, query)).ranked

    async def answer(self, names: list[str], query: RankQuery, client_gone: ClientGone | None = None) -> Answer:
        """Like `classify`, with the predictor that answered (its model id and labels shape the reply).
        A request for explanations, or of many parts, runs in chunks (module docstring); `client_gone`,
        asked before each chunk after the first, stops it with ClientGoneError."""
        chunks = explain_chunks(names, EXPLAIN_CHUNK_COST) if query.explain else plain_chunks(names, PLAIN_CHUNK_PARTS)
        if len(chunks) == 1:
            return await self._answer_one(names, query)
        answers = []
        for index, chunk in enumerate(chunks):
            if index and client_gone is not None and await client_gone():
                raise ClientGoneError(f"the client left after {index} of {len(chunks)} chunks")
            answers.append(await self._answer_one(chunk, query))
        for round_ in range(EXPLAIN_REASK_ROUNDS + 1):
            serving = self.predictor
            stale = [index for index, answer in enumerate(answers) if answer.predictor is not serving]
            if not stale:
                columns = zip(*(answer.ranked for answer in answers), strict=True)
                merged = RankedNames._make(list(itertools.chain.from_iterable(column)) for column in columns)
                return Answer(merged, serving)
            if round_ == EXPLAIN_REASK_ROUNDS:
                break
            for index in stale:
                if client_gone is not None and await client_gone():
                    raise ClientGoneError("the client left while chunks were asked again after a reload")
                answers[index] = await self._answer_one(chunks[index], query)
        raise BatcherClosedError("the model was swapped again and again while the request was answered")

    async def _answer_one(self, names: list[str], query: RankQuery) -> Answer:
        """One job through the queue: its names are answered in one model call, with others'."""
        if not self._accepting or self._queue is None:
            raise BatcherClosedError("the model is not accepting requests (starting up or shutting down)")
        loop = asyncio.get_running_loop()
        job = _Job(names, query, loop.create_future())
        deadline = loop.time() + self.queue_wait_s
        while True:
            try:
                self._queue.put_nowait(job)
                break
            except asyncio.QueueFull:
                # Another request may take the place this one was woken for: wait again, to one deadline.
                has_room = await self.wait_for_room(deadline - loop.time())
                if not self._accepting:
                    raise BatcherClosedError("the model is not accepting requests (shutting down)") from None
                if not has_room:
                    raise QueueFullError(f"{self.queue_size} requests are already waiting for the model") from None
        return await job.future

    async def stop(self) -> None:
        """Refuse new requests, answer every queued one, then stop the loop and the worker thread."""
        self._accepting = False
        self._wake_room_waiters()
        if self._queue is not None and self._loop_task is not None:
            await self._queue.put(None)  # after every job already queued: FIFO drains them first
            await self._loop_task
        self._executor.shutdown(wait=True)

    async def _run(self) -> None:
        assert self._queue is not None
        while True:
            first, self._carried = self._carried or await self._queue.get(), None
            if first is None:
                return
            batch, stop_seen = await self._gather(first)
            self._wake_room_waiters()
            self._last_batch_had_company = len(batch) > 1
            await self._run_batch(batch)
            if stop_seen:
                return

    async def _gather(self, first: _Job) -> tuple[list[_Job], bool]:
        """Jobs that join `first` within the wait bound; True when the stop marker was met. A batch holds
        at most one request for explanations: each is a chunk of about EXPLAIN_CHUNK_COST, and twenty
        of them in one model call held other clients for twenty chunks' time."""
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        batch, num_names = [first], len(first.names)
        deadline = loop.time() + self.max_wait_s
        while num_names < self.max_batch_size:
            try:
                if self._queue.empty():
                    if num_names >= FULL_ENOUGH_NAMES or not self._last_batch_had_company:
                        break
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        break
                    job = await asyncio.wait_for(self._queue.get(), remaining)
                else:
                    job = self._queue.get_nowait()
            except TimeoutError:
                break
            if job is None:
                return batch, True
            if job.query.explain and any(member.query.explain for member in batch):
                self._carried = job
                break
            batch.append(job)
            num_names += len(job.names)
        return batch, False

    async def _run_batch(self, batch: list[_Job]) -> None:
        live = [job for job in batch if not job.future.done()]  # a client that left is cancelled
        if not live:
            return
        started = time.perf_counter()
        try:
            answers, predictor = await self._predict(live)
        except Exception as error:
            if len(live) == 1:
                logger.exception("model call failed")
                _settle(live[0], error=error)
                return
            logger.warning("model call failed for a batch of %d requests; retrying each alone", len(live))
            for job in live:
                try:
                    job_answers, job_predictor = await self._predict([job])
                    _settle(job, Answer(job_answers[0], job_predictor))
                except Exception as job_error:
                    logger.exception("model call failed")
                    _settle(job, error=job_error)
            return
        seconds = time.perf_counter() - started
        rate = len(live) / max(seconds, 1e-6)
        self._drain_rate = (
            rate if self._drain_rate is None else self._drain_rate + DRAIN_RATE_SMOOTHING * (rate - self._drain_rate)
        )
        if self.on_batch is not None:
            self.on_batch(len(live), sum(len(job.names) for job in live), seconds)
        for job, own in zip(live, answers, strict=True):
            _settle(job, Answer(own, predictor))

    def _runs_inline(self, jobs: list[_Job]) -> bool:
        """Whether a batch runs on the event loop: a lone request (no company: nobody else is waiting
        on the loop) of at most `inline_max_names` names, of INLINE_CHARS_PER_NAME characters a name
        on average, that asks for no explanations (which score every name once per character)."""
        if len(jobs) != 1 or jobs[0].query.explain or len(jobs[0].names) > self.inline_max_names:
            return False
        return sum(map(len, jobs[0].names)) <= INLINE_CHARS_PER_NAME * self.inline_max_names

    async def _predict(self, jobs: list[_Job]) -> tuple[list[RankedNames], Predictor]:
        """One model call for all names of `jobs` (each job its own rows under its own query), and the
        predictor that made it."""
        requests = [(job.names, job.query) for job in jobs]
        predictor = self.predictor  # read once: a swap during the call applies to the next batch
        if self._runs_inline(jobs):
            # Small: in place (see the module docstring). Never on a second team of threads, even when
            # its full names make 512 readings or more: only the model thread takes large-call threads.
            with on_process_threads():
                ranked = predictor.rank_requests(requests)
            await asyncio.sleep(0)  # the loop serves others before another batch (or a retry) can run here
            return ranked, predictor
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, predictor.rank_requests, requests), predictor


def _settle(job: _Job, answers: Answer | None = None, error: BaseException | None = None) -> None:
    if job.future.done():  # the client went away while the model ran
        return
    if error is not None:
        job.future.set_exception(error)
    else:
        assert answers is not None  # every caller passes answers or an error
        job.future.set_result(answers)
