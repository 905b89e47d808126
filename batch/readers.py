"""Input files as a schema and a stream of Arrow record batches: CSV and TSV (every column kept as the
text it was), Parquet, JSON Lines; CSV, TSV and JSON Lines also from standard input.

Memory stays bounded: Arrow reads a block or a row group at a time.
"""

from __future__ import annotations

import codecs
import csv
import io
import os
import re
import stat
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Protocol

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.json as pjson
import pyarrow.parquet as pq

from batch.errors import BatchInputError
from batch.formats import DELIMITERS, STDIO
from batch.json_schema import scan_schema
from batch.textstream import CheckedTextStream

CSV_BLOCK_BYTES = 4 << 20
JSON_BLOCK_BYTES = 8 << 20  # one JSON line must fit in a block
_ARROW_ROW = re.compile(r"\bin row (\d+)")  # where Arrow's JSON errors say the bad row is
# a row unlike the block it was typed from: another kind, a new key, a fraction in whole numbers, text in dates
_TYPE_CHANGE = re.compile(r"changed from \w+ to \w+|unexpected field|Failed to convert JSON to")
PARQUET_BATCH_ROWS = 65_536
HEADER_PROBE_BYTES = 64 << 10
MAX_HEADER_BYTES = 64 << 20


class Source(Protocol):
    name: str
    schema: pa.Schema
    num_rows: int | None  # known for Parquet only

    def batches(self, skip_rows: int = 0) -> Iterator[pa.RecordBatch]: ...

    def close(self) -> None: ...


def open_source(path: str, file_format: str, encoding: str = "utf-8") -> Source:
    """Open INPUT for reading; an unreadable, empty or malformed file raises BatchInputError naming it."""
    name = "standard input" if path == STDIO else path
    if file_format == "parquet":
        return ParquetSource(path, name)
    stream = CheckedTextStream(_open_binary(path, name), name, encoding, close_raw=path != STDIO)
    try:
        if file_format == "jsonl":
            rereadable = path != STDIO and stat.S_ISREG(os.stat(path).st_mode)  # not a pipe: it can be read twice
            schema = _json_lines_schema(path, name, encoding) if rereadable else None
            return JsonLinesSource(stream, name, schema, read_once=not rereadable)
        return CsvSource(stream, name, DELIMITERS[file_format], None if path == STDIO else Path(path), encoding)
    except BaseException:
        stream.close()
        raise


def _json_lines_schema(path: str, name: str, encoding: str) -> pa.Schema | None:
    """A JSON Lines file's column types from all its rows (batch.json_schema), when it is longer than
    the block Arrow would take them from; None when one block holds it all."""
    # Arrow's blocks are of UTF-8: another encoding's bytes may spell out to up to 4 times as many
    threshold = JSON_BLOCK_BYTES if codecs.lookup(encoding).name == "utf-8" else JSON_BLOCK_BYTES // 4
    if os.path.getsize(path) <= threshold:
        return None
    with CheckedTextStream(_open_binary(path, name), name, encoding) as stream:
        return scan_schema(stream, name, JSON_BLOCK_BYTES)


def _open_binary(path: str, name: str) -> BinaryIO:
    if path == STDIO:
        return sys.stdin.buffer
    try:
        return open(path, "rb")
    except OSError as error:
        raise BatchInputError(f"{name}: cannot read input ({error.strerror})") from error


def _skip(batches: Iterator[pa.RecordBatch], skip_rows: int) -> Iterator[pa.RecordBatch]:
    """The batches after the first `skip_rows` rows (read and dropped: text formats cannot seek to a row)."""
    for batch in batches:
        if skip_rows >= batch.num_rows:
            skip_rows -= batch.num_rows
            continue
        yield batch.slice(skip_rows) if skip_rows else batch
        skip_rows = 0


class _TextStreamSource:
    """What the CSV and JSON Lines sources share: batches from a pyarrow streaming reader, counting
    rows read so a parse error can say after which line it came."""

    _reader: pa.RecordBatchReader
    _rows_read: int
    _stream: CheckedTextStream

    def _parse_error(self, error: Exception) -> BatchInputError:
        raise NotImplementedError

    def batches(self, skip_rows: int = 0) -> Iterator[pa.RecordBatch]:
        return _skip(self._read(), skip_rows)

    def _read(self) -> Iterator[pa.RecordBatch]:
        last: pa.RecordBatch | None = None
        while True:
            try:
                batch = self._reader.read_next_batch()
            except StopIteration:
                self._at_end(last)
                return
            except pa.ArrowInvalid as error:
                raise self._parse_error(error) from None
            self._rows_read += batch.num_rows
            if batch.num_rows:
                last = batch
            yield batch

    def _at_end(self, last: pa.RecordBatch | None) -> None:
        """A check once every row is read (the rows already handed on go nowhere if it raises: every
        output is written whole or not at all)."""

    def close(self) -> None:
        """The reader first, then the stream: the reader's read-ahead thread reads the stream, and one
        still running when the interpreter exited aborted the process after the one-line error (exit
        134, "terminate called without an active exception", about 1 run in 30 on a bad long row)."""
        reader = getattr(self, "_reader", None)  # None when opening the reader failed
        if reader is not None:
            reader.close()
        self._stream.close()


