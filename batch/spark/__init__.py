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
from pyspark.sql import DataFrame
from pyspark.sql.pandas.types import from_arrow_schema
from pyspark.sql.types import ArrayType, BinaryType, MapType, StructType

from batch.classify import DEFAULT_BATCH_SIZE, ClassifyOptions
from batch.columns import MODEL_ID, answer_fields, check_no_collision
from batch.enrich import DEFAULT_CHUNK_ROWS
from batch.errors import BatchInputError, not_a_name_column
from batch.spark.worker import WorkerOptions, classify_batches, resolve_checkpoint
from model.checkpoint import load_checkpoint
from model.predictor import DEFAULT_CHECKPOINT_PATH, DEFAULT_TOP_K
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

    `checkpoint_path` is read on the driver (labels and model id, for the schema) and on each worker:
    a path every node can read, or the name of a file shipped with `spark-submit --files`."""
    columns = (column,) if isinstance(column, str) else tuple(column)
    # as the command and the pandas API refuse them, here on the driver rather than from a worker
    if not 1 <= len(columns) <= 2:
        raise BatchInputError(
            f"give one name column, or two (given name, surname); got {len(columns)}: {list(columns)}"
        )
    if len(set(columns)) < len(columns):
        raise BatchInputError(f"the same column is given twice: {list(columns)}")
    for name in columns:
        if name not in df.columns:
            raise BatchInputError(f"DataFrame has no column {name!r}; its columns are: {', '.join(df.columns)}")
        data_type = df.schema[name].dataType
        if isinstance(data_type, (ArrayType, MapType, StructType, BinaryType)):  # found here, not in a worker
            raise not_a_name_column(name, data_type.simpleString())
    checkpoint = load_checkpoint(resolve_checkpoint(str(checkpoint_path)))
    options = ClassifyOptions(top_k, all_labels, prior, min_probability, batch_size)
    if not 1 <= top_k <= len(checkpoint.labels):
        raise ValueError(f"top_k must be between 1 and {len(checkpoint.labels)} (the model's labels), got {top_k}")
    if not 0.0 <= min_probability <= 1.0:
        raise ValueError(f"min_probability must be between 0 and 1, got {min_probability}")
    if chunk_rows < 1 or batch_size < 1:
        raise ValueError(f"chunk_rows and batch_size must be at least 1, got {chunk_rows} and {batch_size}")
    target_log_prior(prior, checkpoint.labels, torch.zeros(len(checkpoint.labels)))  # on the driver: PriorError now
    added = [*answer_fields(checkpoint.labels, all_labels), pa.field(MODEL_ID, pa.string(), nullable=False)]
    check_no_collision(df.columns, [field.name for field in added], "DataFrame", ignore_case=True)
    output_schema = StructType(df.schema.fields + from_arrow_schema(pa.schema(added)).fields)
    worker_options = WorkerOptions(
        checkpoint=str(checkpoint_path),
        device=device,
        columns=columns,
        classify=options,
        chunk_rows=chunk_rows,
        model_id=checkpoint.model_id,
    )
    return df.mapInArrow(functools.partial(classify_batches, worker_options), output_schema)
