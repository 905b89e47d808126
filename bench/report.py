"""The results table: repeated samples, rows with a reference and a target, and the markdown page."""

from __future__ import annotations

import math
import os
import platform
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch


@dataclass(frozen=True)
class Stats:
    """min / median / max of repeated runs of one measurement."""

    samples: tuple[float, ...]

    @classmethod
    def of(cls, samples: list[float]) -> Stats:
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
        raise ValueError(
            f"paired runs need as many values as references, got {len(values.samples)} and {len(references.samples)}"
        )
    return statistics.median(
        value / reference for value, reference in zip(values.samples, references.samples, strict=True)
    )


def interleaved(repeats: int, *measures: Callable[[], float]) -> tuple[Stats, ...]:
    """The Stats of each measure over `repeats` rounds of all of them back to back, so the values of
    one round share its machine load (what `paired_ratio` pairs)."""
    runs: list[list[float]] = [[] for _ in measures]
    for _ in range(repeats):
        for measure, values in zip(measures, runs, strict=True):
            values.append(measure())
    return tuple(Stats.of(values) for values in runs)


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
    warnings: list[str] = field(default_factory=list)  # worth a look, not a failure (an informative row off its mark)

    @property
    def failures(self) -> list[Row]:
        return [row for row in self.rows if row.verdict == "FAIL"]

    def text_table(self) -> str:
        """Fixed-width table for the terminal."""
        lines = [HEADER, *(row.cells for row in self.rows)]
        widths = [max(len(line[column]) for line in lines) for column in range(len(HEADER))]
        rendered = [
            "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip() for line in lines
        ]
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


BEGIN_MARK = "<!-- begin: written by `python -m bench`; what is between these marks is replaced on every run -->"
END_MARK = "<!-- end: written by `python -m bench` -->"


def generated_section(report: Report) -> list[str]:
    """The part of the page a run writes: machine, settings, the table, this run's notes and commands, the profile."""
    lines = [
        "## Machine",
        "",
        *(f"- {key}: {value}" for key, value in {**machine_description(), **report.settings}.items()),
        "",
        "## Results",
        "",
        report.markdown_table(),
        "",
    ]
    if report.failures:
        lines += ["Targets missed: " + "; ".join(row.measurement for row in report.failures), ""]
    lines += [f"Warning: {warning}" for warning in report.warnings] + ([""] if report.warnings else [])
    if report.commands or report.notes:
        lines += ["## This run's commands and notes", "", *(f"- {line}" for line in report.commands + report.notes)]
    if report.profile:
        lines += ["", "## Where the time goes", "", *report.profile]
    return lines


def page_frame(path: Path) -> tuple[str, str]:
    """The hand-written text before and after the generated section of the page at `path` (a page
    that does not exist yet has only a title); raises ValueError when its marks are missing."""
    text = path.read_text() if path.exists() else f"# Benchmarks\n\n{BEGIN_MARK}\n{END_MARK}\n"
    before, begin, rest = text.partition(BEGIN_MARK)
    _, end, after = rest.partition(END_MARK)
    if not (begin and end):
        raise ValueError(f"{path} lacks the marks the bench writes between: {BEGIN_MARK!r} ... {END_MARK!r}")
    return before, after


def write_page(path: Path, report: Report) -> None:
    """Replace the generated section of the page at `path`, keeping the hand-written rest (written to
    a temporary file, then moved over the page)."""
    before, after = page_frame(path)
    page = "\n".join([before + BEGIN_MARK, "", *generated_section(report), "", END_MARK]) + after
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(page)
    os.replace(temporary, path)
