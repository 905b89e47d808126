"""Micro-batching: each request gets its own answer, concurrent requests share model calls, the queue is bounded."""

from __future__ import annotations

import asyncio
import itertools
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

import app.batching as batching_module
from app.batching import (
    FULL_ENOUGH_NAMES,
    BatcherClosedError,
    ClientGoneError,
    MicroBatcher,
    QueueFullError,
    explain_chunks,
    plain_chunks,
)
from app.settings import Settings
from model.encoder import NameEncodingError
from model.predictor import NamePrediction, Predictor, RankedNames, RankQuery


def settings_batcher(predictor, **changes) -> MicroBatcher:
    """A batcher with the service's default limits (Settings), changed where a test needs it."""
    defaults = Settings()
    limits = {
        "max_batch_size": defaults.max_batch_size,
        "max_wait_ms": defaults.max_batch_wait_ms,
        "queue_size": defaults.queue_size,
        "queue_wait_ms": defaults.queue_wait_ms,
        "inline_max_names": defaults.inline_max_names,
    }
    return MicroBatcher(predictor, **{**limits, **changes})


# 50 distinct names of different lengths, so a misrouted answer shows up as different probabilities.
DISTINCT_NAMES = [
    f"{first}{second}{'s' * (index % 4)}"
    for index, (first, second) in enumerate(
        itertools.product(
            ["Ka", "Lo", "Mi", "No", "Pe", "Ru", "Sa", "To", "Vi", "Ze"], ["ber", "lin", "mov", "nez", "ski"]
        )
    )
]


@pytest.fixture
def tiny_predictor(tiny_checkpoint) -> Predictor:
    return Predictor.from_path(tiny_checkpoint, device="cpu")


# What the fake models answer: a name's one label id is its place in TAGS, so a test can tell whose answer came back.
TAGS = ["a", "b", "c", "d", "good", "bad", "fine", "First", "Second", "Third"]


def tagged(names: list[str], label_of=TAGS.index) -> RankedNames:
    size = len(names)
    return RankedNames(
        [[label_of(name)] for name in names],
        [[1.0]] * size,
        [[0.0]] * size,
        [None] * size,
        list(names),
        ["Latin"] * size,
        [()] * size,
    )


def tags(ranked: RankedNames) -> list[str]:
    return [TAGS[row[0]] for row in ranked.label_ids]


class BlockingPredictor:
    """Holds the model thread until released, so the test controls what is queued behind it (its
    batchers send every batch to the thread: inline_max_names=0, as a held loop could queue nothing)."""

    def __init__(self, answer: Callable[[list[str]], RankedNames] = tagged) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.answer = answer

    def rank_requests(self, requests: list[tuple[list[str], RankQuery]]) -> list[RankedNames]:
        self.entered.set()
        assert self.release.wait(10), "test never released the model"
        return [self.answer(names) for names, _ in requests]


class PickyPredictor:
    """Refuses any batch containing "bad", like a model given a query it cannot honour."""

    def rank_requests(self, requests: list[tuple[list[str], RankQuery]]) -> list[RankedNames]:
        if any("bad" in names for names, _ in requests):
            raise NameEncodingError("cannot read 'bad'")
        return [tagged(names) for names, _ in requests]


def assert_same_predictions(answer: RankedNames, expected: NamePrediction, labels: tuple[str, ...]) -> None:
    """A one-row answer from the batcher against the predictor's own answer for that name."""
    [row_ids], [row_probs] = answer.label_ids, answer.probabilities
    assert [labels[label_id] for label_id in row_ids] == [p.label for p in expected.predictions]
    assert row_probs == pytest.approx([p.probability for p in expected.predictions], abs=1e-5)


def test_batcher_routes_each_of_50_concurrent_answers_to_its_own_request(tiny_predictor):
    batch_sizes: list[int] = []

    async def scenario() -> list[RankedNames]:
        batcher = settings_batcher(
            tiny_predictor, max_wait_ms=20, on_batch=lambda requests, names, s: batch_sizes.append(requests)
        )
        await batcher.start()
        try:
            return await asyncio.gather(*(batcher.classify([name], RankQuery(3)) for name in DISTINCT_NAMES))
        finally:
            await batcher.stop()

    answers = asyncio.run(scenario())
    expected = [tiny_predictor.predict([name], 3)[0] for name in DISTINCT_NAMES]  # one at a time, unbatched
    assert len({round(prediction.predictions[0].probability, 5) for prediction in expected}) > 40  # names differ
    for answer, direct in zip(answers, expected, strict=True):
        assert_same_predictions(answer, direct, tiny_predictor.labels)
    assert sum(batch_sizes) == len(DISTINCT_NAMES)
    assert max(batch_sizes) > 1  # requests were coalesced


