"""Answers of names already classified in earlier chunks, so a name repeated across a file is
classified once, up to a bounded number of names.

Insert-only: names are kept in the order they were first classified until the cache is full, and never
evicted. Its contents after chunk k depend on chunks 0..k alone, so a resumed run rebuilds it exactly
from the names each finished chunk added, and writes what an uninterrupted run writes. Everything is
held in Arrow (no Python object per name) and looked up with Arrow's hash kernels.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

DEFAULT_CACHE_NAMES = 1_000_000
KEY = "key"  # the dedup key of a cached answer
RAW = "raw"  # the text that was classified for it


class AnswerCache:
    """Cached answers in Arrow tables (segments), each row with its key and raw text."""

    def __init__(self, schema: pa.Schema, capacity: int = DEFAULT_CACHE_NAMES) -> None:
        if capacity < 0:
            raise ValueError(f"cache capacity must be >= 0 names, got {capacity}")
        self.schema = schema
        self.capacity = capacity
        self._segments: list[pa.Table] = []  # answers + KEY + RAW
        self._starts: list[int] = []  # the first row of each segment
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def rows_of(self, values: pa.Array, column: str) -> np.ndarray:
        """The cache row of each value (a KEY or a RAW text), -1 where it is not cached."""
        rows = np.full(len(values), -1, np.int64)
        for start, segment in zip(self._starts, self._segments, strict=True):
            found = pc.index_in(values, value_set=segment.column(column).combine_chunks())
            hit = found.is_valid().to_numpy(zero_copy_only=False)
            rows[hit] = found.fill_null(0).to_numpy()[hit] + start
        return rows

    def add(self, entries: pa.Table) -> pa.Table:
        """Keep the first entries (answers with KEY and RAW) while there is room; returns the ones kept."""
        kept = entries.slice(0, max(0, min(entries.num_rows, self.capacity - self._size)))
        if kept.num_rows:
            self._segments.append(kept)
            self._starts.append(self._size)
            self._size += kept.num_rows
            self._merge()
        return kept

    def take(self, rows: np.ndarray) -> pa.Table:
        """The answers (without KEY and RAW) at `rows`, in that order."""
        if len(rows) == 0:
            return self.schema.empty_table()
        if len(self._segments) == 1:
            return self._segments[0].select(self.schema.names).take(pa.array(rows))
        segment_of = np.searchsorted(self._starts, rows, side="right") - 1
        order = np.argsort(segment_of, kind="stable")  # rows grouped by segment
        grouped, grouped_segments = rows[order], segment_of[order]
        pieces = [
            self._segments[segment]
            .select(self.schema.names)
            .take(pa.array(grouped[grouped_segments == segment] - self._starts[segment]))
            for segment in np.unique(segment_of)
        ]
        return pa.concat_tables(pieces).combine_chunks().take(pa.array(np.argsort(order)))

    def _merge(self) -> None:
        """Each segment at most half its elder's size: O(log n) segments to look in, O(n log n) copying in all."""
        while len(self._segments) > 1 and 2 * self._segments[-1].num_rows >= self._segments[-2].num_rows:
            newest = self._segments.pop()
            self._starts.pop()
            self._segments[-1] = pa.concat_tables([self._segments[-1], newest]).combine_chunks()
