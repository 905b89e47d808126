"""One Predictor per checkpoint and device per process: a Spark worker, or a notebook calling
classify_frame again and again, loads a checkpoint once, and again once the file is replaced (a model
retrained in place is the new model, not the one cached under its path)."""

from __future__ import annotations

import functools
import logging
from pathlib import Path

from model.canary import load_checked
from model.checkpoint import FileIdentity, file_identity
from model.predictor import Predictor

logger = logging.getLogger(__name__)


@functools.lru_cache(maxsize=4)
def _cached(checkpoint_path: str, device: str, num_threads: int, identity: FileIdentity) -> Predictor:
    logger.info("loading checkpoint %s on %s", checkpoint_path, device)
    return load_checked(checkpoint_path, device=device, num_threads=num_threads)  # the canary too


def cached_predictor(checkpoint_path: str | Path, device: str = "auto", num_threads: int = 0) -> Predictor:
    """The process's predictor for this checkpoint file and device, loaded on first use. num_threads
    sets torch's threads for the whole process (0 leaves them as they are)."""
    path = Path(checkpoint_path).resolve()
    return _cached(str(path), device, num_threads, file_identity(path))


def cache_info() -> functools._CacheInfo:
    """Loads (misses) and reuses (hits) so far in this process."""
    return _cached.cache_info()