def test_batcher_waits_for_company_only_after_a_batch_that_had_company_and_never_when_full_enough(tiny_predictor):
    wait_s = 0.3

    async def timed(batcher, names) -> float:
        started = time.perf_counter()
        await batcher.classify(names, RankQuery(1))
        return time.perf_counter() - started

    async def scenario() -> dict[str, float]:
        batcher = settings_batcher(tiny_predictor, max_wait_ms=wait_s * 1000)
        await batcher.start()
        try:
            seconds = {"first lone": await timed(batcher, DISTINCT_NAMES[:1])}  # nothing known yet: assume load
            seconds["lone after lone"] = await timed(batcher, DISTINCT_NAMES[3:4])
            await asyncio.gather(
                batcher.classify(["Ka"], RankQuery(1)), batcher.classify(["Lo"], RankQuery(1))
            )  # one batch, with company
            seconds["lone after company"] = await timed(batcher, DISTINCT_NAMES[1:2])
            seconds["lone after lone again"] = await timed(batcher, DISTINCT_NAMES[2:3])
            await asyncio.gather(batcher.classify(["Ka"], RankQuery(1)), batcher.classify(["Lo"], RankQuery(1)))
            seconds["full enough after company"] = await timed(batcher, (DISTINCT_NAMES * 2)[:FULL_ENOUGH_NAMES])
            return seconds
        finally:
            await batcher.stop()

    seconds = asyncio.run(scenario())
    assert seconds["first lone"] >= wait_s * 0.9  # a new batcher assumes load: waits for others to join
    assert seconds["lone after company"] >= wait_s * 0.9  # under load, a small request waits for others to join
    assert seconds["lone after lone"] < wait_s / 2  # requests that do not overlap run at once
    assert seconds["lone after lone again"] < wait_s / 2
    assert seconds["full enough after company"] < wait_s / 2  # a batch already big enough runs at once


def test_batcher_gives_each_request_its_own_top_k_within_one_batch(tiny_predictor):
    async def scenario():
        batcher = settings_batcher(tiny_predictor, max_wait_ms=50)
        await batcher.start()
        try:
            return await asyncio.gather(
                batcher.classify(["Hinton"], RankQuery(1)), batcher.classify(["Hinton", "Rossi"], RankQuery(3))
            )
        finally:
            await batcher.stop()

    top_one, top_three = asyncio.run(scenario())
    assert [len(row) for row in top_one.label_ids] == [1] and [len(row) for row in top_three.label_ids] == [3, 3]
    assert top_one.label_ids[0] == top_three.label_ids[0][:1]
    assert top_one.probabilities[0] == top_three.probabilities[0][:1]


def test_batcher_gives_each_request_its_own_prior_and_floor_within_one_batch(tiny_predictor):
    queries = [RankQuery(3), RankQuery(3, {"A": 1, "C": 1}), RankQuery(3, "dataset", 1.0)]

    async def scenario():
        batcher = settings_batcher(tiny_predictor, max_wait_ms=50)
        await batcher.start()
        try:
            return await asyncio.gather(*(batcher.classify(["Hinton"], query) for query in queries))
        finally:
            await batcher.stop()

    plain, two_labels, floored = asyncio.run(scenario())
    assert [len(row) for row in plain.label_ids] == [3] and plain.reasons == [None]
    assert {tiny_predictor.labels[i] for i in two_labels.label_ids[0]} == {"A", "C"}
    assert floored.reasons == ["low-confidence"] and floored.label_ids == plain.label_ids


