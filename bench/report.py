"""The results table: repeated samples, rows with a reference and a target, and the markdown page."""
from __future__ import annotations

import math
import os
import platform
import statistics
from dataclasses import dataclass, field
from pathlib import Path

import torch


@dataclass(frozen=True)
class Stats:
    """min / median / max of repeated runs of one measurement."""

    samples: tuple[float, ...]

    @classmethod
    def of(cls, samples: list[float]) -> "Stats":
        if not samples:
            raise ValueError("a measurement needs at least one sample, got none")
        return cls(tuple(samples))

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    def format(self, unit: str) -> str:
        """'1234 /s (1200-1300, n=3)': the median first, the spread after."""
        if len(self.samples) == 1:
            return f"{_number(self.median)} {unit}"
        return f"{_number(self.median)} {unit} ({_number(min(self.samples))}-{_number(max(self.samples))}, n={len(self.samples)})"


def paired_ratio(values: Stats, references: Stats) -> float:
    """Median over repetitions of value / reference, each pair measured back to back: a load burst
    that hits one repetition moves one ratio, not the medians of both sides."""
    if len(values.samples) != len(references.samples):
        raise ValueError(f"paired runs need as many values as references, got {len(values.samples)} and {len(references.samples)}")
    return statistics.median(value / reference for value, reference in zip(values.samples, references.samples))


@dataclass(frozen=True)
class Target:
    """A bound on a row's ratio: `at_least` 20 means ratio >= 20, `below` 5 means ratio < 5."""

    at_least: float | None = None
    below: float | None = None

    def met(self, ratio: float) -> bool:
        if self.at_least is not None and ratio < self.at_least:
            return False
        return self.below is None or ratio < self.below

    def format(self) -> str:
        if self.at_least is not None:
            return f">= {self.at_least:g}x"
        return f"< {self.below:g}x"


@dataclass(frozen=True)
class Row:
    """One line of the table: a value, what it is compared with, and optionally a target on the ratio."""

    measurement: str
    value: str
    reference: str = ""
    ratio: float | None = None
    target: Target | None = None
    note: str = ""

    @property
    def verdict(self) -> str:
        if self.target is None or self.ratio is None:
            return ""
        return "pass" if self.target.met(self.ratio) else "FAIL"

    @property
    def cells(self) -> tuple[str, ...]:
        # truncated, not rounded, so a ratio just under its target never reads as the target itself
        ratio = "" if self.ratio is None else f"{math.floor(self.ratio * 100) / 100:.2f}x"
        target = "" if self.target is None else self.target.format()
        return (self.measurement, self.value, self.reference, ratio, target, self.verdict)


REPO_ROOT = Path(__file__).resolve().parent.parent


def display_path(path: Path) -> str:
    """A path as the page shows it: relative to the repository when it is inside it."""
    try:
        return str(path.resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


HEADER = ("measurement", "value", "reference", "ratio", "target", "pass/fail")


@dataclass
class Report:
    """Everything the bench found, in the order it was measured."""

    settings: dict[str, str] = field(default_factory=dict)  # mode, device, threads, load, model
    rows: list[Row] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)  # exact commands behind the numbers, for the page
    notes: list[str] = field(default_factory=list)  # lines for the page, under the table
    profile: list[str] = field(default_factory=list)  # "where the time goes" lines
    advice: list[str] = field(default_factory=list)  # what the profile says to change

    @property
    def failures(self) -> list[Row]:
        return [row for row in self.rows if row.verdict == "FAIL"]

    def text_table(self) -> str:
        """Fixed-width table for the terminal."""
        lines = [HEADER, *(row.cells for row in self.rows)]
        widths = [max(len(line[column]) for line in lines) for column in range(len(HEADER))]
        rendered = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in lines]
        rendered.insert(1, "  ".join("-" * width for width in widths))
        return "\n".join(rendered)

    def markdown_table(self) -> str:
        lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
        lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row.cells) + " |" for row in self.rows]
        return "\n".join(lines)


def machine_description() -> dict[str, str]:
    """CPU model, core count, memory, OS, Python and torch versions, and the GPU if there is one."""
    cpu_model = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    memory = "unknown"
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        total_kib = int(meminfo.read_text().split("MemTotal:", 1)[1].split()[0])
        memory = f"{total_kib / 2**20:.1f} GiB"
    return {
        "cpu": cpu_model,
        "cores": str(os.cpu_count()),
        "memory": memory,
        "os": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none available",
    }


