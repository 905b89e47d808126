"""A real server process: classify over HTTP, finish in-flight work on SIGTERM, refuse a bad checkpoint."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from concurrent.futures import Future

import httpx
import pytest

from app.__main__ import main
from model.assets import DEFAULT_CHECKPOINT_PATH
from tests.conftest import REPO_ROOT, free_port, log_records, server_env

NAMES = ["Hinton", "Nguyễn", "王", "Schmidhuber"]  # the tiny 3-label model knows no label written with ễ or 王


def in_progress(base_url: str) -> float:
    text = httpx.get(f"{base_url}/metrics", timeout=5).text
    return float(re.search(r"^nameorigin_http_requests_in_progress (\S+)$", text, re.MULTILINE).group(1))


@pytest.mark.timeout(90)
def test_server_classifies_over_http_and_finishes_in_flight_request_on_sigterm(start_server, tiny_checkpoint):
    # Under load (a new server assumes it, and a batch that had company shows it) a lone name waits
    # 1.5 s for company in the batcher: long enough to be in flight at SIGTERM. A request with 4
    # names fills a batch, so it and whoever waits for company are answered at once.
    server = start_server(checkpoint=str(tiny_checkpoint), max_batch_wait_ms="1500", max_batch_size="4")
    card = httpx.get(f"{server.base_url}/model").json()
    waiting = send_in_background(server.base_url, "Rossi")
    batch = httpx.post(f"{server.base_url}/classify", json={"names": NAMES, "top_k": 2}).json()  # joins Rossi's batch
    assert [result["name"] for result in batch["results"]] == NAMES
    assert batch["model_id"] == card["id"]
    assert [len(result["predictions"]) for result in batch["results"]] == [2, 0, 0, 2]
    assert [result["reason"] for result in batch["results"]] == [
        None,
        "unsupported-letters",
        "unsupported-script",
        None,
    ]
    assert waiting.result(10).json()["name"] == "Rossi"

    in_flight = send_in_background(server.base_url, "Hinton")  # the last batch had company: it waits
    exit_code, stderr = server.stop()

    assert exit_code == 0
    answer = in_flight.result(10)
    assert answer.status_code == 200 and answer.json()["name"] == "Hinton"

    request_lines = [record for record in log_records(stderr) if record.get("message") == "request"]
    assert {"method", "path", "status", "latency_ms", "num_names"} <= set(request_lines[0])
    assert any(line["path"] == "/classify" and line["num_names"] == 4 for line in request_lines)
    assert "Hinton" not in stderr  # names stay out of logs at INFO
    assert "batcher drained" in stderr


def send_in_background(base_url: str, name: str) -> Future[httpx.Response]:
    """POST one name from another thread; return once the server counts it in progress (beside the
    /metrics request that checks)."""
    answer: Future[httpx.Response] = Future()
    threading.Thread(
        target=lambda: answer.set_result(httpx.post(f"{base_url}/classify", json={"name": name}, timeout=30))
    ).start()
    deadline = time.monotonic() + 10
    while in_progress(base_url) < 2 and not answer.done():
        assert time.monotonic() < deadline, f"the /classify request for {name} never arrived"
        time.sleep(0.02)
    assert not answer.done(), f"{name} was answered at once: it never waited for company"
    return answer


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
        [sys.executable, "-m", "app"],
        cwd=REPO_ROOT,
        env=server_env(checkpoint=str(path), port=str(free_port())),
        capture_output=True,
        text=True,
        timeout=50,
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
    assert (
        error.count("\n") == 1 and error.startswith("error: invalid settings: NAMEORIGIN_DEVICE:") and "'tpu'" in error
    )


def _scrape(base_url: str) -> dict[str, list]:
    """Every sample of /metrics, by sample name: [(labels, value), ...]."""
    from prometheus_client.parser import text_string_to_metric_families

    samples: dict[str, list] = {}
    for family in text_string_to_metric_families(httpx.get(f"{base_url}/metrics", timeout=10).text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def _classified(samples: dict[str, list]) -> float:
    return sum(
        value
        for labels, value in samples.get("nameorigin_http_requests_total", [])
        if labels == {"method": "POST", "path": "/classify", "status": "200"}
    )


@pytest.mark.timeout(240)
def test_two_workers_scrape_as_one_service_and_a_counter_never_goes_back(start_server):
    server = start_server(checkpoint=str(DEFAULT_CHECKPOINT_PATH), workers="2", ready_timeout=180)
    deadline = time.monotonic() + 120
    while len(_scrape(server.base_url).get("nameorigin_worker_resident_memory_bytes", [])) < 2:
        assert time.monotonic() < deadline, "both workers never reported their process figures"
        time.sleep(0.5)
    counts, sent = [], 0
    for round_number in range(20):
        for _ in range(5):  # a new connection each time, so the kernel spreads them over both workers
            response = httpx.post(f"{server.base_url}/classify", json={"name": f"Hinton{round_number}"}, timeout=30)
            assert response.status_code == 200
            sent += 1
        counts.append(_classified(_scrape(server.base_url)))
    assert counts == sorted(counts), counts  # never backwards, whichever worker answered the scrape
    assert counts[-1] == sent  # the sum over both workers, not one worker's share
    samples = _scrape(server.base_url)
    pids = {labels["pid"] for labels, _ in samples["nameorigin_worker_resident_memory_bytes"]}
    assert len(pids) == 2 and all(value > 0 for _, value in samples["nameorigin_worker_open_fds"])
    assert min(value for _, value in samples["nameorigin_ready"]) == 1
    assert samples["nameorigin_model_info"][0][0]["id"].startswith("nameorigin-gru-")
