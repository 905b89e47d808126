"""The one exception enrichment raises for input it cannot use; the command maps it to exit status 2."""

from __future__ import annotations


class BatchInputError(ValueError):
    """A file, column or option that cannot be enriched; the message names it and says what was expected."""
