"""Large model calls on more torch threads: when they are taken, that answers stay the same, that the
count comes back, how the service picks the count, and that it is set before any tensor work."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import threading
from contextlib import nullcontext

import pytest
import torch

import model.predictor as predictor_module
from app.__main__ import main
from app.batching import MicroBatcher
from app.main import load_predictor
from app.settings import Settings
from model.assets import DEFAULT_CHECKPOINT_PATH
from model.fullname import PARTICLES, SUFFIXES, TITLES
from model.predictor import Predictor, RankQuery
from model.scoring import LARGE_BATCH_MIN_READINGS, intra_op_threads
from training.ood import random_strings


@pytest.fixture
def thread_counts_set(monkeypatch):
    """Every count torch.set_num_threads is called with, in order (the calls still go through)."""
    counts: list[int] = []
    real = torch.set_num_threads

    def recording(count: int) -> None:
        counts.append(count)
        real(count)

    monkeypatch.setattr(torch, "set_num_threads", recording)
    return counts


@pytest.fixture
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _distinct_names(count: int) -> list[str]:
    """Letter strings, each its own reading (most abstain as not-a-name: they still run the network)."""
    names = list(dict.fromkeys(name.lower() for name in random_strings(4 * count, seed=7)))
    assert len(names) >= count
    return names[:count]


def test_a_large_call_runs_on_the_large_count_and_answers_as_on_one(one_thread, thread_counts_set):
    names = _distinct_names(LARGE_BATCH_MIN_READINGS + 40)
    held = Predictor.from_path(DEFAULT_CHECKPOINT_PATH, device="cpu", num_threads=1)
    thread_counts_set.clear()
    expected = held.score(names).log_likelihoods
    assert thread_counts_set == []  # large_batch_threads 0: every call on the process's count
    spread = Predictor.from_path(DEFAULT_CHECKPOINT_PATH, device="cpu", num_threads=1, large_batch_threads=2)
    thread_counts_set.clear()
    answers = spread.score(names).log_likelihoods
    assert thread_counts_set == [2, 1]  # up for the call, back after it
    assert torch.get_num_threads() == 1
    torch.testing.assert_close(answers, expected, atol=1e-6, rtol=0)


def test_a_call_under_the_minimum_keeps_the_count(one_thread, thread_counts_set):
    spread = Predictor.from_path(DEFAULT_CHECKPOINT_PATH, device="cpu", num_threads=1, large_batch_threads=2)
    spread.scorer.small_batch = None  # the torch path, which a large call takes
    thread_counts_set.clear()
    names = _distinct_names(LARGE_BATCH_MIN_READINGS - 1)
    spread.score(names + names)  # repeats are one reading each: still under the minimum
    assert thread_counts_set == []


def test_the_count_comes_back_when_the_call_fails(one_thread):
    with pytest.raises(RuntimeError, match="inside"), intra_op_threads(2):
        assert torch.get_num_threads() == 2
        raise RuntimeError("inside")
    assert torch.get_num_threads() == 1


@pytest.mark.parametrize("count", [-1, 257, True, 2.0, "2"])
def test_predictor_refuses_an_impossible_large_batch_count(count):
    with pytest.raises(ValueError, match=f"large_batch_threads must be an integer from 0 to 256, got {count!r}"):
        Predictor.from_path(DEFAULT_CHECKPOINT_PATH, device="cpu", large_batch_threads=count)


def test_threads_are_held_before_the_checkpoint_is_read(one_thread, monkeypatch):
    """GNU OpenMP slows every team down once a second thread has run torch on several threads, so no
    tensor work may run before the count is set (model.predictor.hold_threads)."""
    torch.set_num_threads(2)
    seen: list[int] = []
    real = predictor_module.load_checkpoint

    def recording(path):
        seen.append(torch.get_num_threads())
        return real(path)

    monkeypatch.setattr(predictor_module, "load_checkpoint", recording)
    Predictor.from_path(DEFAULT_CHECKPOINT_PATH, device="cpu", num_threads=1, large_batch_threads=2)
    assert seen == [1]


@pytest.mark.parametrize(
    ("cores", "workers", "torch_threads", "large_batch_threads", "expected"),
    [
        (2, 1, 1, 0, 2),  # this project's machine, one worker: both cores for a large call
        (2, 2, 1, 0, 1),  # two workers share two cores: one each, as every other call
        (8, 2, 1, 0, 2),  # at most 2, the only count measured
        (16, 1, 1, 0, 2),
        (8, 8, 1, 0, 1),
        (2, 4, 1, 0, 1),  # never fewer than torch_threads
        (2, 1, 4, 0, 4),
        (2, 1, 0, 0, 0),  # torch's own default already runs a thread per core
        (2, 1, 1, 3, 3),  # asked for: taken as it is
    ],
)
def test_settings_share_the_cores_among_the_workers(
    monkeypatch, cores, workers, torch_threads, large_batch_threads, expected
):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cores)))
    settings = Settings(workers=workers, torch_threads=torch_threads, large_batch_threads=large_batch_threads)
    assert settings.threads_for_large_batches() == expected


@pytest.mark.parametrize(("cores", "expected"), [(1, 1), (3, 2)])
def test_without_an_affinity_call_every_core_counts(monkeypatch, cores, expected):
    """macOS has no sched_getaffinity: the rule falls back to the core count rather than failing."""
    monkeypatch.delattr(os, "sched_getaffinity")
    monkeypatch.setattr(os, "cpu_count", lambda: cores)
    assert Settings(workers=1, torch_threads=1, large_batch_threads=0).threads_for_large_batches() == expected


def test_the_service_builds_its_predictor_with_the_settings_count(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    assert load_predictor(Settings(torch_threads=1, large_batch_threads=0)).scorer.large_batch_threads == 2
    assert load_predictor(Settings(torch_threads=1, large_batch_threads=3)).scorer.large_batch_threads == 3
    assert load_predictor(Settings(torch_threads=1, workers=2)).scorer.large_batch_threads == 1


def _two_part_names(count: int) -> list[str]:
    """Distinct full names of two distinct three-letter parts: 2 * count readings in 7 * count characters."""
    words = [
        word
        for word in map("".join, itertools.product("bcdfgklmnprst", "aeiou", "bcdfgklmnprst"))
        if word not in PARTICLES | TITLES | SUFFIXES  # "del", "der": they would join the next part
    ]
    return [f"{words[2 * index]} {words[2 * index + 1]}" for index in range(count)]


@pytest.mark.parametrize("inline_max_names", [256, 0])
def test_only_the_model_thread_takes_large_call_threads(one_thread, thread_counts_set, monkeypatch, inline_max_names):
    """A lone request of 256 two-part names runs on the event loop (256 names, 7 characters each)
    and makes 512 readings: the loop must keep its one thread, or it starts a second OpenMP team and
    every large call of the model thread slows down. On the model thread (inline off) it takes two."""
    threads_setting: list[str] = []
    recording = torch.set_num_threads
    monkeypatch.setattr(
        torch,
        "set_num_threads",
        lambda count: (threads_setting.append(threading.current_thread().name), recording(count)),
    )
    predictor = Predictor.from_path(DEFAULT_CHECKPOINT_PATH, device="cpu", num_threads=1, large_batch_threads=2)
    names = _two_part_names(256)
    readings = {token.read_as for name in names for token in predictor.reader.read(name).tokens}
    assert len(readings) == 2 * 256 >= LARGE_BATCH_MIN_READINGS

    async def one_request() -> None:
        batcher = MicroBatcher(predictor, 512, 1.0, 16, inline_max_names=inline_max_names)
        await batcher.start()
        try:
            thread_counts_set.clear()
            threads_setting.clear()
            await batcher.answer(names, RankQuery(top_k=1))
        finally:
            await batcher.stop()

    asyncio.run(one_request())
    if inline_max_names:
        assert thread_counts_set == [] and threads_setting == []
    else:
        assert thread_counts_set == [2, 1] and all(name.startswith("nameorigin-model") for name in threads_setting)


def test_the_workers_flag_is_what_the_workers_count_themselves_by(monkeypatch):
    """`python -m app --workers 2` with NAMEORIGIN_WORKERS unset: each worker reads its Settings from
    the environment and must see 2, or it would take every core for its large calls."""
    served, copies = [], []
    monkeypatch.setenv("NAMEORIGIN_WORKERS", "1")  # set, then removed: the undo puts back what was there
    monkeypatch.delenv("NAMEORIGIN_WORKERS")

    def serve(config):  # what the workers would find: the count and the kept copy of the model
        served.append(config)
        copies.append(Settings().accepted_checkpoint_copy)
        return True

    monkeypatch.setattr("app.__main__.serve", serve)
    monkeypatch.setattr("app.__main__.shared_metrics_folder", lambda workers, given: nullcontext())
    monkeypatch.setattr(signal, "signal", lambda signum, handler: None)  # the test process keeps its own
    assert main(["--workers", "2"]) == 0
    assert os.environ["NAMEORIGIN_WORKERS"] == "2" and Settings().workers == 2
    # the copy was there for the workers, and is gone, with its setting, once main() returns: a later
    # Settings() in this process must not find it (a test's service served a stale model from it)
    assert copies[0] is not None and copies[0].name == "accepted.safetensors"
    assert not copies[0].parent.exists() and Settings().accepted_checkpoint_copy is None
    assert served[0].workers == 2


@pytest.mark.parametrize("workers", ["0", "-1"])
def test_main_refuses_fewer_than_one_worker(workers, capsys):
    assert main(["--workers", workers]) == 2
    assert f"--workers must be at least 1, got {workers}" in capsys.readouterr().err
