"""The enrichment run: read INPUT chunk by chunk, classify each chunk's distinct names, write OUTPUT.

The output appears under its name only when the run has finished: a plain run writes a temporary file
beside it and renames it at the end; a --resume run keeps finished chunks in OUTPUT.partial/ and joins
them into the output at the end. On failure neither leaves anything under the output's name.
"""

from __future__ import annotations

import functools
import os
import stat
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow as pa
import torch
from tqdm import tqdm

from batch.cache import DEFAULT_CACHE_NAMES
from batch.classify import ChunkAnswers, ClassifyOptions, ColumnClassifier
from batch.errors import BatchInputError
from batch.formats import DELIMITERS, STDIO
from batch.interrupts import interrupts_held
from batch.names import check_column_count, name_text
from batch.readers import Source, open_source
from batch.resume import PartsDir, input_fingerprint, partial_dir
from batch.summary import Summary
from batch.writers import OutputLayout, append_part, open_sink, read_arrow, write_arrow, write_part, writing
from model.predictor import Predictor

# Rows classified together: memory holds one chunk at a time, and a name repeated within a chunk is
# classified once. 2**18 rows of a few text columns take tens of MB.
DEFAULT_CHUNK_ROWS = 262_144


@dataclass(frozen=True)
class EnrichJob:
    """One run of the command, as parsed from its arguments."""

    input_path: str  # "-": standard input
    output_path: str  # "-": standard output
    columns: tuple[str, ...]  # one name column, or given name + surname
    input_format: str
    output_format: str
    encoding: str = "utf-8"
    chunk_rows: int = DEFAULT_CHUNK_ROWS
    cache_names: int = DEFAULT_CACHE_NAMES  # answers kept across chunks; 0: each chunk on its own
    resume: bool = False
    overwrite: bool = False
    progress: bool = True  # a tqdm bar on stderr, shown only when stderr is a terminal


def enrich(job: EnrichJob, predictor: Predictor, options: ClassifyOptions) -> Summary:
    """Run `job`; a bad file, column or option raises BatchInputError before or instead of any output."""
    started = time.perf_counter()
    classifier = ColumnClassifier(
        predictor, options, top_k_json=job.output_format in DELIMITERS, cache_names=job.cache_names
    )
    _check_paths(job)
    source = open_source(job.input_path, job.input_format, job.encoding)
    try:
        _check_columns(source, job.columns)
        layout = OutputLayout(job.output_format, source.schema, classifier, source.name)
        if job.output_path == STDIO:
            summary = _write_stdout(job, source, layout, classifier)
        elif job.resume:
            summary = _write_resumable(job, source, layout, classifier)
        else:
            summary = _write_atomic(job, source, layout, classifier)
    finally:
        source.close()
    summary.seconds = time.perf_counter() - started
    return summary


def chunk_tables(batches: Iterable[pa.RecordBatch], schema: pa.Schema, chunk_rows: int) -> Iterator[pa.Table]:
    """Tables of exactly `chunk_rows` rows (the last one shorter), whatever sizes the reader's batches have:
    chunk i is always rows [i * chunk_rows, (i + 1) * chunk_rows), which is what --resume counts."""
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be at least 1, got {chunk_rows}")
    pending: list[pa.RecordBatch] = []
    pending_rows = 0
    for batch in batches:
        pending.append(batch)
        pending_rows += batch.num_rows
        while pending_rows >= chunk_rows:
            table = pa.Table.from_batches(pending, schema)
            yield table.slice(0, chunk_rows)
            rest = table.slice(chunk_rows)
            pending, pending_rows = rest.to_batches(), rest.num_rows
    if pending_rows:
        yield pa.Table.from_batches(pending, schema)


def _enriched_chunks(
    job: EnrichJob,
    source: Source,
    layout: OutputLayout,
    classifier: ColumnClassifier,
    summary: Summary,
    skip_chunks: int = 0,
) -> Iterator[tuple[pa.Table, ChunkAnswers]]:
    """Each chunk as output table, with its answers, counted into `summary` before it is handed on."""
    skip_rows = skip_chunks * job.chunk_rows
    total = source.num_rows
    with tqdm(
        total=total,
        initial=min(skip_rows, total or skip_rows),
        unit=" rows",
        unit_scale=True,
        dynamic_ncols=True,
        file=sys.stderr,
        disable=None if job.progress else True,
        desc="enrich",
    ) as bar:
        for chunk in chunk_tables(source.batches(skip_rows), source.schema, job.chunk_rows):
            answers = classifier.classify(name_text(chunk, job.columns, source.name))
            summary.add(answers)
            yield layout.table(chunk, answers), answers
            bar.update(chunk.num_rows)


def _write_stdout(job: EnrichJob, source: Source, layout: OutputLayout, classifier: ColumnClassifier) -> Summary:
    summary = Summary()
    output = sys.stdout.buffer
    sink = open_sink(job.output_format, output, layout.schema)
    for table, _ in _enriched_chunks(job, source, layout, classifier, summary):
        sink.write(table)
    sink.close()
    output.flush()
    return summary


def _write_atomic(job: EnrichJob, source: Source, layout: OutputLayout, classifier: ColumnClassifier) -> Summary:
    summary = Summary()
    with _replacing(Path(job.output_path)) as file, writing(job.output_format, file, layout.schema) as sink:
        for table, _ in _enriched_chunks(job, source, layout, classifier, summary):
            sink.write(table)
    return summary


