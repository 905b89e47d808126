"""Hot reload: the configured checkpoint loaded again in the background, checked, then swapped in.

Two triggers: SIGHUP, the conventional "reload" signal, and a change of the checkpoint file (its
inode, size or mtime, polled every `Settings.reload_poll_s`). A file watch rather than an admin
route: every worker watches the file itself, so each one reloads, where a route would reach
whichever single worker the connection landed on; and there is no token to keep secret.
A candidate serves only once it loaded (format, size, regular file), kept the served labels
(requests already checked against them stay valid) and answered the warm-up names sanely (the
canary). Otherwise it is refused with a log line and the old model keeps serving.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path

from app.batching import MicroBatcher
from model.canary import WARMUP_ROUNDS, CanaryError, check_canary
from model.checkpoint import file_identity
from model.predictor import Predictor

logger = logging.getLogger(__name__)

RELOAD_OUTCOMES = ("swapped", "unchanged", "refused")  # what a reload attempt can end in (the metric's label)


class ReloadRefusedError(RuntimeError):
    """A candidate checkpoint that loaded but must not serve: other labels, or a broken canary answer."""


def warm_and_check(candidate: Predictor) -> None:
    """Warm `candidate` up and check its answers to the warm-up names (model.canary): a model whose
    answers are not sane is refused as a reload, and never serves from the start either."""
    try:
        check_canary(candidate, rounds=WARMUP_ROUNDS)
    except CanaryError as error:
        raise ReloadRefusedError(str(error)) from None


def check_replacement(serving: Predictor, candidate: Predictor) -> None:
    """Refuse a candidate whose labels differ: a request checked against the old labels (top_k, a
    prior naming labels) may run on the new model. A label change needs a restart."""
    if candidate.labels != serving.labels:
        raise ReloadRefusedError(
            f"the new checkpoint's labels {list(candidate.labels)} differ from the served {list(serving.labels)}"
        )


class ModelReloader:
    """Runs one reload at a time; a trigger during a reload runs one more after it."""

    def __init__(
        self,
        load: Callable[[], Predictor],
        batcher: MicroBatcher,
        checkpoint_path: Path,
        on_swap: Callable[[Predictor], None],
        on_outcome: Callable[[str], None] = lambda outcome: None,
    ) -> None:
        """on_outcome: told each reload's outcome (one of RELOAD_OUTCOMES), for the metrics."""
        self._on_outcome = on_outcome
        self._load = load
        self._batcher = batcher
        self._checkpoint_path = checkpoint_path
        self._on_swap = on_swap
        self._identity = file_identity(checkpoint_path)
        self._task: asyncio.Task[None] | None = None
        self._again = False

    def request(self, trigger: str) -> None:
        """Start a reload (from a signal handler or the watch); returns at once."""
        if self._task is not None and not self._task.done():
            self._again = True
            return
        self._task = asyncio.get_running_loop().create_task(self._reload_while_asked(trigger), name="nameorigin-reload")

    async def _reload_while_asked(self, trigger: str) -> None:
        while True:
            await self.reload(trigger)
            if not self._again:
                return
            self._again = False

    async def reload(self, trigger: str) -> bool:
        """Load, warm and check the configured checkpoint off the event loop, then swap it in; True if
        a new model serves now."""
        serving = self._batcher.predictor
        self._identity = file_identity(self._checkpoint_path)  # taken first: a change while loading triggers again
        logger.info("reload (%s): loading %s", trigger, self._checkpoint_path)
        try:
            candidate = await asyncio.to_thread(self._load_and_check)
            check_replacement(serving, candidate)
        except Exception as error:  # anything wrong with the candidate leaves the old model serving
            logger.error(
                "reload (%s) refused, still serving %s: %s: %s",
                trigger,
                serving.model_id,
                type(error).__name__,
                error,
            )
            self._on_outcome("refused")
            return False
        if candidate.model_id == serving.model_id:
            logger.info("reload (%s): %s is already serving", trigger, serving.model_id)
            self._on_outcome("unchanged")
            return False
        self._batcher.swap_predictor(candidate)
        self._on_swap(candidate)
        logger.info("reload (%s): now serving %s (was %s)", trigger, candidate.model_id, serving.model_id)
        self._on_outcome("swapped")
        return True

    def _load_and_check(self) -> Predictor:
        candidate = self._load()
        warm_and_check(candidate)
        return candidate

    async def watch(self, period_s: float) -> None:
        """Reload whenever the checkpoint file's identity changes; runs until cancelled."""
        while True:
            await asyncio.sleep(period_s)
            if file_identity(self._checkpoint_path) != self._identity:
                self.request("checkpoint file changed")

    async def stop(self) -> None:
        """Cancel a reload in progress (its loading thread finishes on its own and is dropped)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


def install_sighup(reloader: ModelReloader) -> Callable[[], None]:
    """SIGHUP asks for a reload; returns the undo. Only the main thread may own signals: an app run
    in a thread (a test client) is left without it."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGHUP"):
        return lambda: None
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGHUP, reloader.request, "SIGHUP")
    logger.debug("SIGHUP reloads the model (pid %d)", os.getpid())

    def uninstall() -> None:
        loop.remove_signal_handler(signal.SIGHUP)

    return uninstall
