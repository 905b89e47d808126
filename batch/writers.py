"""Enriched chunks written out in the output format: the output schema, how each format shows the added
columns, and one sink per format.

Parquet keeps top-k as list<struct<label, probability>> and the model id in the file's metadata; CSV
and TSV write top-k as compact JSON text and the model id as a column; JSON Lines writes top-k as a real
array and the model id as a field.
"""

from __future__ import annotations

import base64
import contextlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Protocol

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from batch.classify import ChunkAnswers, ColumnClassifier
from batch.columns import MODEL_ID, MODEL_ID_METADATA_KEY, check_no_collision
from batch.errors import BatchInputError
from batch.formats import DELIMITERS

JSONL_ROWS_PER_WRITE = 8192
PART_COMPRESSION = "zstd"  # resumable Parquet runs keep finished chunks as Arrow IPC files until the end


class OutputLayout:
    """The output's schema (input columns unchanged and in order, then the added ones) and each chunk's
    table in it."""

    def __init__(self, file_format: str, input_schema: pa.Schema, classifier: ColumnClassifier, source: str) -> None:
        if classifier.top_k_json != (file_format in DELIMITERS):
            raise ValueError(f"{file_format} output needs a classifier with top_k_json={file_format in DELIMITERS}")
        self.file_format = file_format
        self.model_id = classifier.model_id
        added = list(classifier.schema)
        if file_format != "parquet":
            added.append(pa.field(MODEL_ID, pa.string(), nullable=False))
        check_no_collision(input_schema.names, [field.name for field in added], source)
        if file_format in DELIMITERS:
            _check_csv_can_hold(input_schema, source)
        metadata = dict(input_schema.metadata or {})
        if file_format == "parquet":
            metadata[MODEL_ID_METADATA_KEY] = self.model_id.encode()
        self.schema = pa.schema(list(input_schema) + added, metadata=metadata)

    def table(self, chunk: pa.Table, answers: ChunkAnswers) -> pa.Table:
        """The chunk's input columns followed by its answers, as one contiguous table."""
        columns = chunk.columns + answers.rows().columns
        if self.file_format != "parquet":
            columns.append(pa.array([self.model_id], pa.string()).take(pa.array(np.zeros(chunk.num_rows, np.int32))))
        return pa.Table.from_arrays(columns, schema=self.schema).combine_chunks()


def _check_csv_can_hold(schema: pa.Schema, source: str) -> None:
    nested = [field for field in schema if pa.types.is_nested(field.type)]
    if nested:
        listed = ", ".join(f"{field.name!r} ({field.type})" for field in nested)
        raise BatchInputError(f"{source}: CSV/TSV cannot hold column(s) {listed}; write Parquet or JSON Lines instead")


class Sink(Protocol):
    def write(self, table: pa.Table) -> None: ...

    def close(self) -> None: ...

    def abandon(self) -> None:
        """Let go after an error, the output to be thrown away (only a ParquetSink holds anything)."""


def open_sink(file_format: str, file: BinaryIO, schema: pa.Schema, header: bool = True) -> Sink:
    """A sink writing `schema`'s tables to `file` (which the caller owns and closes)."""
    if file_format == "parquet":
        return ParquetSink(file, schema)
    if file_format == "jsonl":
        return JsonLinesSink(file)
    return CsvSink(file, schema, DELIMITERS[file_format], header)


@contextmanager
def writing(file_format: str, file: BinaryIO, schema: pa.Schema) -> Iterator[Sink]:
    """`open_sink`'s sink for the block: closed when it ends, abandoned when it raises."""
    sink = open_sink(file_format, file, schema)
    try:
        yield sink
    except BaseException:
        sink.abandon()
        raise
    sink.close()


