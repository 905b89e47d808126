"""The checkpoint the workers last accepted, kept where a worker that starts again loads it.

With several workers, uvicorn's supervisor starts a new worker when one dies (killed for memory, a
crash). It would load whatever file the settings name, which the running workers may have refused on
reload: other labels made two models answer side by side, and a file that cannot load made the
supervisor stop every worker. So `python -m app` keeps a copy of the checkpoint it checked at start
in a private folder, a worker that swaps in a new model replaces the copy, and a starting worker
serves the copy and takes the configured file as a reload candidate, as the running ones did.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from model.checkpoint import Checkpoint, write_atomically

# Where the copy is, written by `python -m app` only for its workers to read (not a setting).
ACCEPTED_COPY_ENV = "NAMEORIGIN_ACCEPTED_CHECKPOINT_COPY"


def accepted_copy() -> Path | None:
    """This worker's shared copy, when it runs beside others (None with one worker)."""
    value = os.environ.get(ACCEPTED_COPY_ENV)
    return Path(value) if value else None


def keep_accepted(checkpoint: Checkpoint) -> None:
    """Make `checkpoint` the one a starting worker loads; atomic, so a worker never reads half a copy."""
    copy = accepted_copy()
    if copy is not None and checkpoint.file_bytes:
        write_atomically(copy, checkpoint.file_bytes)


@contextmanager
def accepted_copy_folder(workers: int, checkpoint: Checkpoint) -> Iterator[None]:
    """With several workers, a private folder holding the copy of `checkpoint` (the one checked at
    start), named in the environment the workers inherit; removed at exit."""
    if workers <= 1:
        yield
        return
    folder = Path(tempfile.mkdtemp(prefix="nameorigin-accepted-"))  # mode 0700: only this user reads it
    os.environ[ACCEPTED_COPY_ENV] = str(folder / "accepted.safetensors")
    try:
        keep_accepted(checkpoint)
        yield
    finally:
        os.environ.pop(ACCEPTED_COPY_ENV, None)
        shutil.rmtree(folder, ignore_errors=True)
