"""What runs inside Spark's Python workers: Arrow batches in, the same batches with answers out.

Imported by the workers (the function travels by reference, not by value), so the predictor cache in
batch.predictors lives once per worker process and every task it runs reuses the loaded checkpoint.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from batch.classify import ClassifyOptions, ColumnClassifier
from batch.columns import MODEL_ID
from batch.enrich import chunk_tables
from batch.names import name_text
from batch.predictors import cached_predictor


@dataclass(frozen=True)
class WorkerOptions:
    """Everything a worker needs, small enough to pickle with the task: never the model itself."""

    checkpoint: str  # a path the worker can read, or the name of a file shipped with --files / addFile
    device: str
    columns: tuple[str, ...]
    classify: ClassifyOptions
    chunk_rows: int
    model_id: str  # read on the driver, which declared the output schema with it


def resolve_checkpoint(checkpoint: str) -> str:
    """The checkpoint as a local path: as given when it exists here, else the file of that name that
    spark-submit --files (or SparkContext.addFile) shipped to this node."""
    if Path(checkpoint).is_file():
        return checkpoint
    from pyspark import SparkFiles

    shipped = Path(SparkFiles.get(Path(checkpoint).name))
    if shipped.is_file():
        return str(shipped)
    raise FileNotFoundError(
        f"checkpoint {checkpoint!r} is neither a file on this node nor shipped with --files ({shipped} is missing)"
    )


def classify_batches(options: WorkerOptions, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """The mapInArrow function: re-chunks a partition's batches into chunks of `chunk_rows` rows, so a
    name repeated within a chunk is classified once however small Spark's Arrow batches are."""
    first = next(batches, None)
    if first is None:
        return  # an empty partition loads nothing
    # One torch thread: Spark already runs a task per core, and more threads would spin-wait for them.
    predictor = cached_predictor(resolve_checkpoint(options.checkpoint), options.device, num_threads=1)
    classifier = ColumnClassifier(predictor, options.classify)
    model_id_field = pa.field(MODEL_ID, pa.string(), nullable=False)
    schema = pa.schema(list(first.schema) + list(classifier.schema) + [model_id_field])
    for chunk in chunk_tables(_prepend(first, batches), first.schema, options.chunk_rows):
        added = classifier.classify(name_text(chunk, options.columns, "Spark partition")).rows()
        model_ids = pa.array([options.model_id] * chunk.num_rows, pa.string())
        yield from pa.Table.from_arrays(chunk.columns + added.columns + [model_ids], schema=schema).to_batches()


def _prepend(first: pa.RecordBatch, rest: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    yield first
    yield from rest
