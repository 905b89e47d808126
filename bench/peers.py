"""Measurement 8 (`python -m bench --peers`): nameorigin against LitServe serving the same checkpoint.

Both servers run at once on loopback, one worker each, with the same torch threads; every wrk run
against one is followed by the same run against the other, so each ratio is nameorigin over LitServe
measured under the same load. Shapes: single names at 1, 8 and 64 connections, 100- and 1000-name
requests on one connection, and each stack's constant `POST /ping` at 64 connections.
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
        return measure_pair(ours, peer, names, repeats, seconds, work_dir)


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
    """Requests/s of each server, one warm-up and then `repeats` back-to-back pairs."""
    for server in (ours, peer):
        run_wrk(server.url(path), bodies, connections, 1)
    ours_rps, peer_rps = [], []
    for _ in range(repeats):
        ours_rps.append(run_wrk(ours.url(path), bodies, connections, seconds).requests_per_second)
        peer_rps.append(run_wrk(peer.url(path), bodies, connections, seconds).requests_per_second)
    return Stats.of(ours_rps), Stats.of(peer_rps)


WORKERS_TARGET = Target(at_least=1.8)  # issue 16: two workers on two cores, against one


class WorkersServer(Server):
    """`python -m app` with NAMEORIGIN_WORKERS set: uvicorn's supervisor and that many workers."""

    def __init__(self, checkpoint_path: Path, num_threads: int, log_dir: Path, workers: int) -> None:
        super().__init__(checkpoint_path, "cpu", num_threads, log_dir)
        self.env["NAMEORIGIN_WORKERS"] = str(workers)
        self.log_path = log_dir / f"server-{workers}-workers.log"


def group_cpu_seconds(group: int) -> float:
    """CPU seconds (user + system) spent so far by the live processes of a process group."""
    ticks = 0
    for stat_path in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat_path.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # a process that ended while we looked
        if int(fields[2]) == group:  # fields after the name: state, ppid, pgrp, ..., utime (11), stime (12)
            ticks += int(fields[11]) + int(fields[12])
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


def measure_workers(
    checkpoint_path: Path, num_threads: int, names: list[str], repeats: int, seconds: float, work_dir: Path
) -> tuple[list[Row], str]:
    """Two workers against one at 64 connections of single names, and a note of where the cores went."""
    bodies = write_bodies(work_dir / "workers.jsonl", names, 1)
    with (
        WorkersServer(checkpoint_path, num_threads, work_dir, 1) as one,
        WorkersServer(checkpoint_path, num_threads, work_dir, 2) as two,
    ):
        for server in (one, two):
            run_wrk(server.url("/classify"), bodies, LOAD_CONNECTIONS, 1)
        runs: dict[int, list[LoadedRun]] = {1: [], 2: []}
        for _ in range(repeats):
            for workers, server in ((1, one), (2, two)):
                runs[workers].append(loaded_run(server, bodies, LOAD_CONNECTIONS, seconds))
    rps = {workers: Stats.of([run.requests_per_second for run in results]) for workers, results in runs.items()}

    def median_cores(field: str) -> str:
        return " and ".join(
            f"{statistics.median(getattr(run, field) for run in runs[workers]):.2f}" for workers in (1, 2)
        )

    logger.info("workers: 1 -> %.0f req/s, 2 -> %.0f req/s", rps[1].median, rps[2].median)
    row = Row(
        measurement=f"8. workers: /classify 1 name, {LOAD_CONNECTIONS} conn, 2 workers vs 1 (req/s)",
        value=f"2 workers {rps[2].format('/s')}",
        reference=f"1 worker {rps[1].format('/s')}",
        ratio=paired_ratio(rps[2], rps[1]),
        target=WORKERS_TARGET,
    )
    note = (
        f"Workers (measurement 8): cores busy during the {LOAD_CONNECTIONS}-connection runs with 1 and 2 workers, "
        f"median of {repeats}, of {os.cpu_count()} cores: the server's processes {median_cores('server_cores')}, "
        f"wrk {median_cores('wrk_cores')}, everything else on the machine {median_cores('other_cores')}"
    )
    return [row], note
