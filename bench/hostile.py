"""`python -m bench.hostile`: the attacks of issue 11 replayed against a real server on loopback.

Idle and slowloris connections, oversize heads, a hot reload and a SIGTERM drain under load, and
overload past the queue; prints one table. Sizes are bounded by flags so it runs on a laptop; the
test suite (tests/test_hostile.py) calls the same pieces at smaller sizes.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path

from app.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[1]
CLASSIFY_BODY = json.dumps({"name": "Hinton", "top_k": 1}).encode()
JSON_HEADERS = {"Content-Type": "application/json"}
REFUSED = (ConnectionRefusedError,)  # the server never accepted: not a failed request


@dataclass
class Tally:
    """What a load run saw: answers by status, failures by exception, model ids over time."""

    statuses: Counter[int] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)
    refused: int = 0
    latencies_s: list[float] = field(default_factory=list)
    model_ids: list[tuple[float, str]] = field(default_factory=list)  # (monotonic time, model_id) per 200
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def failed(self) -> int:
        """Requests sent on an accepted connection that got no HTTP answer (reset, closed, timed out)."""
        return sum(self.failures.values())


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Server:
    process: subprocess.Popen[str]
    port: int
    log: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def rss_mb(self) -> float:
        """Resident memory of the server and its workers."""
        pids = [self.process.pid, *children(self.process.pid)]
        return sum(rss_kb(pid) for pid in pids) / 1024

    def stop(self, timeout: float = 60) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(child) for child in text.split()]


def rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


@contextmanager
def running_server(log_dir: Path, *, ready_timeout: float = 120, **settings: str) -> Iterator[Server]:
    """`python -m app` with NAMEORIGIN_<KEY>=value for each setting, until /readyz answers 200."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("NAMEORIGIN_")}
    port = free_port()
    env.update({"NAMEORIGIN_HOST": "127.0.0.1", "NAMEORIGIN_PORT": str(port), "NAMEORIGIN_DEVICE": "cpu"})
    env.update({f"NAMEORIGIN_{key.upper()}": value for key, value in settings.items()})
    log = log_dir / f"server-{port}.log"
    with log.open("w") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "app"], cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log_file, text=True
        )
    server = Server(process, port, log)
    try:
        wait_ready(server, ready_timeout)
        yield server
    finally:
        server.stop()


def wait_ready(server: Server, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"server exited with {server.process.returncode}: {server.log.read_text()[-2000:]}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=2)
            connection.request("GET", "/readyz")
            if connection.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"server not ready within {timeout} s")


def classify_once(connection: http.client.HTTPConnection, body: bytes = CLASSIFY_BODY) -> tuple[int, bytes]:
    connection.request("POST", "/classify", body, JSON_HEADERS)
    response = connection.getresponse()
    return response.status, response.read()


def client_loop(port: int, tally: Tally, stop: threading.Event, retry_after_503: bool = False) -> None:
    """One keep-alive client sending /classify until `stop`; reconnects after a closed connection.
    With `retry_after_503` it sleeps the Retry-After it is given, as a polite client does."""
    connection: http.client.HTTPConnection | None = None
    while not stop.is_set():
        if connection is None:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        started = time.monotonic()
        try:
            connection.request("POST", "/classify", CLASSIFY_BODY, JSON_HEADERS)
            response = connection.getresponse()
            body = response.read()
        except REFUSED:
            with tally.lock:
                tally.refused += 1
            connection = None
            time.sleep(0.01)
            continue
        except (OSError, http.client.HTTPException) as error:
            with tally.lock:
                tally.failures[type(error).__name__] += 1
            connection.close()
            connection = None
            continue
        with tally.lock:
            tally.statuses[response.status] += 1
            if response.status == 200:
                tally.latencies_s.append(time.monotonic() - started)
                tally.model_ids.append((time.monotonic(), json.loads(body)["model_id"]))
        if response.getheader("connection", "").lower() == "close":
            connection.close()
            connection = None
        if response.status == 503 and retry_after_503:
            time.sleep(float(response.getheader("retry-after", "1")))


@contextmanager
def load(port: int, connections: int, retry_after_503: bool = False) -> Iterator[Tally]:
    """`connections` clients running while the block runs; the tally is complete when it exits."""
    tally, stop = Tally(), threading.Event()
    threads = [
        threading.Thread(target=client_loop, args=(port, tally, stop, retry_after_503), daemon=True)
        for _ in range(connections)
    ]
    for thread in threads:
        thread.start()
    try:
        yield tally
    finally:
        stop.set()
        for thread in threads:
            thread.join(15)