def test_batcher_queue_full_raises_queue_full_error():
    model = BlockingPredictor()

    async def scenario():
        batcher = settings_batcher(model, max_wait_ms=0, queue_size=2, queue_wait_ms=0, inline_max_names=0)
        await batcher.start()
        first = asyncio.create_task(batcher.classify(["a"], RankQuery(1)))
        assert await asyncio.to_thread(model.entered.wait, 5)  # the model is busy with `first`
        queued = [asyncio.create_task(batcher.classify([name], RankQuery(1))) for name in ("b", "c")]
        await asyncio.sleep(0)  # both are now in the queue, which holds 2
        with pytest.raises(QueueFullError):
            await batcher.classify(["d"], RankQuery(1))
        model.release.set()
        answers = await asyncio.gather(first, *queued)
        await batcher.stop()
        return answers

    answers = asyncio.run(scenario())
    assert [tags(answer) for answer in answers] == [["a"], ["b"], ["c"]]


async def full_queue_of_one(model: BlockingPredictor, queue_wait_ms: float):
    """A started batcher with a queue of 1, the model held on "a" and "b" queued behind it: full.
    Returns the batcher and both requests' tasks; release the model to let them finish."""
    batcher = settings_batcher(model, max_wait_ms=0, queue_size=1, queue_wait_ms=queue_wait_ms, inline_max_names=0)
    await batcher.start()
    first = asyncio.create_task(batcher.classify(["a"], RankQuery(1)))
    assert await asyncio.to_thread(model.entered.wait, 5)
    queued = asyncio.create_task(batcher.classify(["b"], RankQuery(1)))
    await asyncio.sleep(0)
    return batcher, first, queued


def test_a_request_that_finds_the_queue_full_waits_for_a_place_and_is_answered():
    model = BlockingPredictor()

    async def scenario():
        batcher, first, queued = await full_queue_of_one(model, queue_wait_ms=10_000)
        assert batcher.queue_full
        parked = asyncio.create_task(batcher.classify(["c"], RankQuery(1)))
        await asyncio.sleep(0.2)
        assert not parked.done()  # neither refused nor answered: waiting for a place
        model.release.set()
        answers = await asyncio.gather(first, queued, parked)
        await batcher.stop()
        return answers

    assert [tags(answer) for answer in asyncio.run(scenario())] == [["a"], ["b"], ["c"]]


def test_a_request_still_without_a_place_after_queue_wait_ms_gets_queue_full_error():
    model = BlockingPredictor()

    async def scenario():
        batcher, first, queued = await full_queue_of_one(model, queue_wait_ms=100)
        started = time.monotonic()
        with pytest.raises(QueueFullError):
            await batcher.classify(["c"], RankQuery(1))
        waited = time.monotonic() - started
        model.release.set()
        await asyncio.gather(first, queued)
        await batcher.stop()
        return waited

    assert 0.09 <= asyncio.run(scenario()) < 5


def test_stopping_wakes_a_parked_request_with_batcher_closed_error():
    model = BlockingPredictor()

    async def scenario():
        batcher, first, queued = await full_queue_of_one(model, queue_wait_ms=10_000)
        parked = asyncio.create_task(batcher.classify(["c"], RankQuery(1)))
        await asyncio.sleep(0.05)
        stopping = asyncio.create_task(batcher.stop())
        await asyncio.sleep(0)
        with pytest.raises(BatcherClosedError):
            await asyncio.wait_for(parked, 5)  # at once, not after its 10 s wait
        model.release.set()
        await asyncio.gather(first, queued, stopping)

    asyncio.run(scenario())


def test_batcher_stop_answers_every_queued_request_then_refuses_new_ones(tiny_predictor):
    async def scenario():
        batcher = settings_batcher(tiny_predictor, max_wait_ms=0, max_batch_size=2)
        await batcher.start()
        pending = [asyncio.create_task(batcher.classify([name], RankQuery(2))) for name in DISTINCT_NAMES[:10]]
        await asyncio.sleep(0)  # all ten are queued
        await batcher.stop()
        assert all(task.done() and not task.cancelled() for task in pending)
        with pytest.raises(BatcherClosedError):
            await batcher.classify(["late"], RankQuery(1))
        return [task.result() for task in pending]

    answers = asyncio.run(scenario())
    for name, answer in zip(DISTINCT_NAMES[:10], answers, strict=True):
        assert_same_predictions(answer, tiny_predictor.predict([name], 2)[0], tiny_predictor.labels)


class ThreadRecordingPredictor:
    """Answers like the fake models and notes which thread each model call ran on."""

    def __init__(self) -> None:
        self.threads: list[int] = []

    def rank_requests(self, requests: list[tuple[list[str], RankQuery]]) -> list[RankedNames]:
        self.threads.append(threading.get_ident())
        return [tagged(names, label_of=lambda name: TAGS.index(name) if name in TAGS else 0) for names, _ in requests]


