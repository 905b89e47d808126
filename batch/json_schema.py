"""The column types of a whole JSON Lines file, read before its rows.

Arrow's streaming JSON reader takes each column's type from its first block and refuses a later row
whose value has another type: an optional field that is null for the first 200,000 rows and text after
them, an object that gains a key, a column of ISO dates with one free-text value. Such files are
ordinary exports. A file longer than one block is therefore parsed once before its rows are read, a
block at a time (memory stays bounded), and the blocks' schemas merged by Arrow's permissive promotion
(null to any type, int64 to double, objects to the union of their keys, lists of nulls to lists of a
type); a column of dates in some blocks and other text in others is read as text. Types that cannot be
merged (numbers in some rows, text in others) are refused by column name and rows.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import pyarrow as pa
import pyarrow.json as pjson

from batch.errors import BatchInputError
from batch.textstream import CheckedTextStream
from model.predictor import usable_cores

_MERGE_ERRORS = (pa.ArrowTypeError, pa.ArrowInvalid)
MAX_SCAN_THREADS = 4  # blocks parsed at once: a block is 8 MiB of text and its parsed table


def scan_schema(stream: CheckedTextStream, name: str, block_bytes: int) -> pa.Schema | None:
    """The schema every row of `stream` fits, read in blocks of whole lines of about `block_bytes`; None
    when a block does not parse on its own (the reader that follows then reports the bad row with its
    number, as it does without a scan).

    Each block is parsed whole, as one Arrow block: Arrow's threaded reader splits a buffer into blocks
    of its own and cannot merge a column of nulls with one of objects across them. Blocks are parsed
    on a thread per core instead (Arrow lets go of the GIL), a few at a time so memory stays bounded."""
    schema: pa.Schema | None = None
    rows_before = 0
    workers = max(1, min(usable_cores(), MAX_SCAN_THREADS))
    with ThreadPoolExecutor(workers, thread_name_prefix="json-schema") as pool:
        pending: deque[Future[pa.Table]] = deque()
        blocks = _line_blocks(stream, name, block_bytes)
        while True:
            while len(pending) < workers and (block := next(blocks, None)) is not None:
                pending.append(pool.submit(_parsed, block))
            if not pending:
                return schema
            try:
                table = pending.popleft().result()
            except pa.ArrowInvalid:
                for future in pending:
                    future.cancel()
                return None
            schema = (
                table.schema if schema is None else _merged(schema, table.schema, name, rows_before, table.num_rows)
            )
            rows_before += table.num_rows


def _parsed(block: bytes) -> pa.Table:
    return pjson.read_json(
        pa.BufferReader(block), read_options=pjson.ReadOptions(use_threads=False, block_size=len(block) + 1)
    )


def _line_blocks(stream: CheckedTextStream, name: str, block_bytes: int) -> Iterator[bytes]:
    """The stream's bytes in blocks that end at a line break, about `block_bytes` each. A line longer
    than two blocks is refused: Arrow's reader never reads one, wherever the blocks fall."""
    rest = b""
    while data := stream.read(block_bytes):
        rest += data
        cut = max(rest.rfind(b"\n"), rest.rfind(b"\r"))  # a file may end its lines with CR alone, as Arrow allows
        if cut < 0:
            if len(rest) > 2 * block_bytes:
                raise BatchInputError(
                    f"{name}: a row longer than {block_bytes >> 20} MiB, the most one row may hold: "
                    "it cannot be a row of names"
                )
            continue
        block, rest = rest[: cut + 1], rest[cut + 1 :]
        if block.strip():
            yield block
    if rest.strip():
        yield rest


def _merged(schema: pa.Schema, block: pa.Schema, name: str, rows_before: int, block_rows: int) -> pa.Schema:
    """`schema` widened to hold `block`'s rows too; columns first seen in `block` go at the end."""
    fields = list(schema)
    for field in block:
        index = schema.get_field_index(field.name)
        if index < 0:
            fields.append(field)
            continue
        kept = fields[index]
        try:
            fields[index] = kept.with_type(_merged_type(kept.type, field.type))
        except _MERGE_ERRORS:
            raise BatchInputError(
                f"{name}: column {field.name!r} holds {_kind(kept.type)} in rows 1-{rows_before} and "
                f"{_kind(field.type)} in rows {rows_before + 1}-{rows_before + block_rows}; a JSON Lines "
                "column must hold one kind of value (or null) in every row, at every depth: write the odd ones as text"
            ) from None
    return pa.schema(fields, metadata=schema.metadata)


def _merged_type(first: pa.DataType, second: pa.DataType) -> pa.DataType:
    """The type both values fit, at any depth: objects field by field (a key one lacks is null there),
    lists by their items, dates and other text as text; the rest by Arrow's permissive promotion (null to
    anything, int64 to double), which raises for kinds that do not merge."""
    if first == second:
        return first
    if _text_or_date(first) and _text_or_date(second):
        return pa.string()
    if pa.types.is_struct(first) and pa.types.is_struct(second):
        merged = {field.name: field for field in first}
        for field in second:
            kept = merged.get(field.name)
            merged[field.name] = field if kept is None else kept.with_type(_merged_type(kept.type, field.type))
        return pa.struct(list(merged.values()))
    if pa.types.is_list(first) and pa.types.is_list(second):
        return pa.list_(_merged_type(first.value_type, second.value_type))
    unified = pa.unify_schemas(
        [pa.schema([("value", first)]), pa.schema([("value", second)])], promote_options="permissive"
    )
    return unified.field(0).type


def _text_or_date(data_type: pa.DataType) -> bool:
    return bool(pa.types.is_string(data_type) or pa.types.is_timestamp(data_type))


def _kind(data_type: pa.DataType) -> str:
    """A JSON value's kind in words, with Arrow's type after it."""
    if pa.types.is_integer(data_type) or pa.types.is_floating(data_type):
        words = "numbers"
    elif pa.types.is_boolean(data_type):
        words = "true/false"
    elif pa.types.is_string(data_type):
        words = "text"
    elif pa.types.is_timestamp(data_type):
        words = "dates"
    elif pa.types.is_struct(data_type):
        words = "objects"
    elif pa.types.is_list(data_type):
        words = "lists"
    else:
        return str(data_type)
    return f"{words} ({data_type})"
