"""What makes a run resumable: finished chunks kept as part files in OUTPUT.partial/ (with the names
each added to the answer cache), and a progress record there saying how many are finished, for which
input and options.

A chunk counts as finished only once its files are complete on disk (written to a temporary name,
fsynced, renamed) and the record says so (written the same way). A run killed at any instant leaves
either a record that counts the chunk or one that does not; a resumed run deletes any part the record
does not count and writes it again, so its output is the one an uninterrupted run writes.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batch.errors import BatchInputError

logger = logging.getLogger(__name__)

PROGRESS_FILE = "progress.json"
PROGRESS_VERSION = 1
PARTIAL_SUFFIX = ".partial"


def partial_dir(output_path: Path) -> Path:
    """OUTPUT.partial, beside the output."""
    return output_path.with_name(output_path.name + PARTIAL_SUFFIX)


def input_fingerprint(input_path: str) -> dict[str, Any]:
    """Path, size and modification time: a file changed since the interrupted run is refused."""
    stat = os.stat(input_path)
    return {"path": str(Path(input_path).resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


@dataclass
class Progress:
    """The record in progress.json."""

    input: dict[str, Any]
    options: dict[str, Any]
    completed_chunks: int = 0
    summary: dict[str, Any] = field(default_factory=dict)  # the counts of the finished chunks, for the final summary

    def to_json(self) -> str:
        record = {
            "version": PROGRESS_VERSION,
            "input": self.input,
            "options": self.options,
            "completed_chunks": self.completed_chunks,
            "summary": self.summary,
        }
        return json.dumps(record, indent=1, sort_keys=True)


class PartsDir:
    """OUTPUT.partial/: progress.json and part-00000.<ext>, part-00001.<ext>, ..."""

    def __init__(self, directory: Path, extension: str) -> None:
        self.directory = directory
        self.extension = extension

    def start(self, input_info: dict[str, Any], options: dict[str, Any]) -> Progress:
        """The progress so far (none when there is no earlier run); refuses one made for another input
        or other options, and drops any part it does not count."""
        record_path = self.directory / PROGRESS_FILE
        if not record_path.exists():
            self.directory.mkdir(exist_ok=True)
            progress = Progress(input_info, options)
            self.commit(progress)
            return progress
        progress = self._read(record_path)
        _refuse_mismatch(self.directory, "input", progress.input, input_info)
        _refuse_mismatch(self.directory, "options", progress.options, options)
        for path in self.directory.iterdir():
            index = self._index(path)
            if path.name != PROGRESS_FILE and (index is None or index >= progress.completed_chunks):
                path.unlink()  # a part being written when the run stopped, or one the record does not count
        expected = self.parts(progress.completed_chunks) + [
            self.cache_path(index) for index in range(progress.completed_chunks)
        ]
        missing = [path.name for path in expected if not path.exists()]
        if missing:
            raise BatchInputError(
                f"cannot resume: {self.directory} lacks {', '.join(missing)}; delete it to start over"
            )
        logger.info("resuming after %d finished chunks in %s", progress.completed_chunks, self.directory)
        return progress

    def part_path(self, index: int) -> Path:
        """A finished chunk of the output."""
        return self.directory / f"part-{index:05d}.{self.extension}"

    def cache_path(self, index: int) -> Path:
        """The names (and answers) a finished chunk added to the answer cache."""
        return self.directory / f"cache-{index:05d}.arrow"

    def write_atomically(self, path: Path, write: Callable[[Path], None]) -> None:
        """`write(temporary path)`, then rename to `path`: a part is complete or absent."""
        temporary = path.with_name(f".{path.name}.tmp")
        write(temporary)
        os.replace(temporary, path)

    def commit(self, progress: Progress) -> None:
        """Write progress.json atomically (temp file, fsync, rename)."""
        temp_path = self.directory / f".{PROGRESS_FILE}.tmp"
        with open(temp_path, "w", encoding="utf-8") as file:
            file.write(progress.to_json())
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp_path, self.directory / PROGRESS_FILE)

    def parts(self, count: int) -> list[Path]:
        return [self.part_path(index) for index in range(count)]

    def remove(self) -> None:
        shutil.rmtree(self.directory)

    def _index(self, path: Path) -> int | None:
        """The chunk a part-NNNNN.<ext> or cache-NNNNN.arrow file belongs to; None for any other file."""
        for prefix, extension in (("part-", self.extension), ("cache-", "arrow")):
            number = path.name.removeprefix(prefix).removesuffix(f".{extension}")
            if path.name == f"{prefix}{number}.{extension}" and number.isdigit():
                return int(number)
        return None

    def _read(self, record_path: Path) -> Progress:
        try:
            record = json.loads(record_path.read_text(encoding="utf-8"))
            if record.get("version") != PROGRESS_VERSION:
                raise ValueError(f"version {record.get('version')!r}, expected {PROGRESS_VERSION}")
            return Progress(record["input"], record["options"], int(record["completed_chunks"]), record["summary"])
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise BatchInputError(
                f"cannot resume: {record_path} is not a progress record this code can read ({error}); "
                f"delete {self.directory} to start over"
            ) from error


def _refuse_mismatch(directory: Path, what: str, recorded: dict[str, Any], current: dict[str, Any]) -> None:
    if recorded == current:
        return
    changed = sorted(key for key in recorded.keys() | current.keys() if recorded.get(key) != current.get(key))
    details = "; ".join(f"{key}: {recorded.get(key)!r} then, {current.get(key)!r} now" for key in changed)
    raise BatchInputError(
        f"cannot resume: {what} changed since the interrupted run ({details}); "
        f"rerun with the same {what} or delete {directory} to start over"
    )
