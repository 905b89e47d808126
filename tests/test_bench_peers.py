"""bench.peers: LitServe serves the shipped model with nameorigin's request and answer JSON, and the
paired measurement produces a ratio per shape (real servers on loopback, real wrk runs)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from bench.http import BenchError, Server
from bench.peers import (
    ONE_WORKER,
    ONE_WORKER_HALF_LOAD,
    TWO_WORKERS,
    LitServePeer,
    LoadedRun,
    check_same_answers,
    group_cpu_seconds,
    group_stats,
    idle_rows,
    measure_large_batch_threads,
    measure_pair,
    worker_rows,
)
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


def group_states(group: int) -> list[str]:
    """The state letter (R, S, T, ...) of every live process of a process group."""
    return [fields[0] for fields in group_stats(group)]


def test_a_paused_server_is_stopped_whole_takes_no_cpu_and_answers_after(servers) -> None:
    """LitServe runs several processes; every one is stopped while the other server is measured, and
    it answers as before once continued."""
    ours, peer, _ = servers
    assert len(group_states(peer.pid)) >= 2
    with peer.paused():
        assert wait_for(lambda: set(group_states(peer.pid)) == {"T"})  # signals arrive asynchronously
        before = group_cpu_seconds(peer.pid)
        time.sleep(1.0)
        assert group_cpu_seconds(peer.pid) == before
    assert wait_for(lambda: "T" not in group_states(peer.pid))
    check_same_answers(ours, peer, NAMES)


def wait_for(condition, timeout_s: float = 5.0) -> bool:
    """Whether `condition()` held within the timeout, polled."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_a_server_left_paused_still_stops_at_once(tmp_path: Path) -> None:
    """A server whose group was never continued (the bench interrupted inside `paused`) still ends on
    SIGTERM, not after the 15 s wait for SIGKILL."""
    server = Server(DEFAULT_CHECKPOINT_PATH, "cpu", 1, tmp_path)
    with server:
        os.killpg(server.pid, signal.SIGSTOP)
        started = time.monotonic()
    assert time.monotonic() - started < 10 and server.process.returncode is not None


def test_idle_row_measures_each_stacks_cpu_while_both_run(servers) -> None:
    ours, peer, _ = servers
    (row,) = idle_rows(ours, peer)
    assert row.measurement == "8. peers: CPU while idle, 3 s, both running (cores)"
    ours_cores = float(row.value.removeprefix("nameorigin "))
    peer_cores = float(row.reference.removeprefix("LitServe "))
    assert 0 <= ours_cores < 2 and 0 <= peer_cores < 2 and row.ratio is None


def test_bench_servers_hold_large_calls_to_the_bench_threads_unless_asked(tmp_path: Path) -> None:
    """Every server of the bench runs each call on the in-process rows' threads; only the large-batch
    row's shipped server keeps the service's own rule (0)."""
    assert Server(DEFAULT_CHECKPOINT_PATH, "cpu", 1, tmp_path).env["NAMEORIGIN_LARGE_BATCH_THREADS"] == "1"
    assert Server(DEFAULT_CHECKPOINT_PATH, "cpu", 3, tmp_path).env["NAMEORIGIN_LARGE_BATCH_THREADS"] == "3"
    shipped = Server(DEFAULT_CHECKPOINT_PATH, "cpu", 1, tmp_path, large_batch_threads=0)
    assert shipped.env["NAMEORIGIN_LARGE_BATCH_THREADS"] == "0"


def test_large_batch_row_pairs_the_shipped_rule_with_one_thread(tmp_path: Path) -> None:
    """Names enough for 1000 distinct readings, so the shipped server's calls are large; the row's
    count is the one that server logs it took."""
    names = [
        f"Name{'abcdefghij'[index // 100]}{'abcdefghij'[index // 10 % 10]}{'abcdefghij'[index % 10]}"
        for index in range(1000)
    ]
    rows = measure_large_batch_threads(DEFAULT_CHECKPOINT_PATH, 1, names, repeats=1, seconds=1, work_dir=tmp_path)
    log = (tmp_path / "large-batches-shipped" / "server.log").read_text()
    taken = int(log.split("torch threads 1, ", 1)[1].split(" ", 1)[0])
    assert [row.measurement for row in rows] == [
        f"8. large batches: /classify 1000 names, 1 conn, {taken} threads a large call vs 1 (names/s)"
    ]
    assert "torch threads 1, 1 for a CPU call" in (tmp_path / "large-batches-held" / "server.log").read_text()
    assert rows[0].ratio is not None and rows[0].ratio > 0 and rows[0].target is None


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


def _loaded(requests_per_second: float, server_cores: float) -> LoadedRun:
    return LoadedRun(requests_per_second, server_cores, wrk_cores=0.1, other_cores=0.0)


def test_worker_rows_split_the_two_worker_ratio_into_batching_and_sharing() -> None:
    runs = {
        ONE_WORKER: [_loaded(2700, 1.0), _loaded(2600, 1.0)],
        TWO_WORKERS: [_loaded(3600, 1.8), _loaded(3640, 1.8)],
        ONE_WORKER_HALF_LOAD: [_loaded(2000, 1.0), _loaded(2000, 1.0)],
    }
    rows, note = worker_rows(runs)
    by_name = {row.measurement: row for row in rows}
    overall = by_name["8. workers: /classify 1 name, 64 conn, 2 workers vs 1 (req/s)"]
    batching = by_name["8. workers: why: 1 worker at 32 conn vs 64 (req/s)"]
    sharing = by_name["8. workers: why: 2 workers at 64 conn vs twice 1 worker at 32 (req/s)"]
    assert overall.target is not None and overall.target.at_least == 1.8
    assert overall.verdict == "FAIL"
    assert batching.target is None and sharing.target is None
    assert batching.ratio == pytest.approx((2000 / 2700 + 2000 / 2600) / 2)
    assert sharing.ratio == pytest.approx((3600 / 4000 + 3640 / 4000) / 2)
    # the identity the rows stand for, repeat by repeat: overall = 2 x batching x sharing
    assert overall.ratio == pytest.approx(2 * batching.ratio * sharing.ratio, rel=0.02)
    # the server's CPU per request: 1.8 cores / 3620 req/s, and one worker's 1.0 / 2000
    assert "2 workers at 64 connections" in note and "CPU per request 497 us" in note
    assert "1 worker at 32 connections" in note and "CPU per request 500 us" in note
    assert note.count("idle") == 3
