"""Measurement 8 (`python -m bench --peers`): nameorigin against LitServe serving the same checkpoint.

Both servers run at once on loopback, one worker each, with the same torch threads; every wrk run
against one is followed by the same run against the other, so each ratio is nameorigin over LitServe
measured under the same load. The server not being measured is stopped (SIGSTOP) meanwhile: idle,
LitServe's processes poll and take about a fifth of a core (a row says how much). Shapes: single
names at 1, 8 and 64 connections, 100- and 1000-name requests on one connection, and each stack's
constant `POST /ping` at 64 connections. The large-batch row pairs two nameorigin servers the same way.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import NamedTuple

from app.settings import Settings
from bench.http import BenchError, Server, run_wrk, write_bodies
from bench.report import Row, Stats, Target, paired_ratio

logger = logging.getLogger(__name__)

# (names per request, connections) -> the ratio nameorigin must reach over LitServe, from issue 16.
SHAPE_TARGETS: dict[tuple[int, int], Target | None] = {
    (1, 1): Target(at_least=2),
    (1, 8): None,
    (1, 64): Target(at_least=3),
    (100, 1): Target(at_least=2),
    (1000, 1): Target(at_least=3),
}
PEER_MAX_BATCH_SIZE = 64  # LitServe's batching, as bench.litserve_peer configures it
PEER_BATCH_TIMEOUT_S = 0.001
LOAD_CONNECTIONS = 64  # the constant endpoints and the worker comparison run at issue 16's 64 connections
PING_TARGET = Target(at_least=1.0)


def litserve_version() -> str:
    return importlib.metadata.version("litserve")


class LitServePeer(Server):
    """`python -m bench.litserve_peer` on a free loopback port, ready when LitServe's /health answers."""

    ready_path = "/health"

    def __init__(self, checkpoint_path: Path, num_threads: int, log_dir: Path) -> None:
        super().__init__(checkpoint_path, "cpu", num_threads, log_dir)
        self.log_path = log_dir / "litserve.log"
        self.command = [
            sys.executable,
            "-m",
            "bench.litserve_peer",
            str(self.port),
            str(checkpoint_path),
            str(num_threads),
            str(PEER_MAX_BATCH_SIZE),
            str(PEER_BATCH_TIMEOUT_S),
        ]


LARGE_REQUEST_NAMES = 1000  # the largest request the service takes by default (NAMEORIGIN_MAX_NAMES_PER_REQUEST)


def measure_large_batch_threads(
    checkpoint_path: Path, num_threads: int, names: list[str], repeats: int, seconds: float, work_dir: Path
) -> list[Row]:
    """The service as it ships (NAMEORIGIN_LARGE_BATCH_THREADS=0: large calls on the cores over the
    workers) against every call on num_threads, on 1000-name requests at one connection, paired.

    Every other server of the bench holds large calls to num_threads, so its ratios compare work per
    thread with the in-process rows and the peer; this row is what the shipped rule adds on top."""
    bodies = write_bodies(work_dir / "large-batches.jsonl", names, LARGE_REQUEST_NAMES)
    shipped_dir, held_dir = work_dir / "large-batches-shipped", work_dir / "large-batches-held"
    shipped_dir.mkdir()
    held_dir.mkdir()
    with (
        Server(checkpoint_path, "cpu", num_threads, shipped_dir, large_batch_threads=0) as shipped,
        Server(checkpoint_path, "cpu", num_threads, held_dir) as held,
    ):
        shipped_runs, held_runs = _paired_runs(shipped, held, "/classify", bodies, 1, repeats, seconds)
    # What the shipped server resolved: the same rule, on this machine, for its one worker.
    threads = Settings(torch_threads=num_threads, large_batch_threads=0, workers=1).threads_for_large_batches()
    shipped_names = Stats.of([value * LARGE_REQUEST_NAMES for value in shipped_runs.samples])
    held_names = Stats.of([value * LARGE_REQUEST_NAMES for value in held_runs.samples])
    logger.info(
        "large batches: %d threads %.0f names/s, %d %.0f", threads, shipped_names.median, num_threads, held_names.median
    )
    return [
        Row(
            measurement=f"8. large batches: /classify {LARGE_REQUEST_NAMES} names, 1 conn, "
            f"{threads} threads a large call vs {num_threads} (names/s)",
            value=f"{threads} threads {shipped_names.format('/s')}",
            reference=f"{num_threads} {held_names.format('/s')}",
            ratio=paired_ratio(shipped_names, held_names),
        )
    ]


