"""The batched predictor: names in, top-k labels with probabilities out, on CPU or CUDA.

Names are sorted by length and run in chunks so a batch of short names pays for little padding;
answers come back in input order.
"""
from __future__ import annotations

import functools
import gc
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import torch

from model.assets import DEFAULT_CHECKPOINT_PATH
from model.checkpoint import Checkpoint, load_checkpoint
from model.encoder import NameEncoder, NameEncodingError, pad_sequences

logger = logging.getLogger(__name__)

DEVICES = ("auto", "cpu", "cuda")


class DeviceUnavailableError(RuntimeError):
    """CUDA was asked for on a machine without it: never a silent fall back to CPU."""


class LabelProbability(NamedTuple):
    label: str
    probability: float
    log_probability: float


class NamePrediction(NamedTuple):
    """The top-k labels for one name, most probable first."""

    name: str
    predictions: tuple[LabelProbability, ...]


_new_label_probability = functools.partial(tuple.__new__, LabelProbability)
_new_name_prediction = functools.partial(tuple.__new__, NamePrediction)


class RankedLabels(NamedTuple):
    """The top-k labels of several names as plain lists, one row per name in input order, most
    probable first: ids into `Predictor.labels`, probabilities, log-probabilities. For callers that
    write their own output (the service's JSON) and need no object per label."""

    label_ids: list[list[int]]
    probabilities: list[list[float]]
    log_probabilities: list[list[float]]

    def rows(self, start: int, stop: int) -> "RankedLabels":
        return RankedLabels(self.label_ids[start:stop], self.probabilities[start:stop], self.log_probabilities[start:stop])

    def top(self, top_k: int) -> "RankedLabels":
        """The first `top_k` labels of each row (rows are sorted, so a smaller top-k is a prefix)."""
        if not self.label_ids or len(self.label_ids[0]) <= top_k:  # one ranking: every row is as long
            return self
        return RankedLabels(*([row[:top_k] for row in column] for column in self))


def resolve_device(device: str) -> torch.device:
    """auto -> CUDA when present else CPU; cuda without CUDA raises DeviceUnavailableError."""
    if device not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise DeviceUnavailableError("device 'cuda' was asked for but torch sees no CUDA device")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class Predictor:
    """Serves one checkpoint: encodes names, runs the network under inference_mode, ranks labels."""

    def __init__(
        self, checkpoint: Checkpoint, device: str = "auto", max_batch_size: int = 2048, num_threads: int = 0
    ) -> None:
        """max_batch_size: names per network call; 4096 names ran 3% faster in chunks of 2048 than of 1024."""
        if num_threads:
            # Process-wide: on a small machine one intra-op thread beside the server's event loop
            # beats two that spin-wait for a core (measured by bench/).
            torch.set_num_threads(num_threads)
        self.checkpoint = checkpoint
        self.device = resolve_device(device)
        self.encoder = NameEncoder(checkpoint.encoder_config)
        self.labels = checkpoint.labels
        self.network = checkpoint.build_network().to(self.device)
        self.max_batch_size = max_batch_size

    @classmethod
    def from_path(
        cls, checkpoint_path: str | Path = DEFAULT_CHECKPOINT_PATH, device: str = "auto", num_threads: int = 0
    ) -> "Predictor":
        """num_threads: torch intra-op threads for the process; 0 leaves torch's default."""
        return cls(load_checkpoint(checkpoint_path), device=device, num_threads=num_threads)

    @property
    def num_labels(self) -> int:
        return len(self.labels)

    def log_probabilities(self, names: list[str]) -> torch.Tensor:
        """(N, num_labels) log-probabilities on the CPU, rows in input order."""
        sequences = [self.encoder.encode(name) for name in names]
        if not sequences:
            raise NameEncodingError("cannot classify an empty list of names")
        order = sorted(range(len(sequences)), key=lambda index: len(sequences[index]))
        result = torch.empty(len(sequences), self.num_labels)
        with torch.inference_mode():
            for start in range(0, len(order), self.max_batch_size):
                chunk = order[start : start + self.max_batch_size]
                ids, lengths = pad_sequences([sequences[index] for index in chunk])
                log_probs = self.network(ids.to(self.device), lengths)  # (B, L)
                result[torch.tensor(chunk)] = log_probs.float().cpu()
        return result

    def rank(self, names: list[str], top_k: int = 3) -> RankedLabels:
        """Top-k label ids, probabilities and log-probabilities per name, in input order, as lists;
        raises NameEncodingError on a bad name."""
        if not 1 <= top_k <= self.num_labels:
            raise ValueError(f"top_k must be between 1 and {self.num_labels}, got {top_k}")
        top_log_probs, top_indices = self.log_probabilities(names).topk(top_k, dim=1)
        # Whole matrices to Python lists at once: iterating tensor rows cost more than the GRU (cProfile).
        with _cyclic_gc_paused():
            return RankedLabels(top_indices.tolist(), top_log_probs.double().exp().tolist(), top_log_probs.tolist())

    def predict(self, names: list[str], top_k: int = 3) -> list[NamePrediction]:
        """Top-k labels per name, in input order; raises NameEncodingError on a bad name."""
        label_of = self.labels.__getitem__
        # Tuples rather than dataclasses: at 4096 names building frozen dataclasses cost more than the GRU.
        # tuple.__new__ takes the fields as they come; the NamedTuple's own __new__ is a Python function
        # around that call (15% of building 4096 answers).
        with _cyclic_gc_paused():  # one pause over both bursts: rank's lists and these tuples
            ranked = self.rank(names, top_k)
            answers = [
                tuple(map(_new_label_probability, zip(map(label_of, row_ids), row_probs, row_log_probs)))
                for row_ids, row_probs, row_log_probs in zip(*ranked)
            ]
            return list(map(_new_name_prediction, zip(names, answers)))


class _CyclicGcPause:
    """Keep Python's cyclic collector out of a burst of acyclic result lists and tuples.

    A big batch makes ~8 tracked objects per name; every 700 allocations trigger the collector, and
    in a process with a large heap its full passes walk everything (the bench's process: 4096-name
    batches at 26k names/s, 38k with the collector out of the way). Reference counting still frees
    them. The collector is process-wide, so pauses are counted under a lock: it comes back on when
    the last one in any thread ends, unless it was off before the first began.
    """

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


_cyclic_gc_paused = _CyclicGcPause()
