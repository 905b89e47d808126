"""Measurement 5: the server's resident memory, read from /proc (Linux), after warm-up and after the load."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class MemorySnapshot:
    rss_mib: float  # resident now (VmRSS)
    peak_rss_mib: float  # the most it has ever been resident (VmHWM)


def memory_snapshot(pid: int) -> MemorySnapshot:
    """VmRSS and VmHWM of a process; raises FileNotFoundError when /proc has no such process."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024  # kB -> MiB
    if len(fields) != 2:
        raise ValueError(f"/proc/{pid}/status has no VmRSS/VmHWM lines (got {sorted(fields)})")
    return MemorySnapshot(rss_mib=fields["VmRSS"], peak_rss_mib=fields["VmHWM"])
