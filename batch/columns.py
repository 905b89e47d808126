"""The columns enrichment adds after the input's: their names, their Arrow types, and the refusal to
overwrite an input column that already has one of those names."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import pyarrow as pa

from batch.errors import BatchInputError

LABEL = "origin_label"  # the most probable label; null when the row abstained
PROBABILITY = "origin_probability"  # its probability; null when the row abstained
TOP_K = "origin_top_k"  # the top-k labels with their probabilities, most probable first
ABSTAINED = "origin_abstained"
REASON = "origin_reason"  # why the row abstained (one of ABSTAIN_REASONS, or "empty"); null otherwise
EXPLANATION = "origin_explanation"  # with --explain: JSON [{"text", "score"}, ...] for the label; null when abstained
MODEL_ID = "origin_model_id"  # a column in CSV, TSV and JSON Lines; Parquet keeps it in the file metadata
MODEL_ID_METADATA_KEY = b"nameorigin.model_id"

TOP_K_ENTRY = pa.struct([("label", pa.string()), ("probability", pa.float64())])
TOP_K_TYPE = pa.list_(TOP_K_ENTRY)


def probability_column(label: str) -> str:
    """The --all-labels column of one label: p_<label>."""
    return f"p_{label}"


def answer_fields(
    labels: Sequence[str], all_labels: bool, top_k_json: bool = False, explain: bool = False
) -> list[pa.Field]:
    """The added columns in output order; top-k as list<struct<label, probability>>, or as compact JSON
    text for CSV and TSV; with `explain`, the explanation as JSON text in every format."""
    fields = [
        pa.field(LABEL, pa.string()),
        pa.field(PROBABILITY, pa.float64()),
        pa.field(TOP_K, pa.string() if top_k_json else TOP_K_TYPE, nullable=False),
        pa.field(ABSTAINED, pa.bool_(), nullable=False),
        pa.field(REASON, pa.string()),
    ]
    if all_labels:
        fields += [pa.field(probability_column(label), pa.float64()) for label in labels]
    if explain:
        fields.append(pa.field(EXPLANATION, pa.string()))
    return fields


def check_no_collision(
    input_columns: Iterable[str], added_columns: Iterable[str], source: str, ignore_case: bool = False
) -> None:
    """Refuse input that already has a column enrichment would add: overwriting it silently loses data.
    `ignore_case` for Spark, whose column names match in any case by default (ORIGIN_LABEL is origin_label)."""
    fold = str.casefold if ignore_case else str
    existing = {fold(column) for column in input_columns}
    taken = [column for column in added_columns if fold(column) in existing]
    if taken:
        raise BatchInputError(
            f"{source} already has column(s) {', '.join(map(repr, taken))}, which enrichment adds; "
            "rename or drop them first (an enriched file cannot be enriched again in place)"
        )
