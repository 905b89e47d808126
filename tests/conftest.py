"""Shared pytest fixtures; each section below is self-contained."""
from __future__ import annotations

# --- HTTP service (app/): a tiny checkpoint, in-process clients, real server processes ---------

import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx
import pytest
import torch
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from model.checkpoint import save_checkpoint
from model.encoder import EncoderConfig
from model.networks import NetworkConfig, build_network

REPO_ROOT = Path(__file__).resolve().parents[1]
TINY_LABELS = ("A", "B", "C")
TINY_METRICS = {"accuracy": 0.5, "macro_f1": 0.4}
TINY_FINGERPRINT = "sha256:test"


@pytest.fixture
def tiny_checkpoint(tmp_path: Path) -> Path:
    """A 3-label GRU with hidden size 8 and random weights: fast to load, any answer is fine."""
    encoder_config = EncoderConfig()
    torch.manual_seed(0)
    network = build_network(NetworkConfig("gru", len(encoder_config.alphabet) + 2, len(TINY_LABELS), hidden_size=8))
    path = tmp_path / "tiny.safetensors"
    save_checkpoint(
        path, network, encoder_config, TINY_LABELS, {"metrics": TINY_METRICS, "data_fingerprint": TINY_FINGERPRINT}
    )
    return path


@pytest.fixture
def make_client(tiny_checkpoint: Path) -> Iterator[Callable[..., TestClient]]:
    """Factory for started in-process clients: `make_client(max_names_per_request=2)`.

    Lifespan runs (model loaded, warmed up); the app's logging set-up is undone afterwards so one
    test's log level or handler never leaks into the next.
    """
    root = logging.getLogger()
    saved_level, saved_handlers = root.level, list(root.handlers)
    clients: list[TestClient] = []

    def start(**overrides: object) -> TestClient:
        values: dict[str, object] = {"checkpoint_path": tiny_checkpoint, "device": "cpu", **overrides}
        test_client = TestClient(create_app(Settings(**values)))
        test_client.__enter__()
        clients.append(test_client)
        return test_client

    yield start
    for test_client in reversed(clients):
        test_client.__exit__(None, None, None)
    root.setLevel(saved_level)
    root.handlers[:] = saved_handlers


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    """An in-process client of the app serving `tiny_checkpoint`."""
    return make_client()


@dataclass
class ServerProcess:
    process: subprocess.Popen
    base_url: str
    stderr_file: IO[str]  # a file, not a pipe: a chatty server can never block on a full pipe

    def stderr(self) -> str:
        self.stderr_file.seek(0)
        return self.stderr_file.read()

    def stop(self, timeout: float = 30) -> tuple[int, str]:
        """SIGTERM, wait, return (exit code, stderr)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        return self.process.returncode, self.stderr()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def server_env(**settings: str) -> dict[str, str]:
    """This environment minus any NAMEORIGIN_* set outside, plus `settings` as NAMEORIGIN_<KEY>."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("NAMEORIGIN_")}
    env.update({f"NAMEORIGIN_{key.upper()}": value for key, value in settings.items()})
    return env


@pytest.fixture
def start_server() -> Iterator[Callable[..., ServerProcess]]:
    """Factory: `start_server(checkpoint=...)` runs `python -m app` on a free port and waits for /readyz."""
    servers: list[ServerProcess] = []

    def start(ready_timeout: float = 60, **settings: str) -> ServerProcess:
        port = free_port()
        env = server_env(host="127.0.0.1", port=str(port), device="cpu", **settings)
        stderr_file = tempfile.TemporaryFile("w+", encoding="utf-8")
        process = subprocess.Popen(
            [sys.executable, "-m", "app"], cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=stderr_file, text=True
        )
        server = ServerProcess(process, f"http://127.0.0.1:{port}", stderr_file)
        servers.append(server)
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise AssertionError(f"server exited with {process.returncode}: {server.stderr()}")
            try:
                if httpx.get(f"{server.base_url}/readyz", timeout=1).status_code == 200:
                    return server
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"server not ready within {ready_timeout}s")

    yield start
    for server in servers:
        server.stop()
        server.stderr_file.close()


# --- end of HTTP service section ----------------------------------------------------------------
