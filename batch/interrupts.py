"""Stop signals as KeyboardInterrupt, held back while a temporary file is created or removed.

The command turns SIGTERM, SIGHUP and SIGINT into KeyboardInterrupt so that a stopped run unwinds
and deletes its temporary output. Raised between the moment a temporary file exists and the moment
its cleanup is armed (inside `tempfile.mkstemp`, or before an `os.unlink`), it would leave the file
behind; a run stopped right after it created the file did so in a test. Inside `interrupts_held()`
the handler only notes the signal, and the interrupt is raised when the block ends.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

_state = threading.local()  # signal handlers run on the main thread: its own depth and pending signal


def raise_interrupt(signal_number: int, frame: FrameType | None) -> None:
    """The signal handler: KeyboardInterrupt now, or when the held block ends."""
    if getattr(_state, "depth", 0):
        _state.pending = signal_number
        return
    raise KeyboardInterrupt(f"signal {signal_number}")


@contextmanager
def interrupts_held() -> Iterator[None]:
    """Run the block without a stop signal breaking into it; one that came meanwhile is raised after."""
    _state.depth = getattr(_state, "depth", 0) + 1
    try:
        yield
    finally:
        _state.depth -= 1
        pending = getattr(_state, "pending", None)
        if not _state.depth and pending is not None:
            _state.pending = None
            raise KeyboardInterrupt(f"signal {pending}")
