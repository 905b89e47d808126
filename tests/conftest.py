"""Shared pytest fixtures; each section below is self-contained."""

from __future__ import annotations

# --- HTTP service (app/): a tiny checkpoint, in-process clients, real server processes ---------
import dataclasses
import json
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
from model.encoder import EncoderConfig, NameEncoder
from model.networks import build_network
from model.novelty import CharLanguageModel
from model.predictor import Predictor
from tests.batch_fixtures import tiny_checkpoint_path
from tests.names_fixtures import synthetic_names
from tests.network_fixtures import network_config
from training.novelty import fit_language_model, fit_threshold

REPO_ROOT = Path(__file__).resolve().parents[1]
TINY_LABELS = ("A", "B", "C")
TINY_METRICS = {"accuracy": 0.5, "macro_f1": 0.4}
TINY_FINGERPRINT = "sha256:test"


PERMISSIVE_THRESHOLD = -1e9  # a not-a-name check that never fires: tests of other things may send any name


def tiny_language_model(encoder_config: EncoderConfig, val_quantile: float | None = None) -> CharLanguageModel:
    """A not-a-name model of the synthetic fixture names (made-up stems ending -ov, -ski, -ez); with
    no quantile its threshold never fires, with one it is fitted on held-out fixture names."""
    encoder = NameEncoder(encoder_config)
    names = [name for label_names in synthetic_names(per_label=60).values() for name in label_names]
    sequences = [encoder.encode(name) for name in names]
    model = fit_language_model(sequences[::2], encoder.vocab_size, order=3)  # order 3: its dense table builds at once
    config = fit_threshold(model, sequences[1::2], val_quantile or 0.0)
    if val_quantile is None:
        config = dataclasses.replace(config, threshold=PERMISSIVE_THRESHOLD)
    return CharLanguageModel(config, model.tables())


def write_tiny_checkpoint(path: Path, labels: tuple[str, ...] = TINY_LABELS, hidden_size: int = 8) -> Path:
    """A GRU with random weights over `labels`, a uniform label prior and the fixture's not-a-name model."""
    encoder_config = EncoderConfig()
    torch.manual_seed(0)
    network = build_network(
        network_config("gru", len(encoder_config.alphabet) + 2, len(labels), hidden_size=hidden_size)
    )
    save_checkpoint(
        path,
        network,
        encoder_config,
        labels,
        tiny_language_model(encoder_config),
        [1 / len(labels)] * len(labels),
        info={"metrics": TINY_METRICS, "data_fingerprint": TINY_FINGERPRINT},
    )
    return path


@pytest.fixture
def tiny_checkpoint(tmp_path: Path) -> Path:
    """A 3-label GRU with hidden size 8 and random weights: fast to load, any answer is fine."""
    return write_tiny_checkpoint(tmp_path / "tiny.safetensors")


@pytest.fixture
def kept_root_logging() -> Iterator[None]:
    """For a test that runs the app's lifespan itself: its logging set-up is undone afterwards."""
    root = logging.getLogger()
    saved_level, saved_handlers = root.level, list(root.handlers)
    yield
    root.setLevel(saved_level)
    root.handlers[:] = saved_handlers


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

    def close(self) -> tuple[int, str]:
        """Stop, then close the stderr file; return (exit code, stderr)."""
        result = self.stop()
        self.stderr_file.close()
        return result


def free_port() -> int:
    """A port nothing listens on right now, picked by the OS."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def server_env(**settings: str) -> dict[str, str]:
    """This environment minus any NAMEORIGIN_* set outside, plus `settings` as NAMEORIGIN_<KEY>."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("NAMEORIGIN_")}
    env.update({f"NAMEORIGIN_{key.upper()}": value for key, value in settings.items()})
    return env


def launch_server(argv: list[str], env: dict[str, str], ready_timeout: float = 60) -> ServerProcess:
    """Run the server command `argv` with `env` (which sets NAMEORIGIN_HOST and NAMEORIGIN_PORT) and
    return once its /readyz answers 200; if it exits or is not ready in time, stop it and fail."""
    stderr_file = tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115 -- lives as long as the server; ServerProcess.close() closes it
    process = subprocess.Popen(argv, cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=stderr_file, text=True)
    server = ServerProcess(process, f"http://{env['NAMEORIGIN_HOST']}:{env['NAMEORIGIN_PORT']}", stderr_file)
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            if httpx.get(f"{server.base_url}/readyz", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    exited = process.poll() is not None
    _, stderr = server.close()
    problem = f"server exited with {process.returncode}" if exited else f"server not ready within {ready_timeout}s"
    raise AssertionError(f"{problem}: {stderr}")


@pytest.fixture
def start_server() -> Iterator[Callable[..., ServerProcess]]:
    """Factory: `start_server(checkpoint=...)` runs `python -m app` on a free port and waits for /readyz."""
    servers: list[ServerProcess] = []

    def start(ready_timeout: float = 60, **settings: str) -> ServerProcess:
        env = server_env(host="127.0.0.1", port=str(free_port()), device="cpu", **settings)
        server = launch_server([sys.executable, "-m", "app"], env, ready_timeout)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def log_records(text: str) -> list[dict]:
    """The server's stderr as records: each JSON log line parsed, any other line (a traceback printed
    past the logger) kept as {"raw": line}, so checks do not depend on how the JSON is spaced."""
    records = []
    for line in text.splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            records.append({"raw": line})
    return records


# --- end of HTTP service section ----------------------------------------------------------------


# --- batch/ (file, DataFrame and Spark enrichment): one trained tiny model ----------------------


@pytest.fixture(scope="module")
def trained_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3-label model trained for one epoch on synthetic names (trained once per session)."""
    return tiny_checkpoint_path(tmp_path_factory)


@pytest.fixture(scope="module")
def trained_predictor(trained_checkpoint: Path) -> Predictor:
    return Predictor.from_path(trained_checkpoint, device="cpu")


# --- end of batch/ section ------------------------------------------------------------------------
