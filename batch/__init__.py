"""Enrichment of whole files and tables: the origin of each row's name, added as columns.

`nameorigin-enrich` (batch.cli) for CSV, TSV, Parquet and JSON Lines files; `classify_frame` and
`classify_table` (batch.frame) for pandas and Arrow in memory; `batch.spark.classify_column` for Spark.
All of them classify each distinct name once and go through `model.predictor` only.
"""

from __future__ import annotations

from typing import Any

__all__ = ["classify_frame", "classify_table"]


def __getattr__(name: str) -> Any:
    """batch.classify_frame / classify_table, imported on first use: the command never pays for pandas."""
    if name in __all__:
        from batch import frame

        return getattr(frame, name)
    raise AttributeError(f"module 'batch' has no attribute {name!r}")