def _write_resumable(job: EnrichJob, source: Source, layout: OutputLayout, classifier: ColumnClassifier) -> Summary:
    output = Path(job.output_path)
    parts = PartsDir(partial_dir(output), "arrow" if job.output_format == "parquet" else job.output_format)
    progress = parts.start(input_fingerprint(job.input_path), _resume_options(job, classifier))
    for index in range(progress.completed_chunks):  # the cache as it was after the last finished chunk
        classifier.restore(read_arrow(parts.cache_path(index)))
    summary = Summary.from_dict(progress.summary)
    chunks = _enriched_chunks(job, source, layout, classifier, summary, skip_chunks=progress.completed_chunks)
    for index, (table, answers) in enumerate(chunks, start=progress.completed_chunks):
        parts.write_atomically(parts.cache_path(index), functools.partial(write_arrow, table=answers.cached))
        write = functools.partial(write_part, job.output_format, schema=layout.schema, table=table)
        parts.write_atomically(parts.part_path(index), write)
        progress.completed_chunks = index + 1
        progress.summary = summary.to_dict()
        parts.commit(progress)
    with _replacing(output) as file, writing(job.output_format, file, layout.schema) as sink:
        for part in parts.parts(progress.completed_chunks):
            append_part(job.output_format, part, sink, file)
    parts.remove()
    return summary


def _resume_options(job: EnrichJob, classifier: ColumnClassifier) -> dict[str, Any]:
    """Everything that changes the output: a resumed run must have been started with the same."""
    return {
        "output": str(Path(job.output_path).resolve()),
        "columns": list(job.columns),
        "input_format": job.input_format,
        "output_format": job.output_format,
        "encoding": job.encoding,
        "chunk_rows": job.chunk_rows,
        "cache_names": job.cache_names,
        "model_id": classifier.model_id,
        # the device and torch's threads move probabilities in the last digits: part of the bytes written
        "device": str(classifier.predictor.device),
        "torch_threads": torch.get_num_threads(),
        **classifier.options.to_dict(),
    }


@contextmanager
def _replacing(path: Path) -> Iterator[BinaryIO]:
    """A binary file that replaces `path` atomically when the block ends without error: written as a
    temporary file beside it, fsynced, renamed. On any error the temporary file is deleted."""
    temp_name = None
    try:
        with interrupts_held():  # a stop signal between creating the file and knowing its name left it behind
            handle, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(handle, "wb") as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temp_name, _output_mode(path))  # mkstemp makes it owner-only
        os.replace(temp_name, path)
    finally:
        with interrupts_held():
            if temp_name is not None and os.path.exists(temp_name):
                os.unlink(temp_name)


def _output_mode(path: Path) -> int:
    """The mode the output gets: a replaced file keeps its own (a private file stays private), a new
    one gets what open() would give it, 0o666 less the process's umask."""
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return 0o666 & ~_umask()


def _umask() -> int:
    """The process's umask, read from /proc where Linux shows it; elsewhere set and set back at once
    (the only portable way to read it, and briefly process-wide)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    umask = os.umask(0o077)
    os.umask(umask)
    return umask


def _check_paths(job: EnrichJob) -> None:
    """Refuse before reading anything: output over input, an existing output, a stale or impossible resume."""
    if job.output_path == STDIO:
        if job.output_format == "parquet":
            raise BatchInputError("Parquet cannot be written to standard output: give --output a file name")
        if job.resume:
            raise BatchInputError("--resume needs an output file, not standard output")
        return
    output = Path(job.output_path)
    if not output.parent.is_dir():
        raise BatchInputError(f"{output}: the output's folder {output.parent} does not exist")
    if output.is_dir():
        raise BatchInputError(f"{output}: is a folder; --output names a file")
    if job.input_path != STDIO and _same_file(Path(job.input_path), output):
        raise BatchInputError(f"{output}: the output would overwrite the input; give another --output")
    if output.is_symlink() or (output.exists() and not output.is_file()):
        # the new file is renamed over the path: a link would be replaced by a file (its target never
        # written), a FIFO or device node (/dev/null as root) by a regular file
        kind = "a symbolic link" if output.is_symlink() else "not a regular file"
        raise BatchInputError(f"{output}: is {kind}; --output names a regular file, which is replaced whole")
    if output.exists() and not job.overwrite:
        raise BatchInputError(f"{output} exists; pass --overwrite to replace it")
    if job.resume and job.input_path == STDIO:
        raise BatchInputError("--resume needs an input file, not standard input")
    if not job.resume and partial_dir(output).exists():
        raise BatchInputError(
            f"{partial_dir(output)} holds an interrupted --resume run; rerun with --resume to continue it, or delete it"
        )


def _same_file(first: Path, second: Path) -> bool:
    if first.exists() and second.exists():
        return os.path.samefile(first, second)
    return first.resolve() == second.resolve()


def _check_columns(source: Source, columns: tuple[str, ...]) -> None:
    check_column_count(columns)  # here too, not only per chunk: a file of no rows has none
    names = source.schema.names
    for column in columns:
        count = names.count(column)
        if count == 0:
            raise BatchInputError(f"{source.name} has no column {column!r}; its columns are: {', '.join(names)}")
        if count > 1:
            raise BatchInputError(
                f"{source.name} has {count} columns named {column!r}: which one holds names is unclear"
            )
    if len(set(columns)) != len(columns):
        raise BatchInputError(f"--column names the same column twice: {list(columns)}")
