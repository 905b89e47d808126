"""A model that a reload would refuse never serves: not at start, and not in a worker that starts again
beside others that refused it (app.accepted)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from app.reloading import ReloadRefusedError, warm_and_check
from model.assets import DEFAULT_CHECKPOINT_PATH
from model.predictor import Predictor
from tests.checkpoint_fixtures import rewritten, with_shuffled_alphabet
from tests.conftest import REPO_ROOT, free_port, log_records, server_env


def with_other_label_order(record: dict) -> None:
    record["labels"] = record["labels"][::-1]


@pytest.mark.parametrize(
    "change",
    [with_shuffled_alphabet, lambda record: record["novelty"].update(threshold=1e6)],
    ids=["alphabet shuffled", "not-a-name threshold of 10^6"],
)
def test_the_canary_refuses_a_model_that_takes_latin_names_for_no_names(tmp_path, change):
    """Each still answered the names in Han, Hangul and Cyrillic, which passed the old canary."""
    predictor = Predictor.from_path(rewritten(tmp_path / "edited.safetensors", change), device="cpu")
    with pytest.raises(ReloadRefusedError, match="in Latin letters"):
        warm_and_check(predictor)


def test_the_service_refuses_at_start_a_model_a_reload_would_refuse(tmp_path):
    edited = rewritten(tmp_path / "edited.safetensors", with_shuffled_alphabet)
    env = server_env(checkpoint=str(edited), port=str(free_port()), device="cpu")
    result = subprocess.run(
        [sys.executable, "-m", "app"], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]  # one line
    assert "cannot start: the canary answered" in result.stderr


def _worker_pids(supervisor: int) -> list[int]:
    listing = subprocess.run(
        ["ps", "-ww", "--ppid", str(supervisor), "-o", "pid=,args="], capture_output=True, text=True
    )
    return [int(line.split()[0]) for line in listing.stdout.splitlines() if "spawn_main" in line]


def _answers(base_url: str, count: int) -> set[tuple[int, str, str]]:
    """(status, model id, top label of Hinton) over `count` new connections, which the kernel spreads."""
    seen = set()
    for _ in range(count):
        response = httpx.post(f"{base_url}/classify", json={"name": "Hinton", "top_k": 1}, timeout=30)
        body = response.json()
        seen.add((response.status_code, body.get("model_id", ""), body["predictions"][0]["label"]))
    return seen


def _refusals(server) -> int:
    return sum("refused" in str(record.get("message", "")) for record in log_records(server.stderr()))


def test_a_worker_that_starts_again_serves_the_model_the_others_kept_not_the_refused_file(start_server, tmp_path):
    served = tmp_path / "served.safetensors"
    shutil.copyfile(DEFAULT_CHECKPOINT_PATH, served)
    server = start_server(checkpoint=str(served), workers="2", reload_poll_s="0.2", ready_timeout=180)
    before = _answers(server.base_url, 20)
    assert len(before) == 1 and next(iter(before))[0] == 200

    # A checkpoint of other labels, which each running worker refuses on reload ...
    os.replace(rewritten(tmp_path / "other.safetensors", with_other_label_order), served)
    deadline = time.monotonic() + 60
    while _refusals(server) < 2:
        assert time.monotonic() < deadline, "the workers never refused the new file"
        time.sleep(0.2)
    # ... and then one of them dies (killed for memory, say) and the supervisor starts another.
    workers = _worker_pids(server.process.pid)
    assert len(workers) == 2
    os.kill(workers[0], signal.SIGKILL)
    deadline = time.monotonic() + 120
    while _refusals(server) < 3:  # the new worker served the kept copy and tried the configured file
        assert time.monotonic() < deadline and server.process.poll() is None, server.stderr()[-2000:]
        time.sleep(0.2)
    assert _answers(server.base_url, 30) == before  # one model, as before, whichever worker answers


def _serving_lines(server) -> int:
    return sum(str(record.get("message", "")).startswith("serving ") for record in log_records(server.stderr()))


def test_a_worker_that_starts_again_after_a_swap_serves_the_new_model(start_server, tmp_path):
    served = tmp_path / "served.safetensors"
    shutil.copyfile(DEFAULT_CHECKPOINT_PATH, served)
    server = start_server(checkpoint=str(served), workers="2", reload_poll_s="0.2", ready_timeout=180)
    (before,) = _answers(server.base_url, 10)
    newer = rewritten(tmp_path / "newer.safetensors", lambda record: record["novelty"].update(threshold=-3.9))
    new_id = Predictor.from_path(newer, device="cpu").model_id
    assert new_id != before[1]
    os.replace(newer, served)
    deadline = time.monotonic() + 60
    while {answer[1] for answer in _answers(server.base_url, 10)} != {new_id}:
        assert time.monotonic() < deadline, "the workers never swapped the new model in"
    started = _serving_lines(server)
    os.kill(_worker_pids(server.process.pid)[0], signal.SIGKILL)
    deadline = time.monotonic() + 120
    while _serving_lines(server) == started:  # the new worker's start
        assert time.monotonic() < deadline and server.process.poll() is None, server.stderr()[-2000:]
        time.sleep(0.2)
    assert {answer[1] for answer in _answers(server.base_url, 30)} == {new_id}
    assert "refused" not in server.stderr()


def test_the_supervisor_exits_1_when_a_worker_cannot_start(start_server, tmp_path):
    """With the kept copy gone too, a restarted worker has nothing it can serve: every worker is stopped
    and `python -m app` says so with exit code 1 (uvicorn's own supervisor exited 0)."""
    served = tmp_path / "served.safetensors"
    shutil.copyfile(DEFAULT_CHECKPOINT_PATH, served)
    server = start_server(checkpoint=str(served), workers="2", reload_poll_s="0", ready_timeout=180)
    workers = _worker_pids(server.process.pid)
    environment = Path(f"/proc/{workers[0]}/environ").read_bytes().split(b"\0")
    (copy,) = [
        entry.split(b"=", 1)[1] for entry in environment if entry.startswith(b"NAMEORIGIN_ACCEPTED_CHECKPOINT_COPY=")
    ]
    Path(copy.decode()).unlink()
    served.write_bytes(b"not a checkpoint")
    os.kill(workers[0], signal.SIGKILL)
    assert server.process.wait(timeout=120) == 1
    assert "a worker failed to start; every worker was stopped" in server.stderr()
    assert not Path(copy.decode()).parent.exists()  # the private folder is removed on the way out
