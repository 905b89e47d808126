"""The file formats enrichment reads and writes, told by extension or named outright."""

from __future__ import annotations

from pathlib import PurePath

from batch.errors import BatchInputError

FORMATS = ("csv", "tsv", "parquet", "jsonl")
STDIO = "-"  # standard input for INPUT, standard output for --output
STDIO_FORMAT = "csv"
EXTENSIONS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}
DELIMITERS = {"csv": ",", "tsv": "\t"}


def detect_format(path: str, given: str | None, default: str | None = None) -> str:
    """`given` when set; else the extension's format; else `default` (standard input/output: CSV)."""
    if given is not None:
        if given not in FORMATS:
            raise BatchInputError(f"format must be one of {', '.join(FORMATS)}, got {given!r}")
        return given
    if path == STDIO:
        return default or STDIO_FORMAT
    suffix = PurePath(path).suffix.lower()
    if suffix in EXTENSIONS:
        return EXTENSIONS[suffix]
    if default is not None:
        return default
    raise BatchInputError(
        f"{path}: cannot tell the format from the extension {suffix or '(none)'!r}; "
        f"name it with --format ({', '.join(FORMATS)})"
    )