def test_only_a_lone_small_request_without_explanations_runs_on_the_event_loop():
    model = ThreadRecordingPredictor()
    # inline_max_names 3: up to 3 names and 3 * INLINE_CHARS_PER_NAME = 24 characters run in place
    calls = [
        (["a", "b", "c"], RankQuery(1)),  # 3 names, 3 characters: in place
        (["a", "b", "c", "d"], RankQuery(1)),  # 4 names: the thread
        (["good"], RankQuery(1)),  # in place
        (["good"], RankQuery(1, explain=True)),  # one name, but explained: the thread
        (["First", "Second", "Third" * 3], RankQuery(1)),  # 3 names, 26 characters: the thread
        (["First", "Second", "Third"], RankQuery(1)),  # 16 characters: in place
    ]

    async def scenario() -> tuple[int, list[RankedNames]]:
        batcher = settings_batcher(model, max_wait_ms=50, inline_max_names=3)
        await batcher.start()
        try:
            answers = [await batcher.classify(names, query) for names, query in calls]
            together = await asyncio.gather(
                batcher.classify(["a"], RankQuery(1)), batcher.classify(["b"], RankQuery(1))
            )
            return threading.get_ident(), answers + list(together)
        finally:
            await batcher.stop()

    loop_thread, answers = asyncio.run(scenario())
    assert [tags(answer) for answer in answers[:3]] == [["a", "b", "c"], ["a", "b", "c", "d"], ["good"]]
    assert [tags(answer) for answer in answers[-2:]] == [["a"], ["b"]]
    # the last call: two requests in one batch (company: a loaded server) go to the thread
    assert [thread == loop_thread for thread in model.threads] == [True, False, True, False, False, True, False]


def test_the_event_loop_serves_others_between_two_batches_run_on_it():
    ticks = 0
    ticks_seen: list[int] = []

    class CountingPredictor:
        def rank_requests(self, requests):
            ticks_seen.append(ticks)
            return [tagged(names) for names, _ in requests]

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    async def scenario() -> None:
        # max_batch_size 2 below inline_max_names: a burst makes several small batches in a row
        batcher = settings_batcher(CountingPredictor(), max_wait_ms=0, max_batch_size=2, inline_max_names=8)
        await batcher.start()
        ticking = asyncio.create_task(ticker())
        try:
            await asyncio.gather(*(batcher.classify(["a", "b"], RankQuery(1)) for _ in range(6)))
        finally:
            ticking.cancel()
            await batcher.stop()

    asyncio.run(scenario())
    assert len(ticks_seen) == 6
    assert all(later > earlier for earlier, later in itertools.pairwise(ticks_seen))  # a tick between each two


def test_explain_chunks_cut_names_in_order_by_their_length_squared():
    names = ["abc", "de", "fghij", "k" * 10, "l"]  # weights 9, 4, 25, 100, 1
    assert explain_chunks(names, 40) == [["abc", "de", "fghij"], ["k" * 10], ["l"]]  # 100 alone: over the budget
    assert explain_chunks(names, 1000) == [names]
    assert explain_chunks(["a"], 0) == [["a"]]  # never an empty chunk
    # weighed as read: ﷺ is one code point and 18 letters (a review's ligature names made 4 chunks of 250)
    assert explain_chunks(["\ufdfa\ufdfa\ufdfaabc"] * 4, 3 * 57**2) == [
        ["\ufdfa\ufdfa\ufdfaabc"] * 3,
        ["\ufdfa\ufdfa\ufdfaabc"],
    ]


async def chunked_beside_a_lone_request(model, names: list[str], query: RankQuery) -> tuple[RankedNames, RankedNames]:
    """`names` under `query` (answered in chunks), and a lone "good" sent once the first chunk is queued."""
    batcher = settings_batcher(model, max_wait_ms=0, inline_max_names=0)
    await batcher.start()
    try:
        chunked = asyncio.create_task(batcher.classify(names, query))
        await asyncio.sleep(0)  # the first chunk is queued
        lone = await batcher.classify(["good"], RankQuery(1))
        return await chunked, lone
    finally:
        await batcher.stop()