def _number(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


METHOD = """\
How each line is measured. Every value is the median of repeated runs (min-max and n after it); each
run of a value is paired with a run of its reference right before or after it, and the ratio is the
median of the per-pair ratios.

1. **In process.** `Predictor.predict` on the dataset's test names in batches of 1 to 4096, against the
   PyTorch tutorial's way of classifying: its concat cell (`i2h`/`i2o` over `cat(x, h)`, hidden 128),
   a (T, 1, V) one-hot tensor per name, the cell stepped in a Python loop, one `predict(name)` per
   name, on the CPU as in the tutorial whatever `--device` says. Reference and predictor runs alternate,
   so both see the same machine load.
2. **HTTP, one name per request.** The production entry point, `python -m app` (uvicorn serving
   `app.main:app` with every default setting, INFO request logs included), as a subprocess on a free
   127.0.0.1 port, loaded by `wrk` with one thread (cores are scarce) cycling through 64 distinct
   one-name bodies. The reference is `POST /ping` on the same server with the same bodies: the
   ceiling of the HTTP stack here. Runs alternate /ping and /classify; any non-2xx answer aborts
   the bench.
3. **HTTP, batches.** One connection posting 100- or 1000-name bodies back to back, against
   `Predictor.predict` in process at the same batch size, alternating.
4. **Training.** The default checkpoint's saved recipe rerun with `python -m training.train`. Its
   per-epoch history is uncalibrated (label bias and temperature are fitted after the last epoch),
   so the time is the `seconds` of the first epoch whose uncalibrated val top-1 is within 1 point
   of the shipped (calibrated) model's, read from the `history` of the metrics.json the run writes
   when it ends. When no epoch gets there, it is the whole run including calibration, with the
   calibrated top-1. Side by side with it, at the same
   time, the tutorial's per-sample SGD loop (random label, then a random name of it; lr 0.005,
   NLLLoss, hand-written update, CPU, the recipe's thread count) trains on a thread of the bench and
   is scored with its weights at the recipe's time, on the same val top-1. One run each: too slow
   to repeat.
5. **Memory.** VmHWM (peak resident set) of the server process from /proc, after warm-up and after
   the load runs.

The test names repeat across calls, so a cache keyed on names (the encoder keeps an LRU of
transliterations) is warm in every measurement, in process and over HTTP alike; names never seen
before also pay one transliteration each.
"""


# History, not measured by this run: each line names the profile that led to a change and its effect then.
CHANGED_BECAUSE_OF_PROFILES = (
    "- torch profiler on the forward pass: tanh cost six sigmoids on this CPU build and the one-hot input "
    "product a third of the GRU, so the CPU inference path writes nn.GRU out with a lookup and tanh(a) = "
    "2 sigmoid(2a) - 1 (1.4x faster than nn.GRU at 1024-name chunks, equal to 1e-6).",
    "- py-spy on the loaded server: a third of the event loop's own work for 100-name requests was turning "
    "result tuples into dicts, then pydantic-core writing them; the service now ranks into plain lists "
    "(`Predictor.rank`) and writes with orjson, and uvicorn parses with httptools on uvloop "
    "(100-name requests 0.64x -> 0.80x of in-process `predict`, 1000-name 0.74x -> 0.94x).",
    "- The bench's own 4096-name rows fell 114k -> 81k names/s when `rank`'s lists were built with the "
    "cyclic GC on: every 700 new lists woke a full pass over the bench's large heap. The pause covers them.",
    "- wrk at 1, 8 and 64 connections with and without the batch wait: the batcher now waits for company "
    "only after a batch that had company (1 connection 411 -> 791 req/s, 8 and 64 unchanged).",
)


def write_page(path: Path, report: Report) -> None:
    """docs/benchmarks.md: machine, settings, the table, method, commands, where the time goes."""
    machine = machine_description()
    lines = [
        "# Benchmarks",
        "",
        "Written by `python -m bench` (`make bench`); every figure is a ratio against a reference measured",
        "in the same run, because this machine is shared and its load changes minute to minute.",
        "",
        "## Machine",
        "",
        *(f"- {key}: {value}" for key, value in machine.items()),
        *(f"- {key}: {value}" for key, value in report.settings.items()),
    ]
    if machine["gpu"] == "none available":
        lines.append("- No GPU was available for these figures; `python -m bench --device cuda` runs the predictor, the server and the recipe on CUDA.")
    lines += ["", "## Results", "", report.markdown_table(), ""]
    if report.failures:
        lines += ["Targets missed: " + "; ".join(row.measurement for row in report.failures), ""]
    lines += ["## Method", "", METHOD, *(f"- {note}" for note in report.notes)]
    lines += [
        "",
        "## Commands",
        "",
        "- Full run (under 10 minutes on 2 cores): `python -m bench` or `make bench`",
        "- Smoke run: `python -m bench --quick --output /tmp/benchmarks.md`",
        "- On a GPU: `python -m bench --device cuda`",
        *(f"- {command}" for command in report.commands),
    ]
    if report.profile:
        lines += ["", "## Where the time goes", "", *report.profile, "", "### What to change because of it", ""]
        lines += report.advice or ["Nothing the profile points at stands out."]
        lines += [
            "",
            "The bench itself changed because of a first profile: it runs torch on one thread in process and in the",
            "server (NAMEORIGIN_TORCH_THREADS), because at torch's default of two threads OpenMP spin-waits whenever another",
            "job holds a core, which halved the predictor's throughput but not the single-threaded reference's, so the",
            "ratio moved with the machine's load instead of with the code.",
            "",
            "### What profiles changed (figures from the runs that led to each change, this machine)",
            "",
            *CHANGED_BECAUSE_OF_PROFILES,
        ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines).rstrip() + "\n")
