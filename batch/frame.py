"""The DataFrame API: the command's added columns for a pandas DataFrame or an Arrow table in memory.

Polars goes through Arrow: `pl.from_arrow(classify_table(polars_df.to_arrow(), "name"))`.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Hashable, Sequence
from datetime import date, time
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd
import pyarrow as pa

from batch.classify import DEFAULT_BATCH_SIZE, ClassifyOptions, ColumnClassifier, whole_number
from batch.columns import MODEL_ID_METADATA_KEY, TOP_K, check_no_collision
from batch.enrich import DEFAULT_CHUNK_ROWS, chunk_tables
from batch.errors import BatchInputError, not_a_name_column
from batch.names import check_column_count, name_text, text_array
from batch.predictors import cached_predictor
from model.predictor import DEFAULT_CHECKPOINT_PATH, DEFAULT_TOP_K, Predictor

MODEL_ID_ATTR = "nameorigin.model_id"  # key in DataFrame.attrs


def classify_table(
    table: pa.Table,
    column: str | Sequence[str],
    top_k: int = DEFAULT_TOP_K,
    *,
    all_labels: bool = False,
    prior: str | dict[str, float] = "dataset",
    min_probability: float = 0.0,
    predictor: Predictor | None = None,
    checkpoint_path: str | Path = DEFAULT_CHECKPOINT_PATH,
    device: str = "auto",
    batch_size: int = DEFAULT_BATCH_SIZE,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> pa.Table:
    """`table` with the command's added columns after its own (top-k as list<struct<label, probability>>)
    and the model id in the schema metadata. `column`: a full-name column, or (given name, surname).
    Chunked like the command, so the same rows get the same answers. `predictor` defaults to one loaded
    once per process from `checkpoint_path` on `device`."""
    columns = _columns(column, table.column_names, "table")
    options = ClassifyOptions(top_k, all_labels, prior, min_probability, batch_size)
    chunk_rows = whole_number(chunk_rows, "chunk_rows")
    classifier = ColumnClassifier(predictor or cached_predictor(checkpoint_path, device), options)
    check_no_collision(table.column_names, classifier.schema.names, "table")
    added = _answers(table.select(list(columns)), columns, classifier, chunk_rows)
    result = table
    for field, values in zip(added.schema, added.columns, strict=True):
        result = result.append_column(field, values)
    return result.replace_schema_metadata(
        {**(table.schema.metadata or {}), MODEL_ID_METADATA_KEY: classifier.model_id.encode()}
    )


def classify_frame(
    df: pd.DataFrame,
    column: str | Sequence[str],
    top_k: int = DEFAULT_TOP_K,
    *,
    all_labels: bool = False,
    prior: str | dict[str, float] = "dataset",
    min_probability: float = 0.0,
    predictor: Predictor | None = None,
    checkpoint_path: str | Path = DEFAULT_CHECKPOINT_PATH,
    device: str = "auto",
    batch_size: int = DEFAULT_BATCH_SIZE,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> pd.DataFrame:
    """A copy of `df` (same index) with the added columns after its own; the options are classify_table's.
    origin_top_k holds lists of {"label", "probability"} dicts; a missing label or probability is None /
    NaN. None, NaN, NaT and pd.NA names abstain as "empty". The model id is in `result.attrs["nameorigin.model_id"]`."""
    columns = _columns(column, list(df.columns), "DataFrame")
    options = ClassifyOptions(top_k, all_labels, prior, min_probability, batch_size)
    chunk_rows = whole_number(chunk_rows, "chunk_rows")
    classifier = ColumnClassifier(predictor or cached_predictor(checkpoint_path, device), options)
    check_no_collision(map(str, df.columns), classifier.schema.names, "DataFrame")
    names = pa.table({f"name_{index}": _text_array(df[name], name) for index, name in enumerate(columns)})
    added = _answers(names, tuple(names.column_names), classifier, chunk_rows)
    frame = pd.DataFrame(
        {
            # lists of dicts, an object column even when empty (a list of no rows made a float64 column)
            name: pd.Series(added.column(name).to_pylist(), dtype=object, index=df.index)
            if name == TOP_K
            else added.column(name).to_pandas().to_numpy()
            for name in added.column_names
        },
        index=df.index,
    )
    result = pd.concat([df, frame], axis=1)
    result.attrs = {**df.attrs, MODEL_ID_ATTR: classifier.model_id}
    return result


def _columns(column: Hashable | Sequence[Hashable], available: Sequence[Hashable], what: str) -> tuple[Any, ...]:
    """The name columns asked for: one label (any a DataFrame may have: a string, a number, a tuple of a
    MultiIndex), or a list or tuple of two; each must name exactly one column, and not the same twice."""
    sequence = isinstance(column, (list, tuple, pd.Index, np.ndarray))
    single = isinstance(column, str) or not sequence or (isinstance(column, tuple) and column in available)
    columns = (column,) if single else tuple(cast(Sequence[Hashable], column))
    check_column_count(columns)
    listed = ", ".join(map(repr, available))
    for name in columns:
        if name not in available:
            raise BatchInputError(f"{what} has no column {name!r}; its columns are: {listed}")
        if sum(1 for other in available if other == name) > 1:
            raise BatchInputError(f"{what} has {name!r} more than once; rename one so the name column is one column")
    if len(set(columns)) < len(columns):
        raise BatchInputError(f"the same column is given twice: {list(columns)}")
    return columns


def _answers(names: pa.Table, columns: tuple[str, ...], classifier: ColumnClassifier, chunk_rows: int) -> pa.Table:
    parts = [
        classifier.classify(name_text(chunk, columns, "table")).rows()
        for chunk in chunk_tables(names.to_batches(), names.schema, chunk_rows)
    ]
    return pa.concat_tables(parts) if parts else classifier.schema.empty_table()


def _text_array(series: pd.Series, column: Hashable) -> pa.Array:
    """A pandas column as Arrow strings, read as the command reads a file's column (batch.names.text_array):
    None, NaN, NaT and pd.NA become null, bytes their UTF-8 text, numbers and dates their text (which
    abstains: no letters); booleans, durations, lists, dicts and other containers are refused, and a
    lone surrogate (not UTF-8) is left out, as the predictor leaves it out."""
    try:  # Arrow's own conversion first: a column of plain strings never loops in Python
        native = pa.array(series, from_pandas=True)
    except (pa.ArrowException, TypeError, ValueError, UnicodeEncodeError):
        native = None
    if native is None or isinstance(native.type, pa.BaseExtensionType):  # mixed objects; periods, intervals, UUIDs
        return pa.array([_text(value, column) for value in series], type=pa.string())
    return text_array(native, column, "DataFrame")


def _text(value: object, column: Hashable) -> str | None:
    # pandas' own test of a missing scalar: None, NaN of any float width, pd.NA, and NaT (a missing date
    # was read as the text "NaT" and answered Korean)
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float | np.floating) and math.isnan(value):
        return None
    if isinstance(value, np.datetime64 | np.timedelta64) and np.isnat(value):
        return None
    if isinstance(value, (bytes, bytearray)):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError as error:
            raise BatchInputError(f"column {column!r} holds bytes that are not UTF-8 text: {error}") from None
    # containers, and an object's repr ("<object object at 0x...>" was answered Russian), are no text;
    # nor the numbers whose text has letters (True was Vietnamese, a numpy duration "1 days" English)
    if not isinstance(value, _READ_AS_TEXT) or isinstance(value, (bool, np.bool_, np.timedelta64)):
        raise not_a_name_column(column, f"{type(value).__name__} values")
    text = value if isinstance(value, str) else str(value)
    return _LONE_SURROGATE.sub("", text)


# Values read as their text: text itself, and numbers and dates, whose text has no letters to read.
_READ_AS_TEXT = (str, numbers.Number, date, time, np.datetime64, pd.Period, pd.Interval)


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