def test_plain_chunks_cut_only_requests_of_many_parts():
    assert plain_chunks(["Ann Lee"] * 1000, 2048) == [["Ann Lee"] * 1000]  # 1000 full names: one call
    assert plain_chunks(["a b c", "d e", "f", "g h i j", "k"], 5) == [["a b c", "d e"], ["f", "g h i j"], ["k"]]
    assert plain_chunks(["a b c d e f"], 2) == [["a b c d e f"]]  # never an empty chunk
    # any separator the reader splits on: the ideographic space of Japanese full names, tabs, the
    # katakana middle dot, commas (only ASCII spaces were counted; symbols, which the reader makes
    # spaces too, are not counted: an at-a-glance count, for every request)
    for separator in ("\u3000", "\t", "\xa0", "\u30fb", ", "):
        assert len(plain_chunks([separator.join(["山田"] * 21)] * 100, 2048)) == 2, repr(separator)
    assert len(plain_chunks(["山田太郎"] * 2048, 2048)) == 1


def test_a_request_of_many_parts_runs_in_chunks_with_other_requests_answered_between_them(monkeypatch):
    """1000 names of 21 Han words each took 7-16 s in one model call and held every other client as long."""
    monkeypatch.setattr(batching_module, "PLAIN_CHUNK_PARTS", 4)

    class FirstWordTags(CallRecordingPredictor):  # each full name tagged by its first word
        def rank_requests(self, requests):
            self.calls.append([name for names, _ in requests for name in names])
            return [tagged(names, lambda name: TAGS.index(name.split()[0])) for names, _ in requests]

    model = FirstWordTags()

    many, lone = asyncio.run(chunked_beside_a_lone_request(model, ["a b c", "d e", "First g h"], RankQuery(1)))
    assert tags(many) == ["a", "d", "First"] and tags(lone) == ["good"]
    assert [name for call in model.calls for name in call if name != "good"] == ["a b c", "d e", "First g h"]
    assert len(model.calls) >= 3 and any("good" in call for call in model.calls[:-1])


def test_a_batch_holds_at_most_one_explained_request(monkeypatch):
    """Chunks of twenty explained requests were gathered into one model call, twenty chunks' time."""
    model = CallRecordingPredictor()
    explained_per_call: list[int] = []

    class Counting(CallRecordingPredictor):
        def rank_requests(self, requests):
            explained_per_call.append(sum(query.explain for _, query in requests))
            return model.rank_requests(requests)

    async def scenario() -> list[RankedNames]:
        batcher = settings_batcher(Counting(), max_wait_ms=20, inline_max_names=0)
        await batcher.start()
        try:
            explained = [batcher.classify([tag], RankQuery(1, explain=True)) for tag in TAGS]
            plain = [batcher.classify([tag], RankQuery(1)) for tag in TAGS]
            return await asyncio.gather(*explained, *plain)
        finally:
            await batcher.stop()

    answers = asyncio.run(scenario())
    assert [tags(answer) for answer in answers] == [[tag] for tag in TAGS * 2]
    assert max(explained_per_call) == 1 and sum(explained_per_call) == len(TAGS)
    assert len(explained_per_call) < 2 * len(TAGS)  # plain requests still share calls


