"""Measurement 8 (`python -m bench --peers`): nameorigin against LitServe serving the same checkpoint.

Both servers run at once on loopback, one worker each, with the same torch threads; every wrk run
against one is followed by the same run against the other, so each ratio is nameorigin over LitServe
measured under the same load. Shapes: single names at 1, 8 and 64 connections, 100- and 1000-name
requests on one connection, and each stack's constant `POST /ping` at 64 connections.
"""

from __future__ import annotations

import importlib.metadata
import logging
import sys
from pathlib import Path

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
PING_CONNECTIONS = 64
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
    ours_runs, peer_runs = _paired_runs(ours, peer, "/ping", bodies, PING_CONNECTIONS, repeats, seconds)
    rows.append(
        Row(
            measurement=f"8. peers: constant POST /ping, {PING_CONNECTIONS} conn (req/s)",
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