class CsvSource(_TextStreamSource):
    """CSV or TSV with a header row. Every column is read as the text it was ("00501" stays "00501"),
    values may span lines inside quotes, and a row with the wrong number of fields is an error naming it.
    Empty lines are skipped, except in a one-column file, where each is a row with an empty name."""

    def __init__(
        self, stream: CheckedTextStream, name: str, delimiter: str, path: Path | None = None, encoding: str = "utf-8"
    ) -> None:
        self.name = name
        self.num_rows: int | None = None  # Source's type: unknown for a text stream
        self._stream = stream
        self._path, self._encoding, self._delimiter = path, encoding, delimiter
        self._bad_row: object | None = None
        self._rows_read = 0
        stream.skip_blank_lines()  # empty lines are skipped, those before the header too
        header = _csv_header(stream, delimiter, name)
        try:
            self._reader = pcsv.open_csv(
                stream,
                read_options=pcsv.ReadOptions(block_size=CSV_BLOCK_BYTES),
                parse_options=pcsv.ParseOptions(
                    delimiter=delimiter,
                    newlines_in_values=True,
                    invalid_row_handler=self._on_invalid_row,
                    ignore_empty_lines=len(header) > 1,  # in a one-column file an empty line is an empty name
                ),
                convert_options=pcsv.ConvertOptions(
                    column_types={column: pa.string() for column in header},
                    strings_can_be_null=False,
                    quoted_strings_can_be_null=False,
                ),
            )
        except pa.ArrowInvalid as error:
            if "Empty CSV file" not in str(error):
                raise self._parse_error(error) from None
            # A header and nothing after it, not even a line break ("name" with no newline): Arrow
            # cannot tell the columns, but the header row did. A file of no rows, as "name\n" is.
            self._reader = pa.RecordBatchReader.from_batches(
                pa.schema([(column, pa.string()) for column in header]), iter(())
            )
        self.schema = self._reader.schema
        if any(not pa.types.is_string(field.type) for field in self.schema):
            raise BatchInputError(
                f"{name}: the header row could not be read consistently (columns {self.schema.names})"
            )

    def _on_invalid_row(self, row: object) -> str:
        self._bad_row = self._bad_row or row
        return "error"

    def _at_end(self, last: pa.RecordBatch | None) -> None:
        """A quote left open runs its field to the end of the file: Arrow reads every line after it as
        that one field, without an error (1,000 rows came out as 10). Such a field is the last row's last
        and holds a line break; then a file is read again by csv in strict mode, which finds a quote out
        of place, and standard input, which cannot be, is bad when it does not end with the closing quote."""
        if last is None or not last.num_columns:
            return
        value = last.column(last.num_columns - 1)[last.num_rows - 1].as_py()
        if not isinstance(value, str) or ("\n" not in value and "\r" not in value):
            return
        if self._path is not None:  # a file can be read again: csv's strict mode knows a quote out of place
            broken = _quote_error(self._path, self._encoding, self._delimiter)
        else:  # standard input: only a file that does not end with the closing quote is known bad
            broken = not self._stream.tail.endswith(b'"')
        if broken:
            raise BatchInputError(
                f"{self.name}: a double quote on row {self._rows_read} (the last read) is never closed, so every "
                "line after it was read as one field; close or remove the stray quote"
            )

    def _parse_error(self, error: Exception) -> BatchInputError:
        row = self._bad_row
        if row is None:
            return BatchInputError(
                f"{self.name}: not a readable CSV file after row {self._rows_read + 1} ({_block_limit(error, CSV_BLOCK_BYTES)})"
            )
        expected, actual = row.expected_columns, row.actual_columns  # type: ignore[attr-defined]
        line = _ragged_line(self._path, self._encoding, self._delimiter, expected) if self._path else None
        where = f"line {line}" if line else f"a row after row {self._rows_read + 1}"
        return BatchInputError(f"{self.name}: {where} has {actual} fields; the header has {expected}")


def _ragged_line(path: Path, encoding: str, delimiter: str, expected: int) -> int | None:
    """The line on which the first record with the wrong number of fields starts. Arrow does not say
    (InvalidRow.number is often None), so the file is read again, only when it is already known bad."""
    try:
        # Arrow takes a row up to its block; csv's default limit is a field of 128 KiB
        with _csv_field_size_limit(CSV_BLOCK_BYTES), open(path, encoding=encoding, newline="") as file:
            reader = csv.reader(file, delimiter=delimiter)
            start = 1
            for record in reader:
                if record and len(record) != expected:  # empty lines are skipped, as Arrow skips them
                    return start
                start = reader.line_num + 1
    except csv.Error:  # what Arrow read, csv cannot: the error says "a row after row N" instead
        return None
    return None


@contextmanager
def _csv_field_size_limit(limit: int) -> Iterator[None]:
    """csv's module-wide field size limit set to `limit` for the block, then given back."""
    previous = csv.field_size_limit(limit)
    try:
        yield
    finally:
        csv.field_size_limit(previous)


