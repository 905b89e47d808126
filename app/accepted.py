"""The checkpoint the workers last accepted, kept where a worker that starts again loads it.

With several workers, uvicorn's supervisor starts a new worker when one dies (killed for memory, a
crash). It would load whatever file the settings name, which the running workers may have refused on
reload: other labels made two models answer side by side, and a file that cannot load made the
supervisor stop every worker. So `python -m app` keeps a copy of the checkpoint it checked at start
in a private folder, a worker that swaps in a new model replaces the copy, and a starting worker
serves the copy and takes the configured file as a reload candidate, as the running ones did.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from model.checkpoint import write_atomically


def keep_accepted(copy: Path | None, file_bytes: bytes) -> None:
    """Make the checkpoint of `file_bytes` the one a starting worker loads (Settings.accepted_checkpoint_copy;
    None with one worker); atomic, so a worker never reads half a copy."""
    if copy is not None and file_bytes and copy.parent.is_dir():  # never made again once `python -m app` removed it
        write_atomically(copy, file_bytes)


@contextmanager
def accepted_copy_folder(workers: int, file_bytes: bytes) -> Iterator[Path | None]:
    """With several workers, a private folder holding a copy of the checkpoint checked at start; yields
    the copy's path, for the workers' settings, and removes the folder at exit."""
    if workers <= 1:
        yield None
        return
    folder = Path(tempfile.mkdtemp(prefix="nameorigin-accepted-"))  # mode 0700: only this user reads it
    copy = folder / "accepted.safetensors"
    try:
        keep_accepted(copy, file_bytes)
        yield copy
    finally:
        shutil.rmtree(folder, ignore_errors=True)