def check_same_answers(ours: Server, peer: Server, names: list[str]) -> None:
    """Refuse to compare stacks that answer differently: the same JSON, but for nothing."""
    for payload in ({"name": names[0], "top_k": 3}, {"names": names[:20], "top_k": 3}):
        if ours.post_json("/classify", payload) != peer.post_json("/classify", payload):
            raise BenchError(f"LitServe and nameorigin answer {payload} differently")


def measure_peers(
    checkpoint_path: Path, num_threads: int, names: list[str], repeats: int, seconds: float, work_dir: Path
) -> list[Row]:
    """Rows of measurement 8, each a paired ratio nameorigin / LitServe in requests (or names) per second."""
    with (
        Server(checkpoint_path, "cpu", num_threads, work_dir) as ours,
        LitServePeer(checkpoint_path, num_threads, work_dir) as peer,
    ):
        check_same_answers(ours, peer, names)
        rows = [*idle_rows(ours, peer), *measure_pair(ours, peer, names, repeats, seconds, work_dir)]
        check_same_answers(ours, peer, names)  # both came through being stopped and continued whole
        return rows


def measure_pair(
    ours: Server, peer: Server, names: list[str], repeats: int, seconds: float, work_dir: Path
) -> list[Row]:
    """Every shape of SHAPE_TARGETS, then the constant endpoints, on two running servers."""
    rows = [
        _shape_row(ours, peer, names, size, connections, target, repeats, seconds, work_dir)
        for (size, connections), target in SHAPE_TARGETS.items()
    ]
    bodies = write_bodies(work_dir / "peer-ping.jsonl", names, 1)
    ours_runs, peer_runs = _paired_runs(ours, peer, "/ping", bodies, LOAD_CONNECTIONS, repeats, seconds)
    rows.append(
        Row(
            measurement=f"8. peers: constant POST /ping, {LOAD_CONNECTIONS} conn (req/s)",
            value=f"nameorigin {ours_runs.format('/s')}",
            reference=f"LitServe {peer_runs.format('/s')}",
            ratio=paired_ratio(ours_runs, peer_runs),
            target=PING_TARGET,
        )
    )
    return rows


def _shape_row(
    ours: Server,
    peer: Server,
    names: list[str],
    size: int,
    connections: int,
    target: Target | None,
    repeats: int,
    seconds: float,
    work_dir: Path,
) -> Row:
    bodies = write_bodies(work_dir / f"peer-{size}.jsonl", names, size)
    ours_runs, peer_runs = _paired_runs(ours, peer, "/classify", bodies, connections, repeats, seconds)
    unit = "req/s" if size == 1 else "names/s"
    scale = 1 if size == 1 else size
    ours_stats = Stats.of([value * scale for value in ours_runs.samples])
    peer_stats = Stats.of([value * scale for value in peer_runs.samples])
    shape = "1 name" if size == 1 else f"{size} names/request"
    logger.info(
        "peers %s, %d conn: nameorigin %.0f, LitServe %.0f", shape, connections, ours_stats.median, peer_stats.median
    )
    return Row(
        measurement=f"8. peers: /classify {shape}, {connections} conn ({unit})",
        value=f"nameorigin {ours_stats.format('/s')}",
        reference=f"LitServe {peer_stats.format('/s')}",
        ratio=paired_ratio(ours_stats, peer_stats),
        target=target,
    )


def _paired_runs(
    ours: Server, peer: Server, path: str, bodies: Path, connections: int, repeats: int, seconds: float
) -> tuple[Stats, Stats]:
    """Requests/s of each server, one warm-up and then `repeats` back-to-back pairs, each server run
    with the other stopped (`Server.paused`): idle, LitServe's processes keep polling (measurement
    `idle_rows`), and that CPU would be taken from whichever server is measured beside it."""

    def requests_per_second(server: Server, other: Server, duration: float) -> float:
        with other.paused():
            return run_wrk(server.url(path), bodies, connections, duration).requests_per_second

    requests_per_second(ours, peer, 1)
    requests_per_second(peer, ours, 1)
    ours_rps, peer_rps = [], []
    for _ in range(repeats):
        ours_rps.append(requests_per_second(ours, peer, seconds))
        peer_rps.append(requests_per_second(peer, ours, seconds))
    return Stats.of(ours_rps), Stats.of(peer_rps)