def probe_latencies(port: int, requests: int) -> list[float]:
    """Latencies in ms of a lone keep-alive client's sequential /classify requests."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    latencies = []
    for _ in range(requests):
        started = time.perf_counter()
        status, _ = classify_once(connection)
        latencies.append((time.perf_counter() - started) * 1000)
        if status != 200:
            raise RuntimeError(f"normal client got {status}")
    connection.close()
    return latencies


def percentiles(latencies_ms: list[float]) -> tuple[float, float]:
    """(p50, p99)."""
    cuts = statistics.quantiles(latencies_ms, n=100)
    return cuts[49], cuts[98]


def open_idle(port: int, count: int) -> list[socket.socket]:
    """Connections that send nothing."""
    return [socket.create_connection(("127.0.0.1", port)) for _ in range(count)]


def open_slowloris(port: int, count: int) -> list[socket.socket]:
    """Connections that start a request head and never finish it (see `trickle`)."""
    sockets = open_idle(port, count)
    for sock in sockets:
        sock.sendall(b"POST /classify HTTP/1.1\r\nHost: x\r\n")
    return sockets


def trickle(sockets: list[socket.socket], stop: threading.Event, period_s: float = 1.0) -> None:
    """Send one more header line per socket every `period_s`, all in one burst as the slowloris tool
    does (the harder case for the server's one event loop), until `stop`."""
    while not stop.wait(period_s):
        for sock in sockets:
            with suppress(OSError):
                sock.send(b"X-a: b\r\n")


def attacker_main(port: int, idle: int, slowloris: int, period_s: float, pipe: Connection) -> None:
    """The attack in its own process, so its Python never competes for the probe's GIL: open the
    sockets, say how many the server holds, trickle until told to stop, then say it again."""
    idle_sockets = open_idle(port, idle)
    slow_sockets = open_slowloris(port, slowloris)
    time.sleep(0.3)
    pipe.send(still_open(idle_sockets) + still_open(slow_sockets))
    stop = threading.Event()
    trickler = threading.Thread(target=trickle, args=(slow_sockets, stop, period_s), daemon=True)
    trickler.start()
    pipe.recv()  # "stop"
    stop.set()
    trickler.join()
    pipe.send(still_open(idle_sockets) + still_open(slow_sockets))
    close_all(idle_sockets + slow_sockets)


@contextmanager
def attack(port: int, idle: int, slowloris: int, period_s: float = 1.0) -> Iterator[dict[str, int]]:
    """`idle` silent and `slowloris` trickling connections held by a child process while the block
    runs; the dict gets "held_at_start" at once and "held_at_end" when the block exits."""
    parent_end, child_end = multiprocessing.get_context("spawn").Pipe()
    child = multiprocessing.get_context("spawn").Process(
        target=attacker_main, args=(port, idle, slowloris, period_s, child_end), daemon=True
    )
    child.start()
    held = {"held_at_start": parent_end.recv()}
    try:
        yield held
    finally:
        parent_end.send("stop")
        held["held_at_end"] = parent_end.recv()
        child.join(30)


def still_open(sockets: list[socket.socket]) -> int:
    """How many of `sockets` the server has not closed: no EOF, no reset, no answer waiting to be read
    (a peek that would block means the connection is open and silent)."""
    held = 0
    for sock in sockets:
        try:
            data = sock.recv(65536, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except BlockingIOError:
            held += 1
            continue
        except OSError:
            continue
        held += bool(data) and not data.startswith(b"HTTP/")
    return held


def close_all(sockets: list[socket.socket]) -> None:
    for sock in sockets:
        sock.close()


def oversize_head_status(port: int, header_bytes: int) -> int:
    """The status a request with one `header_bytes`-long header gets (0: no answer)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        with suppress(OSError):  # the server may refuse before it has read everything
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-big: " + b"a" * header_bytes + b"\r\n\r\n")
        try:
            answer = sock.recv(1024)
        except OSError:
            return 0
    return int(answer.split()[1]) if answer.startswith(b"HTTP/") else 0


def model_id_switch_s(tally: Tally, new_id: str, since: float) -> float | None:
    """Seconds after `since` until every later answer named `new_id`; None if it never switched."""
    with tally.lock:
        ids = list(tally.model_ids)
    last_old = max((at for at, model_id in ids if model_id != new_id and at >= since), default=since)
    if not any(model_id == new_id for _, model_id in ids):
        return None
    return last_old - since


# --- the table ------------------------------------------------------------------------------------


def measure_attack(work: Path, args: argparse.Namespace) -> list[tuple[str, str]]:
    """A lone client's latency on an idle server and under the attack, in `args.rounds` alternating
    rounds (so drift in the machine's speed falls on both alike), the samples of each side pooled.
    Each round's probe ends before the server's request deadline closes the attack's sockets."""
    rows: list[tuple[str, str]] = []
    idle_ms: list[float] = []
    attack_ms: list[float] = []
    held_start: list[int] = []
    rss_growth: list[float] = []
    with running_server(work, timeout_request_read_s=str(args.read_timeout), reload_poll_s="0") as server:
        probe_latencies(server.port, 50)  # warm the client path
        for _ in range(args.rounds):
            idle_ms += probe_latencies(server.port, args.probe_requests)
            rss_before = server.rss_mb()
            with attack(server.port, args.idle, args.slowloris) as held:
                attack_ms += probe_latencies(server.port, args.probe_requests)
                rss_growth.append(server.rss_mb() - rss_before)
            held_start.append(held["held_at_start"])
            time.sleep(0.5)  # the closes of the attack's sockets are done
        p50, p99 = percentiles(idle_ms)
        a50, a99 = percentiles(attack_ms)
        hostile = f"{args.idle} idle + {args.slowloris} slowloris"
        rows.append((f"hostile connections held at start ({hostile}), per round", ", ".join(map(str, held_start))))
        rows.append((f"normal client, idle server: p50 / p99 ({len(idle_ms)} requests)", f"{p50:.2f} / {p99:.2f} ms"))
        rows.append(
            (f"normal client during the attack: p50 / p99 ({len(attack_ms)} requests)", f"{a50:.2f} / {a99:.2f} ms")
        )
        rows.append(("p50 / p99 during attack / idle", f"{a50 / p50:.2f} / {a99 / p99:.2f}"))
        rows.append(("server RSS growth under the attack, worst round", f"{max(rss_growth):+.1f} MB"))
        with attack(server.port, args.idle, args.slowloris) as held:
            time.sleep(args.read_timeout + 1.5)
        rows.append((f"hostile connections held {args.read_timeout + 1.5:g} s later", str(held["held_at_end"])))
        status = oversize_head_status(server.port, 64 * 1024)
        rows.append(("a 64 KiB header", str(status)))
    return rows


def measure_reload(work: Path, args: argparse.Namespace, checkpoint: Path, other: Path) -> list[tuple[str, str]]:
    served = work / "served.safetensors"
    shutil.copy(checkpoint, served)
    rows = []
    with running_server(work, checkpoint=str(served), reload_poll_s="0") as server:
        with load(server.port, args.connections) as tally:
            time.sleep(1)
            os.replace(shutil.copy(other, work / "next.safetensors"), served)
            sent = time.monotonic()
            server.process.send_signal(signal.SIGHUP)
            time.sleep(args.reload_wait)
        new_id = tally.model_ids[-1][1] if tally.model_ids else "?"
        switch = model_id_switch_s(tally, new_id, sent)
        rows.append(
            (
                f"reload under {args.connections} connections: failed requests",
                f"{tally.failed} of {tally.statuses.total() + tally.failed}",
            )
        )
        rows.append(("reload: answers name the new model after", f"{switch:.2f} s" if switch is not None else "never"))
        with load(server.port, args.connections) as bad_tally:
            time.sleep(1)
            (work / "corrupt.safetensors").write_bytes(os.urandom(4096))
            os.replace(work / "corrupt.safetensors", served)
            server.process.send_signal(signal.SIGHUP)
            time.sleep(2)
        kept = {model_id for _, model_id in bad_tally.model_ids} == {new_id}
        rows.append(("corrupt checkpoint reload: failed requests, old id kept", f"{bad_tally.failed}, {kept}"))
    return rows


def measure_drain(work: Path, args: argparse.Namespace, workers: int) -> list[tuple[str, str]]:
    with (
        running_server(work, workers=str(workers), reload_poll_s="0") as server,
        load(server.port, args.connections) as tally,
    ):
        time.sleep(2)
        server.process.send_signal(signal.SIGTERM)
        code = server.process.wait(60)
        time.sleep(0.5)
    detail = ", ".join(f"{name} {count}" for name, count in tally.failures.items()) or "none"
    return [
        (
            f"SIGTERM under {args.connections} connections, {workers} worker(s): reset / answered / refused, exit",
            f"{tally.failed} ({detail}) / {tally.statuses[200]} / {tally.refused}, {code}",
        )
    ]


def measure_shedding(work: Path, args: argparse.Namespace) -> list[tuple[str, str]]:
    """Completed req/s at the load a small queue sustains, and at 4x that load: clients that wait the
    Retry-After they are given, and clients that retry at once; with the default wait for a place in
    a full queue, and with none (refused at once), side by side."""
    queue = 4
    rows = []
    default_wait_ms = Settings.model_fields["queue_wait_ms"].default
    for wait_ms in (default_wait_ms, 0):
        with running_server(work, queue_size=str(queue), reload_poll_s="0", queue_wait_ms=str(wait_ms)) as server:
            rates = {}
            for label, connections, polite in (
                ("sustainable", queue, False),
                ("honouring Retry-After", 4 * queue, True),
                ("retrying at once", 4 * queue, False),
            ):
                with load(server.port, connections, retry_after_503=polite) as tally:
                    time.sleep(args.shed_seconds)
                rates[label] = tally.statuses[200] / args.shed_seconds
        wait = f"{wait_ms:g} ms wait for a place" if wait_ms else "no wait for a place"
        sustainable = rates.pop("sustainable")
        rows.append((f"completed req/s, queue {queue}, {wait}: {queue} clients (sustainable)", f"{sustainable:.0f}"))
        for label, rate in rates.items():
            rows.append(
                (
                    f"completed req/s, queue {queue}, {wait}: {4 * queue} clients {label}",
                    f"{rate:.0f} ({rate / sustainable:.2f} of sustainable)",
                )
            )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.hostile", description=__doc__)
    parser.add_argument("--idle", type=int, default=500, help="idle connections (issue: 2000)")
    parser.add_argument("--slowloris", type=int, default=250, help="slowloris connections (issue: 1000)")
    parser.add_argument("--connections", type=int, default=16, help="load clients during reload and drain (issue: 64)")
    parser.add_argument(
        "--read-timeout", type=float, default=10.0, help="NAMEORIGIN_TIMEOUT_REQUEST_READ_S for the attack"
    )
    parser.add_argument("--probe-requests", type=int, default=500, help="a lone client's requests per round")
    parser.add_argument("--rounds", type=int, default=3, help="idle and attack rounds, alternating")
    parser.add_argument("--reload-wait", type=float, default=6.0)
    parser.add_argument("--shed-seconds", type=float, default=5.0)
    args = parser.parse_args(argv)
    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory(prefix="bench-hostile-") as folder:
        work = Path(folder)
        rows += measure_attack(work, args)
        first, second = two_checkpoints(work)
        rows += measure_reload(work, args, first, second)
        for workers in (1, 2):
            rows += measure_drain(work, args, workers)
        rows += measure_shedding(work, args)
    width = max(len(label) for label, _ in rows)
    print(f"load average {os.getloadavg()[0]:.2f}, {os.cpu_count()} cores")
    for label, value in rows:
        print(f"{label:<{width}}  {value}")
    return 0


def two_checkpoints(work: Path) -> tuple[Path, Path]:
    """The shipped model and a copy with one weight nudged: same labels, another model id."""
    import torch

    from model.assets import DEFAULT_CHECKPOINT_PATH
    from model.checkpoint import load_checkpoint, save_checkpoint

    shipped = load_checkpoint(DEFAULT_CHECKPOINT_PATH)
    network = shipped.build_network()
    with torch.no_grad():
        next(network.parameters()).view(-1)[0] += 0.01
    other = work / "nudged.safetensors"
    save_checkpoint(
        other,
        network,
        shipped.encoder_config,
        shipped.labels,
        shipped.build_language_model(),
        shipped.label_prior,
        shipped.evidence_table,
        shipped.info,
    )
    return Path(DEFAULT_CHECKPOINT_PATH), other


if __name__ == "__main__":
    raise SystemExit(main())
