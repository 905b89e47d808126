"""A real server process: classify over HTTP, finish in-flight work on SIGTERM, refuse a bad checkpoint."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time

import httpx
import pytest

from app.__main__ import main
from tests.conftest import REPO_ROOT, free_port, server_env

NAMES = ["Hinton", "Nguyễn", "王", "Schmidhuber"]


def in_progress(base_url: str) -> float:
    text = httpx.get(f"{base_url}/metrics", timeout=5).text
    return float(re.search(r"^nameorigin_http_requests_in_progress (\S+)$", text, re.MULTILINE).group(1))


@pytest.mark.timeout(90)
def test_server_classifies_over_http_and_finishes_in_flight_request_on_sigterm(start_server, tiny_checkpoint):
    # A lone name waits 1.5 s for company in the batcher, long enough to be in flight at SIGTERM;
    # a request with 4 names fills a batch and is answered at once.
    server = start_server(checkpoint=str(tiny_checkpoint), max_batch_wait_ms="1500", max_batch_size="4")
    card = httpx.get(f"{server.base_url}/model").json()
    batch = httpx.post(f"{server.base_url}/classify", json={"names": NAMES, "top_k": 2}).json()
    assert [result["name"] for result in batch["results"]] == NAMES
    assert batch["model_id"] == card["id"]
    assert all(len(result["predictions"]) == 2 for result in batch["results"])

    answers: list[httpx.Response] = []
    sender = threading.Thread(
        target=lambda: answers.append(httpx.post(f"{server.base_url}/classify", json={"name": "Hinton"}, timeout=30))
    )
    sender.start()
    deadline = time.monotonic() + 10
    while in_progress(server.base_url) < 2:  # this /metrics request + the waiting /classify
        assert time.monotonic() < deadline, "the /classify request never arrived"
        time.sleep(0.02)
    exit_code, stderr = server.stop()
    sender.join(10)

    assert exit_code == 0
    assert answers and answers[0].status_code == 200
    assert answers[0].json()["name"] == "Hinton"
    request_lines = [json.loads(line) for line in stderr.splitlines() if '"message": "request"' in line]
    assert {"method", "path", "status", "latency_ms", "num_names"} <= set(request_lines[0])
    assert any(line["path"] == "/classify" and line["num_names"] == 4 for line in request_lines)
    assert "Hinton" not in stderr  # names stay out of logs at INFO
    assert "batcher drained" in stderr


def corrupt_copy(checkpoint, tmp_path):
    payload = bytearray(checkpoint.read_bytes())
    payload[-1] ^= 0xFF  # flip one weight byte: the checksum no longer matches
    path = tmp_path / "edited.safetensors"
    path.write_bytes(bytes(payload))
    return path


@pytest.mark.timeout(60)
def test_server_refuses_edited_checkpoint_with_one_line_and_nonzero_exit(tiny_checkpoint, tmp_path):
    path = corrupt_copy(tiny_checkpoint, tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "app"], cwd=REPO_ROOT, env=server_env(checkpoint=str(path), port=str(free_port())),
        capture_output=True, text=True, timeout=50,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: cannot start: {path}:")


def test_main_refuses_missing_checkpoint_with_one_line(tmp_path, monkeypatch, capsys):
    path = tmp_path / "missing.safetensors"
    monkeypatch.setenv("NAMEORIGIN_CHECKPOINT", str(path))
    assert main([]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and captured.err.startswith(f"error: cannot start: {path}:")


def test_main_refuses_invalid_settings_with_one_line(monkeypatch, capsys):
    monkeypatch.setenv("NAMEORIGIN_DEVICE", "tpu")
    assert main([]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and error.startswith("error: invalid settings: NAMEORIGIN_DEVICE:") and "'tpu'" in error
