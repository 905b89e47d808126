"""Spark: `classify_column(spark_df, column)` adds the command's columns to a Spark DataFrame.

Built on `mapInArrow`: Spark hands each Python worker Arrow batches, the worker loads the checkpoint
once per process (batch.predictors) and classifies each chunk's distinct names once. The output schema
is declared here, on the driver, from the checkpoint's labels. `python -m batch.spark` is the job.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import torch
from pyspark.errors import PySparkTypeError
from pyspark.sql import DataFrame
from pyspark.sql.pandas.types import from_arrow_schema, to_arrow_type
from pyspark.sql.types import (
    ArrayType,
    BinaryType,
    BooleanType,
    DayTimeIntervalType,
    MapType,
    StructField,
    StructType,
)

from batch.classify import DEFAULT_BATCH_SIZE, ClassifyOptions, whole_number
from batch.columns import MODEL_ID, answer_fields, check_no_collision
from batch.enrich import DEFAULT_CHUNK_ROWS
from batch.errors import BatchInputError, not_a_name_column
from batch.predictors import cached_predictor
from batch.spark.worker import WorkerOptions, classify_batches, resolve_checkpoint
from model.predictor import DEFAULT_CHECKPOINT_PATH, DEFAULT_TOP_K, DEVICES
from model.priors import target_log_prior


def classify_column(
    df: DataFrame,
    column: str | Sequence[str],
    top_k: int = DEFAULT_TOP_K,
    *,
    all_labels: bool = False,
    prior: str | dict[str, float] = "dataset",
    min_probability: float = 0.0,
    checkpoint_path: str | Path = DEFAULT_CHECKPOINT_PATH,
    device: str = "cpu",
    batch_size: int = DEFAULT_BATCH_SIZE,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> DataFrame:
    """`df` with origin_label, origin_probability, origin_top_k (array<struct<label, probability>>),
    origin_abstained, origin_reason, with all_labels one p_<label> per label, and origin_model_id.

    `checkpoint_path` is loaded on the driver (labels and model id for the schema, and the canary) and on each worker:
    a path every node can read, or the name of a file shipped with `spark-submit --files`."""
    columns = (column,) if isinstance(column, str) else tuple(column)
    # as the command and the pandas API refuse them, here on the driver rather than from a worker
    if not 1 <= len(columns) <= 2:
        raise BatchInputError(
            f"give one name column, or two (given name, surname); got {len(columns)}: {list(columns)}"
        )
    positions = [_column_position(df, name) for name in columns]
    if len(set(positions)) < len(positions):
        raise BatchInputError(f"the same column is given twice: {list(columns)}")
    for position in positions:
        name, data_type = df.columns[position], df.schema.fields[position].dataType
        # found here, not in a worker (batch.names.text_array refuses them too)
        if isinstance(data_type, NOT_NAME_TYPES):
            raise not_a_name_column(name, data_type.simpleString())
    _check_arrow_types(df)
    options = ClassifyOptions(top_k, all_labels, prior, min_probability, batch_size)  # types: ValueError now
    chunk_rows = whole_number(chunk_rows, "chunk_rows")
    if device not in DEVICES:  # whether CUDA is there is the workers' to say: the driver may have none
        raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
    # Loaded on the driver as the workers load it, the canary included: a broken model is refused here,
    # before the job starts, not from every worker (batch.predictors caches it for the next call).
    checkpoint = cached_predictor(resolve_checkpoint(str(checkpoint_path)), "cpu").checkpoint
    options.check_labels(checkpoint.labels)
    target_log_prior(prior, checkpoint.labels, torch.zeros(len(checkpoint.labels)))  # on the driver: PriorError now
    added = [*answer_fields(checkpoint.labels, all_labels), pa.field(MODEL_ID, pa.string(), nullable=False)]
    check_no_collision(df.columns, [field.name for field in added], "DataFrame", ignore_case=True)
    # The workers see the columns under positional names, given back after: mapInArrow looks each column
    # up by its name unescaped, so a name with a dot ("addr.city") or a backtick failed, and Arrow
    # refuses the duplicate names a join leaves (both only once the job ran).
    positional = [f"_{index}" for index in range(len(df.columns))]
    output_schema = StructType(
        [
            StructField(name, field.dataType, field.nullable, field.metadata)
            for name, field in zip(positional, df.schema.fields, strict=True)
        ]
        + from_arrow_schema(pa.schema(added)).fields
    )
    worker_options = WorkerOptions(
        checkpoint=str(checkpoint_path),
        device=device,
        columns=tuple(positional[position] for position in positions),
        classify=options,
        chunk_rows=chunk_rows,
        model_id=checkpoint.model_id,
    )
    classified = df.toDF(*positional).mapInArrow(functools.partial(classify_batches, worker_options), output_schema)
    return classified.toDF(*df.columns, *(field.name for field in added))


def _column_position(df: DataFrame, name: str) -> int:
    """Where `name` is among the DataFrame's columns, matched as Spark matches a column name: in any
    case unless the session sets spark.sql.caseSensitive (so "Name" finds a column `name`, as
    df.select("Name") would), comparing the names in lower case as Spark 4 does (so ı is not i, nor ſ
    s), and a name in backticks as the name inside them. No match, or more than one, is refused with
    the columns there are."""
    case_sensitive = str(df.sparkSession.conf.get("spark.sql.caseSensitive", "false")).lower() == "true"
    if name not in df.columns and len(name) > 2 and name[0] == name[-1] == "`":  # Spark's quoting: `a.b`, `a``b`
        name = name[1:-1].replace("``", "`")
    matches = [
        position
        for position, column in enumerate(df.columns)
        if column == name or (not case_sensitive and column.lower() == name.lower())
    ]
    if not matches:
        raise BatchInputError(f"DataFrame has no column {name!r}; its columns are: {', '.join(df.columns)}")
    if len(matches) > 1:
        found = [df.columns[position] for position in matches]
        if len(set(found)) == 1:
            raise BatchInputError(f"DataFrame has {name!r} more than once; rename one so the name column is one column")
        raise BatchInputError(
            f"DataFrame column {name!r} is ambiguous: Spark matches column names in any case and finds {found}; "
            "rename one, or set spark.sql.caseSensitive=true"
        )
    return matches[0]


# Name columns whose values are no text, refused on the driver: containers, bytes, true/false, durations.
NOT_NAME_TYPES = (ArrayType, MapType, StructType, BinaryType, BooleanType, DayTimeIntervalType)


def _check_arrow_types(df: DataFrame) -> None:
    """Refuse, on the driver, a column that Spark cannot hand to Python workers as Arrow (year-month and
    calendar intervals): the whole row travels through mapInArrow, and the job failed only once it ran."""
    for field in df.schema.fields:
        try:  # the zone only shapes a timestamp's Arrow type, which any zone lets through (none asserts)
            to_arrow_type(field.dataType, timezone="UTC")
        except (PySparkTypeError, TypeError, AssertionError) as error:
            raise BatchInputError(
                f"DataFrame column {field.name!r} ({field.dataType.simpleString()}) is of a type Spark cannot hand "
                f"to Python workers as Arrow; drop it or cast it to text first ({error.__class__.__name__})"
            ) from None
