"""`python -m app`: check the checkpoint, then serve `app.main:app` with uvicorn.

Host, port and workers come from the settings (NAMEORIGIN_HOST/PORT/WORKERS) unless given here.
Invalid settings, or a checkpoint that cannot be served, stop start-up with one line on stderr and
exit code 2; SIGTERM drains in-flight requests and exits 0; SIGHUP hot-reloads the checkpoint in
every worker (app.reloading).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

from pydantic import ValidationError

from app.accepted import accepted_copy_folder
from app.observability import MULTIPROCESS_DIR_ENV, configure_logging
from app.server import build_config, serve
from app.settings import Settings

ACCEPTED_COPY_VARIABLE = "NAMEORIGIN_ACCEPTED_CHECKPOINT_COPY"  # Settings.accepted_checkpoint_copy


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app", description=__doc__)
    parser.add_argument("--host", help="default: NAMEORIGIN_HOST or 127.0.0.1")
    parser.add_argument("--port", type=int, help="default: NAMEORIGIN_PORT or 8000")
    parser.add_argument("--workers", type=int, help="at least 1; default: NAMEORIGIN_WORKERS or 1")
    args = parser.parse_args(argv)
    try:
        settings = Settings()
    except ValidationError as error:
        print(f"error: invalid settings: {_one_line(error)}", file=sys.stderr)
        return 2
    if args.workers is not None and args.workers < 1:
        print(f"error: --workers must be at least 1, got {args.workers}", file=sys.stderr)
        return 2
    workers = args.workers or settings.workers
    # The workers read their own Settings: they must count themselves as the flag says, since the model's
    # threads for large calls are the cores shared among them (Settings.threads_for_large_batches).
    os.environ["NAMEORIGIN_WORKERS"] = str(workers)
    settings = settings.model_copy(update={"workers": workers})
    from app.main import start_check  # only now: importing app.main builds the app from valid settings

    # Fail here, in one line, rather than as a traceback from inside the server's lifespan; the same
    # checks a hot reload makes, so a model a reload would refuse never starts either. With several
    # workers in a child process, which gives back what checking it took.
    if workers > 1:
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as child:
            problem, file_bytes = child.submit(start_check, settings).result()
    else:
        problem, file_bytes = start_check(settings)
    if problem is not None:
        print(f"error: cannot start: {problem}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop_signal, _after_graceful_shutdown)
    port = args.port if args.port is not None else settings.port
    with shared_metrics_folder(workers, settings.metrics_dir), accepted_copy_folder(workers, file_bytes) as copy:
        del file_bytes  # the copy holds what was checked
        if copy is not None:  # for the workers' Settings (app.accepted), while they run
            os.environ[ACCEPTED_COPY_VARIABLE] = str(copy)
        try:
            started = serve(build_config(settings, args.host or settings.host, port, workers))
        finally:
            os.environ.pop(ACCEPTED_COPY_VARIABLE, None)  # the folder is removed now
    if not started:
        print("error: a worker failed to start; every worker was stopped (see the log above)", file=sys.stderr)
        return 1
    return 0


@contextmanager
def shared_metrics_folder(workers: int, given: Path | None) -> Iterator[None]:
    """With several workers, one folder where each writes its metrics so that any scrape sums them
    (prometheus_client's multiprocess mode). A folder the settings name is emptied first, as the
    mode requires; one made here is removed at exit. The workers find it in the environment, where
    this process writes only for its children to read: this folder (for prometheus_client too) and
    the worker count."""
    if workers <= 1:
        yield
        return
    folder = given or Path(tempfile.mkdtemp(prefix="nameorigin-metrics-"))
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.db"):
        stale.unlink()
    os.environ[MULTIPROCESS_DIR_ENV] = str(folder)  # the workers inherit it
    try:
        yield
    finally:
        if not given:
            shutil.rmtree(folder, ignore_errors=True)


def _one_line(error: ValidationError) -> str:
    """`NAMEORIGIN_DEVICE: Input should be ... (got 'tpu')`, one clause per bad variable."""
    clauses = []
    for problem in error.errors():
        field = "_".join(map(str, problem["loc"])).upper()
        variable = field if field.startswith("NAMEORIGIN_") else f"NAMEORIGIN_{field}"
        clauses.append(f"{variable}: {problem['msg']} (got {problem['input']!r})")
    return "; ".join(clauses)


def _after_graceful_shutdown(signum: int, frame: FrameType | None) -> None:
    """uvicorn answers SIGTERM/SIGINT with a graceful shutdown, then re-raises the signal so the
    process would die of it; a drained shutdown is a clean stop, so let main() return 0."""


if __name__ == "__main__":
    raise SystemExit(main())
