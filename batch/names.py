"""Which text each row's name is, and the key that rows whose names share one answer have in common.

The predictor answers the same for names with the same `model.reading.reading_key` (letter case where
it folds to one letter, spacing, Unicode form), so each key is classified once, however many rows
repeat it. (A casefold key would merge Großmann with Grossmann, which the predictor tells apart: ß is
German evidence.)
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc

from batch.errors import BatchInputError, not_a_name_column
from model.reading import reading_key

EMPTY_REASON = "empty"  # why a row with a missing or blank name abstains: it never reaches the predictor
# A cell longer than this is no name (the service refuses names over 64 characters): it is read as one
# stand-in text, which the predictor answers too-long, so free text in a name column cannot fill the
# answer cache and the reader's with long strings.
MAX_CELL_CHARACTERS = 256
TOO_LONG_STAND_IN = "x" * (MAX_CELL_CHARACTERS + 1)


def dedup_key(raw_name: str | None, exact: bool = False) -> str:
    """The predictor's reading key; '' for a missing or blank name. `exact` keys a readable name by its
    text as written instead: an explanation names the characters as written ("SMITH" is explained as
    S, M, I, T, H, not as the "Smith" of an earlier row), so with explanations only identical texts
    share an answer."""
    if raw_name is None or not raw_name.strip():
        return ""
    key = reading_key(raw_name)
    if not key:  # nothing readable but not blank ("😀", "\u200b"): the predictor says why, as it says for one row
        return NOTHING_READABLE + raw_name
    return raw_name if exact else key


# Before the text of a name whose reading is empty, so its key is never that of a blank name (''): a
# row of "😀" abstained as `empty`, where Predictor.predict answers `no-letters` (bench measurement 6).
NOTHING_READABLE = "\x00"


def name_text(table: pa.Table, columns: Sequence[str], source: str) -> pa.Array:
    """Each row's name as one string array (nulls kept): the column itself, or two columns (given name,
    surname) joined "given surname" with a missing or blank part skipped."""
    check_column_count(columns)
    parts = [text_array(table.column(column), column, source) for column in columns]
    if len(parts) == 1:
        return _long_to_stand_in(parts[0])
    # "replace" and a trim, not null_handling="skip": in pyarrow 26 "skip" drops the rows whose parts
    # are all null, so the result comes back shorter than the table.
    trimmed = [pc.utf8_trim_whitespace(part) for part in parts]
    joined = pc.binary_join_element_wise(*trimmed, " ", null_handling="replace", null_replacement="")
    return _long_to_stand_in(_blank_to_null(pc.utf8_trim_whitespace(joined)))  # both missing: null, abstains as empty


def check_column_count(columns: Sequence[object]) -> None:
    """One name column (a full name) or two (given name, surname): the command's rule and the DataFrame API's."""
    if not 1 <= len(columns) <= 2:
        raise BatchInputError(f"give one name column or two (given name, surname), got {len(columns)}: {list(columns)}")


def text_array(column: pa.Array | pa.ChunkedArray, name: object, source: str) -> pa.Array:
    """The column as one string array. Numbers, dates and times become their text, on which the predictor
    abstains (no letters); a float NaN is missing, as null is (its text "nan" was judged not-a-name).
    Values whose text has letters but no name are refused with the column: true/false (read as
    "true", True was Vietnamese), durations ("1 days" was English), and nested values."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if pa.types.is_dictionary(array.type):  # a categorical column: its values decide (True was Vietnamese)
        array = array.dictionary_decode()
    if pa.types.is_string(array.type):
        return array
    if pa.types.is_nested(array.type):
        raise not_a_name_column(name, str(array.type), source)
    if pa.types.is_boolean(array.type) or pa.types.is_duration(array.type) or pa.types.is_interval(array.type):
        raise not_a_name_column(name, f"{array.type} values", source)
    if pa.types.is_floating(array.type):
        array = pc.if_else(pc.is_nan(array), pa.scalar(None, array.type), array)
    try:
        return pc.cast(array, pa.string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
        raise BatchInputError(f"{source}: column {name!r} ({array.type}) cannot be read as text: {error}") from error


def _long_to_stand_in(array: pa.Array) -> pa.Array:
    """Cells over MAX_CELL_CHARACTERS, not counting the spaces around the text (a CHAR(300) column pads
    "Smith" to 300 characters), as the stand-in."""
    too_long = pc.greater(pc.utf8_length(pc.utf8_trim_whitespace(array)), MAX_CELL_CHARACTERS)
    return pc.if_else(too_long, pa.scalar(TOO_LONG_STAND_IN, pa.string()), array)


def _blank_to_null(array: pa.Array) -> pa.Array:
    return pc.if_else(pc.equal(array, ""), pa.scalar(None, pa.string()), array)
