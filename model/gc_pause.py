"""A pause of Python's cyclic garbage collector around bursts of acyclic answer objects.

A big batch makes several tracked objects (lists, tuples, dicts) per name; every 700 allocations
trigger the collector, and in a process with a large heap its full passes walk everything.
Reference counting still frees the answers, so pausing loses nothing. It is the one place library
code touches the process-wide collector, kept because it wins the bench's in-process rows by more
than their run-to-run spread (docs/benchmarks.md, "Speed tricks"); the server also calls
gc.freeze() after warm-up, which shortens full passes but does not stop them.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class _CyclicGcPause:
    """Nested, thread-safe pauses: the collector is process-wide, so pauses are counted under a
    lock; it comes back on when the last one in any thread ends, unless it was off before the first."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._depth = 0
        self._was_enabled = False

    @contextmanager
    def __call__(self) -> Iterator[None]:
        with self._lock:
            if self._depth == 0:
                self._was_enabled = gc.isenabled()
                gc.disable()
            self._depth += 1
        try:
            yield
        finally:
            with self._lock:
                self._depth -= 1
                if self._depth == 0 and self._was_enabled:
                    gc.enable()


cyclic_gc_paused = _CyclicGcPause()
"""`with cyclic_gc_paused():` runs the block with the cyclic collector off."""
