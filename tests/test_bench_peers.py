"""bench.peers: LitServe serves the shipped model with nameorigin's request and answer JSON, and the
paired measurement produces a ratio per shape (real servers on loopback, real wrk runs)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from bench.http import BenchError, Server
from bench.peers import LitServePeer, check_same_answers, measure_pair
from model.predictor import DEFAULT_CHECKPOINT_PATH

NAMES = ["Hinton", "Nguyễn", "田中", "qwerty", "Kowalska", "Mrs. Anna van der Berg", "123", "O'Neil"]


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory):
    work_dir = tmp_path_factory.mktemp("peers")
    with (
        Server(DEFAULT_CHECKPOINT_PATH, "cpu", 1, work_dir) as ours,
        LitServePeer(DEFAULT_CHECKPOINT_PATH, 1, work_dir) as peer,
    ):
        yield ours, peer, work_dir


def test_litserve_peer_answers_exactly_as_the_service(servers) -> None:
    ours, peer, _ = servers
    for payload in ({"names": NAMES, "top_k": 3}, {"name": "Dvořák", "top_k": 18, "prior": "uniform"}):
        assert peer.post_json("/classify", payload) == ours.post_json("/classify", payload)
    check_same_answers(ours, peer, NAMES)


def test_litserve_peer_refuses_a_bad_request_like_the_service(servers) -> None:
    ours, peer, _ = servers
    for server in (ours, peer):
        with pytest.raises(BenchError, match="answered 422"):
            server.post_json("/classify", {"names": []})


def test_measure_pair_gives_a_paired_ratio_per_shape_with_the_issue_targets(servers) -> None:
    ours, peer, work_dir = servers
    rows = measure_pair(ours, peer, NAMES, repeats=1, seconds=1, work_dir=Path(work_dir))
    assert [row.measurement for row in rows] == [
        "8. peers: /classify 1 name, 1 conn (req/s)",
        "8. peers: /classify 1 name, 8 conn (req/s)",
        "8. peers: /classify 1 name, 64 conn (req/s)",
        "8. peers: /classify 100 names/request, 1 conn (names/s)",
        "8. peers: /classify 1000 names/request, 1 conn (names/s)",
        "8. peers: constant POST /ping, 64 conn (req/s)",
    ]
    assert all(row.ratio is not None and row.ratio > 0 for row in rows)
    assert [row.target.at_least if row.target else None for row in rows] == [2, None, 3, 2, 3, 1.0]


def test_litserve_peer_stops_with_all_its_processes(tmp_path: Path) -> None:
    peer = LitServePeer(DEFAULT_CHECKPOINT_PATH, 1, tmp_path)
    with peer:
        group = peer.process.pid
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        alive = subprocess.run(["pgrep", "-g", str(group)], capture_output=True, text=True).stdout.split()
        if not alive:
            break
        time.sleep(0.2)
    assert alive == []


def test_cpu_accounting_sees_this_process_groups_own_work() -> None:
    import os

    from bench.peers import group_cpu_seconds, machine_busy_seconds

    group = os.getpgid(0)
    before_group, before_machine = group_cpu_seconds(group), machine_busy_seconds()
    deadline = time.process_time() + 0.3
    while time.process_time() < deadline:
        pass
    assert group_cpu_seconds(group) - before_group >= 0.25
    assert machine_busy_seconds() - before_machine >= 0.25