class ParquetSink:
    """One row group per chunk: a resumed run that rewrites the chunks writes the same file."""

    def __init__(self, file: BinaryIO, schema: pa.Schema) -> None:
        self._writer = pq.ParquetWriter(file, schema)

    def write(self, table: pa.Table) -> None:
        self._writer.write_table(table, row_group_size=max(table.num_rows, 1))

    def close(self) -> None:
        self._writer.close()

    def abandon(self) -> None:
        """Stop writing after an error, the file to be deleted: closed now, so that the writer's
        finalizer does not write its footer later to a closed file (a traceback after the one-line
        error, on every failure once writing had started)."""
        with contextlib.suppress(OSError, ValueError):  # the file is gone or closed: nothing left to finish
            self._writer.close()


class CsvSink:
    """The header once, then each chunk's rows; the bytes of a chunk do not depend on what came before."""

    def __init__(self, file: BinaryIO, schema: pa.Schema, delimiter: str, header: bool) -> None:
        self._file = file
        self._options = pcsv.WriteOptions(include_header=False, delimiter=delimiter)
        if header:
            pcsv.write_csv(schema.empty_table(), file, pcsv.WriteOptions(include_header=True, delimiter=delimiter))

    def write(self, table: pa.Table) -> None:
        if table.num_rows:
            pcsv.write_csv(table, self._file, self._options)

    def close(self) -> None:
        self._file.flush()

    def abandon(self) -> None:
        """Nothing to finish: the file itself is deleted."""


class JsonLinesSink:
    def __init__(self, file: BinaryIO) -> None:
        self._file = file

    def write(self, table: pa.Table) -> None:
        for start in range(0, table.num_rows, JSONL_ROWS_PER_WRITE):
            rows = table.slice(start, JSONL_ROWS_PER_WRITE).to_pylist()
            try:
                self._file.write(b"".join(orjson.dumps(row, default=_json_value) + b"\n" for row in rows))
            except orjson.JSONEncodeError as error:  # a value nested deeper than orjson writes (254 levels)
                depth = " (orjson writes at most 254 levels of nesting)" if "Recursion" in str(error) else ""
                raise BatchInputError(f"a row cannot be written as JSON Lines: {error}{depth}") from None

    def close(self) -> None:
        self._file.flush()

    def abandon(self) -> None:
        """Nothing to finish: the file itself is deleted."""


def _json_value(value: object) -> str:
    """What JSON has no type for: bytes as base64 text (the way JSON carries binary; their Python repr,
    "b'\\x00'", was what came out before), anything else (a Decimal) as its text."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    return str(value)


def write_arrow(path: Path, table: pa.Table) -> None:
    """An Arrow IPC file, fsynced: a resumable run's cache journal entry."""
    with open(path, "wb") as file:
        with ipc.new_file(file, table.schema, options=ipc.IpcWriteOptions(compression=PART_COMPRESSION)) as writer:
            writer.write_table(table)
        file.flush()
        os.fsync(file.fileno())


def read_arrow(path: Path) -> pa.Table:
    with ipc.open_file(path) as reader:
        return reader.read_all()


def write_part(file_format: str, path: Path, schema: pa.Schema, table: pa.Table) -> None:
    """One finished chunk of a resumable run: Arrow IPC for Parquet output (merged into one file at the end),
    else exactly the bytes the chunk takes in the output."""
    with open(path, "wb") as file:
        if file_format == "parquet":
            with ipc.new_file(file, schema, options=ipc.IpcWriteOptions(compression=PART_COMPRESSION)) as writer:
                writer.write_table(table)
        else:
            sink = open_sink(file_format, file, schema, header=False)
            sink.write(table)
            sink.close()
        file.flush()
        os.fsync(file.fileno())  # the progress record that follows must never count a chunk the disk lacks


def append_part(file_format: str, path: Path, sink: Sink, output: BinaryIO) -> None:
    """Add one finished chunk to the final output."""
    if file_format == "parquet":
        sink.write(read_arrow(path).combine_chunks())
        return
    output.flush()
    with open(path, "rb") as part:
        while block := part.read(1 << 20):
            output.write(block)
