"""Which text each row's name is, and the key that rows whose names share one answer have in common.

The predictor answers the same for names that differ only in letter case, spacing or Unicode form, so
a chunk classifies each key once, however many rows repeat it.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc

from batch.errors import BatchInputError
from model.encoder import name_key

logger = logging.getLogger(__name__)

EMPTY_REASON = "empty"  # why a row with a missing or blank name abstains: it never reaches the predictor


def dedup_key(raw_name: str | None) -> str:
    """name_key (NFKC, casefold, trim) with inner whitespace runs collapsed; '' for a missing or blank name."""
    if raw_name is None:
        return ""
    return " ".join(name_key(raw_name).split())


def name_text(table: pa.Table, columns: Sequence[str], source: str) -> pa.Array:
    """Each row's name as one string array (nulls kept): the column itself, or two columns (given name,
    surname) joined "given surname" with a missing or blank part skipped."""
    if not 1 <= len(columns) <= 2:
        raise BatchInputError(f"give one name column or two (given name, surname), got {len(columns)}: {list(columns)}")
    parts = [_as_text(table.column(column), column, source) for column in columns]
    if len(parts) == 1:
        return parts[0]
    # "replace" and a trim, not null_handling="skip": in pyarrow 26 "skip" drops the rows whose parts
    # are all null, so the result comes back shorter than the table.
    trimmed = [pc.utf8_trim_whitespace(part) for part in parts]
    joined = pc.binary_join_element_wise(*trimmed, " ", null_handling="replace", null_replacement="")
    return _blank_to_null(pc.utf8_trim_whitespace(joined))  # both parts missing: null, the row abstains as empty


def _as_text(column: pa.ChunkedArray, name: str, source: str) -> pa.Array:
    """The column as one string array; numbers and other scalars become their text (the predictor then
    abstains on them), nested values are refused."""
    array = column.combine_chunks()
    if pa.types.is_string(array.type):
        return array
    if pa.types.is_nested(array.type):
        raise BatchInputError(f"{source}: column {name!r} holds {array.type}, not text: it cannot be a name column")
    try:
        return pc.cast(array, pa.string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
        raise BatchInputError(f"{source}: column {name!r} ({array.type}) cannot be read as text: {error}") from error


def _blank_to_null(array: pa.Array) -> pa.Array:
    return pc.if_else(pc.equal(array, ""), pa.scalar(None, pa.string()), array)