class CallRecordingPredictor:
    """Answers with tags and records each model call's names, to show what ran in which call."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def rank_requests(self, requests):
        self.calls.append([name for names, _ in requests for name in names])
        return [tagged(names) for names, _ in requests]


def test_an_explained_request_runs_in_chunks_with_other_requests_answered_between_them(monkeypatch):
    """One explained request of 1000 long full names held every other client for 20-38 s; now each
    chunk is queued after what arrived meanwhile."""
    monkeypatch.setattr(batching_module, "EXPLAIN_CHUNK_COST", 50)  # "First", "Second": 25 + 36: a chunk each
    model = CallRecordingPredictor()

    explained, plain = asyncio.run(
        chunked_beside_a_lone_request(model, ["First", "Second", "Third"], RankQuery(1, explain=True))
    )
    assert tags(explained) == ["First", "Second", "Third"] and tags(plain) == ["good"]
    assert [name for call in model.calls for name in call if name != "good"] == ["First", "Second", "Third"]
    assert len(model.calls) >= 3 and model.calls[-1] == ["Third"]  # a call per chunk, "good" in one before the last
    assert any("good" in call for call in model.calls[:-1])  # not kept waiting for the whole request


def test_an_explained_request_in_chunks_answers_as_one_call_does(tiny_predictor, monkeypatch):
    monkeypatch.setattr(batching_module, "EXPLAIN_CHUNK_COST", 200)
    names = DISTINCT_NAMES[:12]
    query = RankQuery(3, explain=True)
    assert len(explain_chunks(names, 200)) > 2

    async def scenario() -> RankedNames:
        batcher = settings_batcher(tiny_predictor)
        await batcher.start()
        try:
            return await batcher.classify(names, query)
        finally:
            await batcher.stop()

    chunked, whole = asyncio.run(scenario()), tiny_predictor.rank_requests([(names, query)])[0]
    assert chunked.label_ids == whole.label_ids and chunked.reasons == whole.reasons
    assert chunked.probabilities == [pytest.approx(row, abs=1e-6) for row in whole.probabilities]
    assert len(chunked.explanations) == len(names)
    for ours, theirs in zip(chunked.explanations, whole.explanations, strict=True):
        assert ours.fragments == theirs.fragments and ours.label_ids == theirs.label_ids


def test_an_explained_request_stops_between_chunks_once_its_client_has_gone(monkeypatch):
    monkeypatch.setattr(batching_module, "EXPLAIN_CHUNK_COST", 30)
    model = CallRecordingPredictor()
    asked: list[int] = []

    async def gone_after_one() -> bool:
        asked.append(len(model.calls))
        return len(model.calls) >= 1

    async def scenario() -> None:
        batcher = settings_batcher(model, inline_max_names=0)
        await batcher.start()
        try:
            await batcher.answer(["First", "Second", "Third"], RankQuery(1, explain=True), client_gone=gone_after_one)
        finally:
            await batcher.stop()

    with pytest.raises(ClientGoneError):
        asyncio.run(scenario())
    assert model.calls == [["First"]] and asked == [1]  # never asked before the first chunk


def test_chunks_that_a_hot_reload_answered_with_the_old_model_are_asked_again(monkeypatch):
    monkeypatch.setattr(batching_module, "EXPLAIN_CHUNK_COST", 30)

    class Swapping(CallRecordingPredictor):
        def __init__(self, batcher_of, after: int) -> None:
            super().__init__()
            self.batcher_of, self.after = batcher_of, after

        def rank_requests(self, requests):
            answers = super().rank_requests(requests)
            if len(self.calls) == self.after:
                self.batcher_of().swap_predictor(new)
            return answers

    batcher_box: list[MicroBatcher] = []
    old, new = Swapping(lambda: batcher_box[0], after=2), CallRecordingPredictor()

    async def scenario():
        batcher = settings_batcher(old, inline_max_names=0)
        batcher_box.append(batcher)
        await batcher.start()
        try:
            return await batcher.answer(["First", "Second", "Third"], RankQuery(1, explain=True))
        finally:
            await batcher.stop()

    answer = asyncio.run(scenario())
    assert answer.predictor is new and tags(answer.ranked) == ["First", "Second", "Third"]
    assert old.calls == [["First"], ["Second"]] and new.calls == [["Third"], ["First"], ["Second"]]


@pytest.mark.parametrize("inline_max_names", [0, 256])
def test_batcher_failure_of_one_request_does_not_fail_the_others_in_its_batch(inline_max_names):
    async def scenario():
        batcher = settings_batcher(PickyPredictor(), max_wait_ms=50, inline_max_names=inline_max_names)
        await batcher.start()
        try:
            return await asyncio.gather(
                batcher.classify(["good"], RankQuery(1)),
                batcher.classify(["bad"], RankQuery(1)),
                batcher.classify(["fine"], RankQuery(1)),
                return_exceptions=True,
            )
        finally:
            await batcher.stop()

    good, bad, fine = asyncio.run(scenario())
    assert tags(good) == ["good"] and tags(fine) == ["fine"]
    assert isinstance(bad, NameEncodingError)


def test_batcher_keeps_serving_after_a_waiting_client_goes_away(tiny_predictor):
    async def scenario():
        batcher = settings_batcher(tiny_predictor, max_wait_ms=20)
        await batcher.start()
        try:
            gone = asyncio.create_task(batcher.classify(["Gone"], RankQuery(1)))
            await asyncio.sleep(0)
            gone.cancel()
            return await batcher.classify(["Stays"], RankQuery(1))
        finally:
            await batcher.stop()

    assert_same_predictions(asyncio.run(scenario()), tiny_predictor.predict(["Stays"], 1)[0], tiny_predictor.labels)


# --- through HTTP ---------------------------------------------------------------------------------


def metric_value(metrics_text: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} (\S+)$", metrics_text, re.MULTILINE)
    assert match, f"{name} not in /metrics"
    return float(match.group(1))


@pytest.mark.timeout(60)
def test_classify_concurrent_http_requests_get_own_answers_and_are_coalesced(make_client, tiny_checkpoint):
    client = make_client(max_batch_wait_ms=30)
    with ThreadPoolExecutor(max_workers=16) as pool:
        responses = list(pool.map(lambda name: client.post("/classify", json={"name": name}), DISTINCT_NAMES))
    predictor = Predictor.from_path(tiny_checkpoint, device="cpu")
    for name, response in zip(DISTINCT_NAMES, responses, strict=True):
        assert response.status_code == 200
        body = response.json()
        assert body["name"] == name
        [direct] = predictor.predict([name], 3)
        assert [p["probability"] for p in body["predictions"]] == pytest.approx(
            [p.probability for p in direct.predictions], abs=1e-5
        )
    metrics = client.get("/metrics").text
    assert metric_value(metrics, "nameorigin_batch_requests_sum") == len(DISTINCT_NAMES)
    assert metric_value(metrics, "nameorigin_batch_requests_count") < len(DISTINCT_NAMES)  # batches held > 1


def fill_a_queue_of_one(client, monkeypatch, pool):
    """Hold the model on "First" and queue "Second" behind it, so a queue of 1 is full; returns the
    held model (release it) and both requests' futures."""
    model = BlockingPredictor(answer=lambda names: tagged(names, label_of=lambda name: 0))
    monkeypatch.setattr(Predictor, "rank_requests", lambda self, requests: model.rank_requests(requests))
    in_model = pool.submit(client.post, "/classify", json={"name": "First"})
    assert model.entered.wait(10)
    queued = pool.submit(client.post, "/classify", json={"name": "Second"})
    deadline = time.monotonic() + 10
    while metric_value(client.get("/metrics").text, "nameorigin_queue_depth") < 1:
        assert time.monotonic() < deadline, "second request never queued"
        time.sleep(0.01)
    return model, in_model, queued