IDLE_SECONDS = 3.0


def idle_rows(ours: Server, peer: Server) -> list[Row]:
    """The CPU each stack takes while it answers nothing, both running (why `_paired_runs` stops the
    server it is not measuring)."""
    before = {server.pid: group_cpu_seconds(server.pid) for server in (ours, peer)}
    time.sleep(IDLE_SECONDS)
    cores = {pid: (group_cpu_seconds(pid) - seconds) / IDLE_SECONDS for pid, seconds in before.items()}
    logger.info("idle: nameorigin %.3f cores, LitServe %.3f", cores[ours.pid], cores[peer.pid])
    return [
        Row(
            measurement=f"8. peers: CPU while idle, {IDLE_SECONDS:.0f} s, both running (cores)",
            value=f"nameorigin {cores[ours.pid]:.3f}",
            reference=f"LitServe {cores[peer.pid]:.3f}",
        )
    ]


WORKERS_TARGET = Target(at_least=1.8)  # issue 16: two workers on two cores, against one


class WorkersServer(Server):
    """`python -m app` with NAMEORIGIN_WORKERS set: uvicorn's supervisor and that many workers."""

    def __init__(self, checkpoint_path: Path, num_threads: int, log_dir: Path, workers: int) -> None:
        super().__init__(checkpoint_path, "cpu", num_threads, log_dir)
        self.env["NAMEORIGIN_WORKERS"] = str(workers)
        self.log_path = log_dir / f"server-{workers}-workers.log"


def group_stats(group: int) -> list[list[str]]:
    """/proc/<pid>/stat of each live process of a process group, the fields after the name: state,
    ppid, pgrp, ..., utime (11), stime (12)."""
    stats = []
    for stat_path in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat_path.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # a process that ended while we looked
        if int(fields[2]) == group:
            stats.append(fields)
    return stats


def group_cpu_seconds(group: int) -> float:
    """CPU seconds (user + system) spent so far by the live processes of a process group."""
    ticks = sum(int(fields[11]) + int(fields[12]) for fields in group_stats(group))
    return ticks / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU seconds all cores have spent not idle since boot (/proc/stat: user .. steal, less idle and iowait)."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


class LoadedRun(NamedTuple):
    requests_per_second: float
    server_cores: float  # the server's process group
    wrk_cores: float  # the load generator
    other_cores: float  # everything else on the machine meanwhile


def loaded_run(server: Server, bodies: Path, connections: int, seconds: float) -> LoadedRun:
    """One wrk run, and which processes kept the cores busy meanwhile."""
    wrk_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    server_before, busy_before, started = group_cpu_seconds(server.pid), machine_busy_seconds(), time.perf_counter()
    requests_per_second = run_wrk(server.url("/classify"), bodies, connections, seconds).requests_per_second
    elapsed = time.perf_counter() - started
    wrk_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    wrk_cores = (wrk_after.ru_utime + wrk_after.ru_stime - wrk_before.ru_utime - wrk_before.ru_stime) / elapsed
    server_cores = (group_cpu_seconds(server.pid) - server_before) / elapsed
    busy_cores = (machine_busy_seconds() - busy_before) / elapsed
    return LoadedRun(requests_per_second, server_cores, wrk_cores, max(0.0, busy_cores - server_cores - wrk_cores))


class WorkerShape(NamedTuple):
    workers: int
    connections: int


