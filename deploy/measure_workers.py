"""Measures how the service's memory grows with uvicorn workers: RSS and PSS of master + workers.

    .venv/bin/python deploy/measure_workers.py 1 2 4               # uvicorn app.main:app --workers N
    .venv/bin/python deploy/measure_workers.py --entry app 1 2 4   # python -m app, the image's CMD

Starts the server on CPU with N workers, waits for /readyz, reads /proc once the process tree has
settled, sends some /classify load, reads /proc again, and prints the Markdown table that
docs/deployment.md carries. Linux only (/proc/<pid>/smaps_rollup).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

LOAD_NAMES = ["Hinton", "Nguyen", "Wang", "Schmidt", "Rossi", "Kowalski", "Tanaka", "Dubois"] * 8


@dataclass(frozen=True)
class TreeMemory:
    """Memory of a server's process tree in MiB; PSS splits shared pages (libtorch) fairly."""

    processes: int
    master_rss: float
    rss: float
    pss: float


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def descendants(root_pid: int) -> list[int]:
    """root_pid and every process below it, read from /proc/<pid>/stat parent ids."""
    children: dict[int, list[int]] = {}
    for stat_path in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat_path.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue  # exited while we listed /proc
        children.setdefault(int(fields[1]), []).append(int(stat_path.parent.name))
    tree, frontier = [], [root_pid]
    while frontier:
        pid = frontier.pop()
        tree.append(pid)
        frontier.extend(children.get(pid, []))
    return tree


def rss_pss_mib(pid: int) -> tuple[float, float]:
    values = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("Rss", "Pss"):
            values[key] = int(rest.split()[0]) / 1024  # kB -> MiB
    return values["Rss"], values["Pss"]


def tree_memory(root_pid: int) -> TreeMemory:
    pids = descendants(root_pid)
    per_process = [rss_pss_mib(pid) for pid in pids]
    return TreeMemory(
        processes=len(pids),
        master_rss=per_process[0][0],
        rss=sum(rss for rss, _ in per_process),
        pss=sum(pss for _, pss in per_process),
    )


def wait_until_settled(root_pid: int, expected_processes: int, timeout_s: float) -> TreeMemory:
    """Waits until the tree has its workers and its total RSS has stopped moving (< 1 MiB in 2 s)."""
    deadline = time.monotonic() + timeout_s
    previous = tree_memory(root_pid)
    while time.monotonic() < deadline:
        time.sleep(2)
        current = tree_memory(root_pid)
        if current.processes >= expected_processes and abs(current.rss - previous.rss) < 1:
            return current
        previous = current
    raise TimeoutError(f"process tree of {root_pid} did not settle in {timeout_s} s (last: {previous})")


def wait_ready(base_url: str, server: subprocess.Popen, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"server exited with {server.returncode} before /readyz answered 200")
        try:
            with urllib.request.urlopen(f"{base_url}/readyz", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError):
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{base_url}/readyz did not answer 200 in {timeout_s} s")


def send_load(base_url: str, requests: int) -> None:
    """One connection per request, so that the kernel spreads them over every worker."""
    body = json.dumps({"names": LOAD_NAMES}).encode()
    for _ in range(requests):
        request = urllib.request.Request(
            f"{base_url}/classify", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()


def server_command(entry: str, workers: int, port: int) -> list[str]:
    if entry == "uvicorn":
        return [
            sys.executable,
            "-m",
            "uvicorn",
            "app.main:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
        ]
    return [sys.executable, "-m", "app", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]


def measure(entry: str, workers: int, requests: int, timeout_s: float) -> tuple[TreeMemory, TreeMemory]:
    """(after ready, after load) for a server with `workers` uvicorn workers."""
    port = free_port()
    env = {**os.environ, "NAMEORIGIN_DEVICE": "cpu", "NAMEORIGIN_LOG_LEVEL": "WARNING"}
    command = server_command(entry, workers, port)
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base_url = f"http://127.0.0.1:{port}"
        wait_ready(base_url, server, timeout_s)
        # uvicorn runs a supervisor even for one worker only when --workers > 1.
        expected = 1 if workers == 1 else workers + 1
        ready = wait_until_settled(server.pid, expected, timeout_s)
        send_load(base_url, requests)
        loaded = wait_until_settled(server.pid, expected, timeout_s)
        return ready, loaded
    finally:
        server.terminate()
        server.wait(timeout=30)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workers", nargs="+", type=int, help="worker counts to measure, e.g. 1 2 4")
    parser.add_argument(
        "--entry",
        choices=["uvicorn", "app"],
        default="uvicorn",
        help="uvicorn app.main:app (default) or python -m app (the image's CMD)",
    )
    parser.add_argument("--requests", type=int, default=200, help="/classify requests of 64 names each")
    parser.add_argument("--timeout", type=float, default=180, help="seconds to wait for readiness")
    args = parser.parse_args(argv)

    print(
        f"Measured on: {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"entry {args.entry}, NAMEORIGIN_DEVICE=cpu, {args.requests} requests x {len(LOAD_NAMES)} names of load\n"
    )
    print("| workers | processes | master RSS | total RSS ready | total RSS after load | total PSS after load |")
    print("|---:|---:|---:|---:|---:|---:|")
    for workers in args.workers:
        ready, loaded = measure(args.entry, workers, args.requests, args.timeout)
        print(
            f"| {workers} | {loaded.processes} | {loaded.master_rss:.0f} MiB | {ready.rss:.0f} MiB "
            f"| {loaded.rss:.0f} MiB | {loaded.pss:.0f} MiB |",
            flush=True,
        )


if __name__ == "__main__":
    main()