@pytest.mark.timeout(60)
def test_classify_answers_503_overloaded_when_queue_is_full(make_client, monkeypatch):
    client = make_client(queue_size=1, max_batch_wait_ms=0, queue_wait_ms=0, inline_max_names=0)
    with ThreadPoolExecutor(max_workers=2) as pool:
        model, in_model, queued = fill_a_queue_of_one(client, monkeypatch, pool)
        response = client.post("/classify", json={"name": "Third"})
        # Shed before the body is read: a body that would be a 422 gets the same cheap 503.
        unread = client.post("/classify", content=b'{"name": ', headers={"Content-Type": "application/json"})
        retry_afters = {client.post("/classify", json={"name": "Again"}).headers["Retry-After"] for _ in range(40)}
        model.release.set()
        assert in_model.result().status_code == 200 and queued.result().status_code == 200
    assert response.status_code == 503 and unread.status_code == 503
    assert response.json()["error"] == "overloaded" and response.json()["errors"]
    assert 1 <= int(response.headers["Retry-After"]) <= 3
    assert len(retry_afters) > 1  # spread, so shed clients do not all come back in the same second
    # counted under the route it was meant for (answered before routing, it was "unmatched")
    shed = metric_value(
        client.get("/metrics").text, 'nameorigin_http_requests_total{method="POST",path="/classify",status="503"}'
    )
    assert shed == 42


@pytest.mark.timeout(60)
def test_classify_waits_for_a_place_in_a_full_queue_instead_of_refusing_at_once(make_client, monkeypatch):
    client = make_client(queue_size=1, max_batch_wait_ms=0, queue_wait_ms=10_000, inline_max_names=0)
    with ThreadPoolExecutor(max_workers=3) as pool:
        model, in_model, queued = fill_a_queue_of_one(client, monkeypatch, pool)
        parked = pool.submit(client.post, "/classify", json={"name": "Third"})
        time.sleep(0.3)
        assert not parked.done()  # not refused: waiting for the place the next batch frees
        model.release.set()
        statuses = [future.result().status_code for future in (in_model, queued, parked)]
    assert statuses == [200, 200, 200]
