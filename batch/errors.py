"""The one exception enrichment raises for input it cannot use; the command maps it to exit status 2."""

from __future__ import annotations


class BatchInputError(ValueError):
    """A file, column or option that cannot be enriched; the message names it and says what was expected."""


def not_a_name_column(column: object, holds: str, where: str = "") -> BatchInputError:
    """The refusal of a name column whose values are not text (lists, maps, bytes), in every entry point's
    words alike: the command, the DataFrame API and Spark."""
    prefix = f"{where}: " if where else ""
    return BatchInputError(f"{prefix}column {column!r} holds {holds}, not text: it cannot be a name column")
