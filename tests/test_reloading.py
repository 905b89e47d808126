"""Hot reload in process: a changed checkpoint file is loaded, checked and swapped in between batches;
a bad one is refused with a log line and the old model keeps answering."""

from __future__ import annotations

import asyncio
import logging
import math
import os
import shutil
import time
from pathlib import Path

import pytest
import torch

from app.batching import MicroBatcher
from app.reloading import ModelReloader, ReloadRefusedError, check_replacement, warm_and_check
from model.predictor import Predictor, RankQuery
from tests.conftest import write_tiny_checkpoint


@pytest.fixture
def served_checkpoint(tmp_path: Path) -> Path:
    """The file the server is configured with; tests replace it as a deploy would (os.replace)."""
    return write_tiny_checkpoint(tmp_path / "served.safetensors")


def replace_with(served: Path, new: Path) -> None:
    os.replace(new, served)


def wait_for_model_id(client, expected: str, timeout: float = 5) -> float:
    """Seconds until a /classify answer names `expected`; fails after `timeout`."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if client.post("/classify", json={"name": "Hinton"}).json()["model_id"] == expected:
            return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError(f"answers never switched to {expected}")


def test_reload_swaps_in_a_changed_checkpoint_file_and_every_answer_names_it(make_client, served_checkpoint, tmp_path):
    client = make_client(checkpoint_path=served_checkpoint, reload_poll_s=0.1)
    old_id = client.get("/model").json()["id"]
    new_path = write_tiny_checkpoint(tmp_path / "new.safetensors", hidden_size=16)
    new_id = Predictor.from_path(new_path, device="cpu").model_id
    assert new_id != old_id

    replace_with(served_checkpoint, new_path)

    wait_for_model_id(client, new_id)
    assert client.get("/model").json()["id"] == new_id
    assert 'nameorigin_reloads_total{outcome="swapped"} 1.0' in client.get("/metrics").text
    batch = client.post("/classify", json={"names": ["Hinton", "Rossi"]}).json()
    assert batch["model_id"] == new_id
    info_lines = [
        line for line in client.get("/metrics").text.splitlines() if line.startswith("nameorigin_model_info{")
    ]
    assert len(info_lines) == 1 and new_id in info_lines[0]


@pytest.mark.parametrize("damage", ["garbage", "truncated", "other labels"])
def test_reload_refuses_a_bad_checkpoint_with_a_log_line_and_keeps_serving_the_old_model(
    make_client, served_checkpoint, tmp_path, caplog, damage
):
    client = make_client(checkpoint_path=served_checkpoint, reload_poll_s=0.1)
    old_id = client.get("/model").json()["id"]
    bad = tmp_path / "bad.safetensors"
    if damage == "garbage":
        bad.write_bytes(os.urandom(4096))
    elif damage == "truncated":
        shutil.copy(write_tiny_checkpoint(tmp_path / "whole.safetensors", hidden_size=16), bad)
        bad.write_bytes(bad.read_bytes()[:-100])
    else:
        write_tiny_checkpoint(bad, labels=("A", "B", "D"), hidden_size=16)
    with caplog.at_level(logging.INFO, logger="app.reloading"):
        replace_with(served_checkpoint, bad)
        deadline = time.monotonic() + 5
        while not any("refused" in record.getMessage() for record in caplog.records):
            assert time.monotonic() < deadline, "no refusal was logged"
            assert client.post("/classify", json={"name": "Hinton"}).json()["model_id"] == old_id
            time.sleep(0.05)
    refusal = next(record for record in caplog.records if "refused" in record.getMessage())
    assert refusal.levelno == logging.ERROR and old_id in refusal.getMessage()
    assert client.get("/model").json()["id"] == old_id
    assert client.post("/classify", json={"names": ["Hinton", "Rossi"]}).json()["model_id"] == old_id
    metrics = client.get("/metrics").text  # a refusal is counted, not only logged
    assert 'nameorigin_reloads_total{outcome="refused"} 1.0' in metrics
    assert 'outcome="swapped"' not in metrics


def test_warm_and_check_refuses_a_model_whose_canary_answers_are_not_probabilities(tiny_checkpoint):
    broken = Predictor.from_path(tiny_checkpoint, device="cpu")
    with torch.no_grad():
        for parameter in broken.network.parameters():
            parameter.fill_(math.nan)
    with pytest.raises(ReloadRefusedError, match="canary"):
        warm_and_check(broken)
    warm_and_check(Predictor.from_path(tiny_checkpoint, device="cpu"))  # a sound model passes


def test_check_replacement_refuses_other_labels(tiny_checkpoint, tmp_path):
    serving = Predictor.from_path(tiny_checkpoint, device="cpu")
    other = Predictor.from_path(write_tiny_checkpoint(tmp_path / "o.safetensors", labels=("A", "B")), device="cpu")
    with pytest.raises(ReloadRefusedError, match="labels"):
        check_replacement(serving, other)


def test_batcher_answers_each_batch_with_one_model_and_names_it_across_a_swap(tiny_checkpoint, tmp_path):
    old = Predictor.from_path(tiny_checkpoint, device="cpu")
    new = Predictor.from_path(write_tiny_checkpoint(tmp_path / "n.safetensors", hidden_size=16), device="cpu")

    async def scenario() -> tuple[list[str], list[str]]:
        batcher = MicroBatcher(old, max_batch_size=512, max_wait_ms=1, queue_size=64)
        await batcher.start()
        before = await asyncio.gather(*(batcher.answer(["Hinton"], RankQuery(1)) for _ in range(8)))
        batcher.swap_predictor(new)
        after = await asyncio.gather(*(batcher.answer(["Hinton"], RankQuery(1)) for _ in range(8)))
        await batcher.stop()
        return [a.predictor.model_id for a in before], [a.predictor.model_id for a in after]

    before, after = asyncio.run(scenario())
    assert set(before) == {old.model_id} and set(after) == {new.model_id}


def test_reloader_runs_one_reload_at_a_time_and_one_more_for_a_trigger_during_it(tiny_checkpoint):
    predictor = Predictor.from_path(tiny_checkpoint, device="cpu")
    loads: list[float] = []

    def slow_load() -> Predictor:
        loads.append(time.monotonic())
        time.sleep(0.2)
        return predictor

    async def scenario() -> None:
        batcher = MicroBatcher(predictor, max_batch_size=512, max_wait_ms=1, queue_size=64)
        reloader = ModelReloader(slow_load, batcher, tiny_checkpoint, on_swap=lambda new: None)
        for _ in range(5):
            reloader.request("test")
        await asyncio.sleep(1.0)
        await reloader.stop()

    asyncio.run(scenario())
    assert len(loads) == 2  # the first, then one for the four triggers that came during it


class _Answers:
    """A stand-in predictor whose answers to the warm-up names are given: the canary's counting alone."""

    num_labels = 2

    def __init__(self, reasons, scripts):
        self.reasons, self.scripts = reasons, scripts

    def rank_requests(self, requests):
        from model.scoring import RankedNames

        ((names, _),) = requests
        answered = [[0, 1] if reason is None else [] for reason in self.reasons]
        probabilities = [[0.75, 0.25] if reason is None else [] for reason in self.reasons]
        return [
            RankedNames(
                answered, probabilities, probabilities, self.reasons, list(names), self.scripts, [()] * len(names)
            )
        ]


def test_the_canary_does_not_hold_a_script_the_labels_cannot_answer_against_a_model():
    """A model of Arabic and Greek alone rightly abstains on Han, Hangul, Cyrillic and ř; it serves."""
    from model.canary import WARMUP_NAMES

    count = len(WARMUP_NAMES)
    structural = ["unsupported-script"] * 4 + ["unsupported-letters"] * 3 + ["no-letters"]
    reasons = structural + [None] * 5 + ["not-a-name"] * (count - len(structural) - 5)
    warm_and_check(_Answers(reasons, ["Latin"] * count))
    with pytest.raises(ReloadRefusedError, match="at least half"):  # most of what it could answer, unanswered
        warm_and_check(
            _Answers(structural + [None] * 2 + ["not-a-name"] * (count - len(structural) - 2), ["Latin"] * count)
        )