ONE_WORKER = WorkerShape(1, LOAD_CONNECTIONS)
TWO_WORKERS = WorkerShape(2, LOAD_CONNECTIONS)
# What each of two workers sees when they share LOAD_CONNECTIONS: half of them.
ONE_WORKER_HALF_LOAD = WorkerShape(1, LOAD_CONNECTIONS // 2)
WORKER_SHAPES = (ONE_WORKER, TWO_WORKERS, ONE_WORKER_HALF_LOAD)


def measure_workers(
    checkpoint_path: Path, num_threads: int, names: list[str], repeats: int, seconds: float, work_dir: Path
) -> tuple[list[Row], str]:
    """Two workers against one at 64 connections of single names, one worker at 32 connections (each of
    the two workers' share), and a note of where the cores went."""
    bodies = write_bodies(work_dir / "workers.jsonl", names, 1)
    with (
        WorkersServer(checkpoint_path, num_threads, work_dir, 1) as one,
        WorkersServer(checkpoint_path, num_threads, work_dir, 2) as two,
    ):
        for server in (one, two):
            run_wrk(server.url("/classify"), bodies, LOAD_CONNECTIONS, 1)
        runs: dict[WorkerShape, list[LoadedRun]] = {shape: [] for shape in WORKER_SHAPES}
        for _ in range(repeats):  # the three shapes back to back, so each repeat's ratios share its load
            for shape in WORKER_SHAPES:
                server = one if shape.workers == 1 else two
                runs[shape].append(loaded_run(server, bodies, shape.connections, seconds))
    return worker_rows(runs)


def worker_rows(runs: dict[WorkerShape, list[LoadedRun]]) -> tuple[list[Row], str]:
    """The 2-vs-1 row and the two factors it is the product of, times 2:

        R(2 workers, 64) / R(1, 64) = 2 x [R(1, 32) / R(1, 64)] x [R(2, 64) / (2 R(1, 32))]

    The first factor is what a worker loses with half the connections (smaller micro-batches); the
    second is how close two workers come to two independent workers at 32 connections each (what
    the machine's other users and the sharing of cores cost). Each factor is a paired ratio of the
    same repeats, so the three rows' medians need not multiply exactly."""
    rps = {shape: Stats.of([run.requests_per_second for run in results]) for shape, results in runs.items()}
    half = ONE_WORKER_HALF_LOAD.connections
    twice_half = Stats.of([2 * value for value in rps[ONE_WORKER_HALF_LOAD].samples])
    logger.info(
        "workers: 1 -> %.0f req/s, 2 -> %.0f req/s, 1 at %d connections -> %.0f req/s",
        rps[ONE_WORKER].median,
        rps[TWO_WORKERS].median,
        half,
        rps[ONE_WORKER_HALF_LOAD].median,
    )
    rows = [
        Row(
            measurement=f"8. workers: /classify 1 name, {LOAD_CONNECTIONS} conn, 2 workers vs 1 (req/s)",
            value=f"2 workers {rps[TWO_WORKERS].format('/s')}",
            reference=f"1 worker {rps[ONE_WORKER].format('/s')}",
            ratio=paired_ratio(rps[TWO_WORKERS], rps[ONE_WORKER]),
            target=WORKERS_TARGET,
        ),
        Row(
            measurement=f"8. workers: why: 1 worker at {half} conn vs {LOAD_CONNECTIONS} (req/s)",
            value=f"{half} conn {rps[ONE_WORKER_HALF_LOAD].format('/s')}",
            reference=f"{LOAD_CONNECTIONS} conn {rps[ONE_WORKER].format('/s')}",
            ratio=paired_ratio(rps[ONE_WORKER_HALF_LOAD], rps[ONE_WORKER]),
        ),
        Row(
            measurement=f"8. workers: why: 2 workers at {LOAD_CONNECTIONS} conn vs twice 1 worker at {half} (req/s)",
            value=f"2 workers {rps[TWO_WORKERS].format('/s')}",
            reference=f"2 x 1 worker at {half} conn {twice_half.format('/s')}",
            ratio=paired_ratio(rps[TWO_WORKERS], twice_half),
        ),
    ]

    def median_of(shape: WorkerShape, field: str) -> float:
        return statistics.median(float(getattr(run, field)) for run in runs[shape])

    def cpu_per_request_us(shape: WorkerShape) -> float:
        return statistics.median(run.server_cores / run.requests_per_second * 1e6 for run in runs[shape])

    def idle_cores(shape: WorkerShape) -> float:
        cores = os.cpu_count() or 1
        return statistics.median(
            max(0.0, cores - run.server_cores - run.wrk_cores - run.other_cores) for run in runs[shape]
        )

    shapes = "; ".join(
        f"{shape.workers} worker{'s' if shape.workers > 1 else ''} at {shape.connections} connections: "
        f"server {median_of(shape, 'server_cores'):.2f}, wrk {median_of(shape, 'wrk_cores'):.2f}, "
        f"everything else {median_of(shape, 'other_cores'):.2f}, idle {idle_cores(shape):.2f} cores, "
        f"the server's CPU per request {cpu_per_request_us(shape):.0f} us"
        for shape in WORKER_SHAPES
    )
    repeats = len(runs[ONE_WORKER])
    note = f"Workers (measurement 8): where the {os.cpu_count()} cores went, median of {repeats} runs each: {shapes}"
    return rows, note
