"""Measurements 2 and 3: the real server (`python -m app`, uvicorn) as a subprocess on a loopback port, loaded by wrk.

Every /classify run is interleaved with its reference (POST /ping on the same server, or the
in-process predictor at the same batch size), so both see the same machine load.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.inference import name_batches, names_per_second
from bench.report import REPO_ROOT, Row, Stats, Target, display_path, paired_ratio
from model.predictor import Predictor

logger = logging.getLogger(__name__)

LUA_SCRIPT = Path(__file__).resolve().parent / "post.lua"
CONNECTIONS = (1, 8, 64)
TARGET_CONNECTIONS = 64
THROUGHPUT_TARGET = Target(at_least=0.6)  # /classify req/s over /ping req/s
TAIL_TARGET = Target(below=5)  # p99 over p50
BATCH_REQUEST_SIZES = (100, 1000)
BATCH_TARGET = Target(at_least=0.7)  # HTTP names/s over in-process names/s
READY_TIMEOUT_S = 120.0
BODIES_PER_FILE = 64  # distinct request bodies wrk cycles through


class BenchError(RuntimeError):
    """A measurement could not be taken (server did not start, requests failed); the message says why."""


@dataclass(frozen=True)
class WrkResult:
    requests: int
    requests_per_second: float
    p50_ms: float
    p99_ms: float


def free_port() -> int:
    """A port the kernel says is free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    """The production entry point (`python -m app`, as the Dockerfile runs it) on 127.0.0.1:<free port>.

    Every setting keeps its default (INFO request logs included) except where the model comes from
    and where it listens; started in __enter__, stopped in __exit__.
    """

    ready_path = "/readyz"  # answers 200 once the model is warm

    def __init__(
        self,
        checkpoint_path: Path,
        device: str,
        num_threads: int,
        log_dir: Path,
        profile_path: Path | None = None,
        large_batch_threads: int | None = None,
    ) -> None:
        """large_batch_threads: NAMEORIGIN_LARGE_BATCH_THREADS; None holds large calls to num_threads too,
        so every model call runs on the threads the in-process rows use (0: the service's own rule)."""
        self.port = free_port()
        self.log_path = log_dir / "server.log"
        self.env = {
            **os.environ,
            "NAMEORIGIN_CHECKPOINT": str(checkpoint_path),
            "NAMEORIGIN_DEVICE": device,
            "NAMEORIGIN_HOST": "127.0.0.1",
            "NAMEORIGIN_PORT": str(self.port),
        }
        # the in-process measurements run torch with this many threads; the server must too (0 = torch's default)
        self.env["NAMEORIGIN_TORCH_THREADS"] = str(num_threads)
        self.env["NAMEORIGIN_LARGE_BATCH_THREADS"] = str(
            num_threads if large_batch_threads is None else large_batch_threads
        )
        self.command = [sys.executable, "-m", "app"]
        if profile_path is not None:  # the same app and options, its event loop under cProfile
            self.command = [sys.executable, "-m", "bench.profiled_server", str(self.port), str(profile_path)]
        self.process: subprocess.Popen | None = None

    def display_command(self) -> str:
        """The command as a reader would run it, with the settings it got from the environment."""
        variables = {key: value for key, value in self.env.items() if key.startswith("NAMEORIGIN_")}
        variables["NAMEORIGIN_CHECKPOINT"] = display_path(Path(variables["NAMEORIGIN_CHECKPOINT"]))
        variables["NAMEORIGIN_PORT"] = "<free port>"
        arguments = ["python" if part == sys.executable else part for part in self.command]
        return " ".join([*(f"{key}={value}" for key, value in sorted(variables.items())), *arguments])

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    @property
    def pid(self) -> int:
        if self.process is None:
            raise BenchError("the server is not running")
        return self.process.pid

    def __enter__(self) -> Server:
        log_file = self.log_path.open("wb")
        # Its own process group: a server that forks workers (LitServe does) is stopped whole in __exit__.
        self.process = subprocess.Popen(
            self.command,
            cwd=REPO_ROOT,
            env=self.env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log_file.close()
        try:
            self._wait_until_ready()
        except BaseException:
            self.__exit__()  # a server that never got ready is still a process to stop
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)  # the group: workers that outlived their parent too
            os.killpg(self.process.pid, signal.SIGCONT)  # a group left stopped (`paused`) acts on it at once
        except ProcessLookupError:
            return
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=15)

    @contextmanager
    def paused(self) -> Iterator[None]:
        """The server's whole process group stopped (SIGSTOP), and continued on leaving: a server left
        idle beside the one being measured takes no CPU from it (idle, LitServe's processes poll)."""
        os.killpg(self.pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.killpg(self.pid, signal.SIGCONT)

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BenchError(
                    f"server exited with code {self.process.returncode} before {self.ready_path}:\n{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(self.url(self.ready_path), timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.2)
        raise BenchError(
            f"server not ready after {READY_TIMEOUT_S:.0f}s at {self.url(self.ready_path)}:\n{self.log_tail()}"
        )

    def log_tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def post_json(self, path: str, payload: dict) -> dict:
        """One request, to check the endpoint answers 200 with JSON before loading it."""
        request = urllib.request.Request(
            self.url(path), data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            raise BenchError(f"POST {path} answered {error.code}: {error.read()[:500]!r}") from error


def display_wrk_command() -> str:
    return (
        "wrk -t1 -c{1,8,64} -d<seconds>s --timeout 10s -s bench/post.lua http://127.0.0.1:<port>/{ping,classify}"
        " -- <file of JSON bodies, one a line>"
    )


def wrk_path() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise BenchError("wrk not found on PATH: install it (apt-get install wrk) or pass --skip-http")
    return path


def run_wrk(url: str, bodies_path: Path, connections: int, seconds: float) -> WrkResult:
    """One wrk run (one thread: the load generator should leave the cores to the server)."""
    command = [
        wrk_path(),
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "-s",
        str(LUA_SCRIPT),
        url,
        "--",
        str(bodies_path),
    ]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    summary_lines = [line for line in completed.stdout.splitlines() if line.startswith('{"requests"')]
    if completed.returncode != 0 or not summary_lines:
        raise BenchError(
            f"wrk failed (exit {completed.returncode}): {completed.stderr.strip() or completed.stdout[-500:]}"
        )
    summary = json.loads(summary_lines[-1])
    errors = {key: value for key, value in summary.items() if key.startswith("errors_") and value}
    if errors or summary["requests"] == 0:
        raise BenchError(f"wrk against {url} saw errors {errors} in {summary['requests']} requests")
    return WrkResult(
        requests=summary["requests"],
        requests_per_second=summary["requests"] / (summary["duration_us"] / 1e6),
        p50_ms=summary["latency_p50_us"] / 1000,
        p99_ms=summary["latency_p99_us"] / 1000,
    )


def write_bodies(path: Path, names: list[str], names_per_body: int) -> Path:
    """BODIES_PER_FILE JSON bodies, one a line: {"name": ...} for one name, {"names": [...]} for more."""
    batches = name_batches(names, names_per_body)
    lines = []
    for _ in range(BODIES_PER_FILE):
        batch = next(batches)
        payload = {"name": batch[0], "top_k": 3} if names_per_body == 1 else {"names": batch, "top_k": 3}
        lines.append(json.dumps(payload))
    path.write_text("\n".join(lines) + "\n")
    return path


def check_endpoints(server: Server, names: list[str]) -> None:
    """Fail loudly before any load if /classify or /ping does not answer as documented."""
    single = server.post_json("/classify", {"name": names[0], "top_k": 3})
    batch = server.post_json("/classify", {"names": names[:3], "top_k": 3})
    ping = server.post_json("/ping", {"name": names[0]})
    logger.debug("classify %s, batch %s, ping %s", single, batch, ping)


SingleNameRuns = dict[int, dict[str, list[WrkResult]]]  # connections -> path -> runs


def measure_single_name(
    server: Server, names: list[str], repeats: int, seconds: float, work_dir: Path, warm_up: bool = True
) -> tuple[list[Row], SingleNameRuns]:
    """Measurement 2: /classify against /ping at each connection count, one name per request."""
    bodies = write_bodies(work_dir / "single.jsonl", names, 1)
    for path in ("/ping", "/classify") if warm_up else ():  # lazy imports, first allocations, thread pools
        run_wrk(server.url(path), bodies, 8, 1)
    rows, all_runs = [], {}
    for connections in CONNECTIONS:
        runs: dict[str, list[WrkResult]] = {"/ping": [], "/classify": []}
        all_runs[connections] = runs
        for _ in range(repeats):
            for path in runs:
                runs[path].append(run_wrk(server.url(path), bodies, connections, seconds))
        classify_rps = Stats.of([run.requests_per_second for run in runs["/classify"]])
        ping_rps = Stats.of([run.requests_per_second for run in runs["/ping"]])
        p50 = {path: Stats.of([run.p50_ms for run in results]).median for path, results in runs.items()}
        p99 = {path: Stats.of([run.p99_ms for run in results]).median for path, results in runs.items()}
        logger.info(
            "http c=%d: classify %.0f req/s, ping %.0f req/s", connections, classify_rps.median, ping_rps.median
        )
        at_target = connections == TARGET_CONNECTIONS
        rows.append(
            Row(
                measurement=f"2. HTTP /classify 1 name, {connections} conn (req/s)",
                value=classify_rps.format("/s"),
                reference=f"/ping {ping_rps.format('/s')}",
                ratio=paired_ratio(classify_rps, ping_rps),
                target=THROUGHPUT_TARGET if at_target else None,
            )
        )
        rows.append(
            Row(
                measurement=f"2. HTTP /classify 1 name, {connections} conn (p99 vs p50)",
                value=f"p99 {p99['/classify']:.2f} ms",
                reference=f"p50 {p50['/classify']:.2f} ms (/ping p50 {p50['/ping']:.2f}, p99 {p99['/ping']:.2f})",
                ratio=statistics.median(run.p99_ms / run.p50_ms for run in runs["/classify"]),
                target=TAIL_TARGET if at_target else None,
            )
        )
    return rows, all_runs


def measure_batches(
    server: Server,
    predictor: Predictor,
    names: list[str],
    repeats: int,
    seconds: float,
    work_dir: Path,
    warm_up: bool = True,
    batch_sizes: tuple[int, ...] = BATCH_REQUEST_SIZES,
) -> list[Row]:
    """Measurement 3: names/s of one client posting batches back to back, against the predictor in process.

    The target's reference is `Predictor.predict`, the batched predictor of measurement 1. The service
    calls `Predictor.rank` (the same ranking, as lists, without a tuple per label), so a second row
    compares with that too: how much the HTTP path itself costs, with no difference in model-side work.
    """
    rows = []
    for batch_size in batch_sizes:
        bodies = write_bodies(work_dir / f"batch{batch_size}.jsonl", names, batch_size)
        if warm_up:
            run_wrk(server.url("/classify"), bodies, 1, 1)
        http_runs, predict_runs, rank_runs = [], [], []
        for _ in range(repeats):
            predict_runs.append(names_per_second(predictor.predict, name_batches(names, batch_size), seconds))
            http_runs.append(run_wrk(server.url("/classify"), bodies, 1, seconds).requests_per_second * batch_size)
            rank_runs.append(names_per_second(predictor.rank, name_batches(names, batch_size), seconds))
        http_stats, predict_stats, rank_stats = Stats.of(http_runs), Stats.of(predict_runs), Stats.of(rank_runs)
        logger.info(
            "http batch %d: %.0f names/s vs in-process predict %.0f, rank %.0f",
            batch_size,
            http_stats.median,
            predict_stats.median,
            rank_stats.median,
        )
        measurement = f"3. HTTP /classify {batch_size} names/request, 1 conn (names/s)"
        rows.append(
            Row(
                measurement=measurement,
                value=http_stats.format("/s"),
                reference=f"in-process predict, batch {batch_size} {predict_stats.format('/s')}",
                ratio=paired_ratio(http_stats, predict_stats),
                target=BATCH_TARGET,
            )
        )
        rows.append(
            Row(
                measurement=f"{measurement}, vs rank",
                value=http_stats.format("/s"),
                reference=f"in-process rank (what the service calls), batch {batch_size} {rank_stats.format('/s')}",
                ratio=paired_ratio(http_stats, rank_stats),
            )
        )
    return rows


def temporary_work_dir() -> tempfile.TemporaryDirectory:
    return tempfile.TemporaryDirectory(prefix="nameorigin-bench-")