def _quote_error(path: Path, encoding: str, delimiter: str) -> bool:
    """Whether csv in strict mode finds a quote out of place or never closed in the file (read again,
    only when its last field already looks like one that ran to the end)."""
    try:  # the runaway field may be the rest of a large file: no field size limit
        with _csv_field_size_limit(sys.maxsize), open(path, encoding=encoding, newline="") as file:
            for _ in csv.reader(file, delimiter=delimiter, strict=True):
                pass
    except csv.Error:
        return True
    return False


def _csv_header(stream: CheckedTextStream, delimiter: str, name: str) -> list[str]:
    """The header row's column names, read ahead without consuming them so that Arrow reads the header
    itself; Arrow needs the names up front to read every column as text."""
    size = HEADER_PROBE_BYTES
    while True:
        text = stream.peek_text(size)
        if not text.strip():
            raise BatchInputError(f"{name}: the file is empty (no header row)")
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
        header = next(reader)
        at_end = len(text.encode("utf-8")) < size
        if at_end or max(text.count("\n"), text.count("\r")) >= reader.line_num:
            return header
        if size >= MAX_HEADER_BYTES:
            raise BatchInputError(f"{name}: the header row is longer than {MAX_HEADER_BYTES >> 20} MiB")
        size *= 4


class JsonLinesSource(_TextStreamSource):
    """One JSON object per line, its column types given (`schema`, from every row of a file) or inferred
    by Arrow from the first block (a file of one block; standard input or a pipe, which are read once)."""

    def __init__(
        self, stream: CheckedTextStream, name: str, schema: pa.Schema | None = None, read_once: bool = False
    ) -> None:
        self.name = name
        self.num_rows: int | None = None  # Source's type: unknown for a text stream
        self._stream = stream
        self._rows_read = 0
        self._read_once = read_once
        try:
            self._reader = pjson.open_json(
                stream,
                read_options=pjson.ReadOptions(block_size=JSON_BLOCK_BYTES),
                parse_options=pjson.ParseOptions(explicit_schema=schema),
            )
        except pa.ArrowInvalid as error:
            if "Empty JSON" in str(error):
                raise BatchInputError(f"{name}: the file is empty") from None
            raise self._parse_error(error) from None
        self.schema = self._reader.schema

    def _parse_error(self, error: Exception) -> BatchInputError:
        """Arrow numbers the bad row from 0 within its block; the message counts rows of the file from 1."""
        where = f"after row {self._rows_read}"
        if match := _ARROW_ROW.search(str(error)):
            where = f"at row {self._rows_read + int(match.group(1)) + 1}"
        if _TYPE_CHANGE.search(str(error)):
            advice = (
                f"{self.name} is read once, so its column types come from its first {JSON_BLOCK_BYTES >> 20} MiB: "
                "give a file by name, and every row is read for them first"
                if self._read_once
                else "a JSON Lines column must hold one kind of value (or null) in every row: write the odd ones as text"
            )
            return BatchInputError(
                f"{self.name}: the value {where} is of another type than its column's in the rows before ({error}); "
                + advice
            )
        return BatchInputError(f"{self.name}: not valid JSON Lines {where} ({_block_limit(error, JSON_BLOCK_BYTES)})")


class ParquetSource:
    """A Parquet file read a row group at a time; a resumed run starts at the row group it needs."""

    def __init__(self, path: str, name: str) -> None:
        if path == STDIO:
            raise BatchInputError("Parquet cannot be read from standard input: give a file")
        self.name = name
        try:
            if os.path.getsize(path) == 0:
                raise BatchInputError(f"{name}: the file is empty")
            self._file = pq.ParquetFile(path)
        except OSError as error:
            raise BatchInputError(f"{name}: cannot read input ({error.strerror or error})") from error
        except pa.ArrowException as error:
            raise BatchInputError(f"{name}: not a readable Parquet file ({error})") from error
        self.schema = self._file.schema_arrow
        self.num_rows = self._file.metadata.num_rows

    def batches(self, skip_rows: int = 0) -> Iterator[pa.RecordBatch]:
        metadata = self._file.metadata
        first_group = 0
        while first_group < metadata.num_row_groups and skip_rows >= metadata.row_group(first_group).num_rows:
            skip_rows -= metadata.row_group(first_group).num_rows
            first_group += 1
        groups = list(range(first_group, metadata.num_row_groups))
        return _skip(self._read(groups), skip_rows)

    def _read(self, groups: list[int]) -> Iterator[pa.RecordBatch]:
        if not groups:
            return
        try:
            yield from self._file.iter_batches(batch_size=PARQUET_BATCH_ROWS, row_groups=groups)
        except (pa.ArrowException, OSError) as error:
            raise BatchInputError(f"{self.name}: not a readable Parquet file ({error})") from error

    def close(self) -> None:
        self._file.close()


def _block_limit(error: Exception, block_bytes: int) -> str:
    """Arrow's parse error, or, for a row longer than a read block, the limit in words: Arrow's own
    message suggests a block size the command does not let a user set."""
    if "straddl" in str(error):
        return f"a row longer than {block_bytes >> 20} MiB, the most one row may hold: it cannot be a row of names"
    return str(error)
