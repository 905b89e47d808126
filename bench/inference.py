"""Measurement 1: in-process names/second of the batched predictor against the tutorial-style reference."""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

from bench.reference import TutorialClassifier
from bench.report import Row, Stats, Target, interleaved, paired_ratio
from model.predictor import Predictor

logger = logging.getLogger(__name__)

BATCH_SIZES = (1, 8, 64, 512, 4096)
TARGET_BATCH_SIZE = 4096  # "the batched predictor": the largest batch, which the predictor chunks itself
SPEEDUP_TARGET = Target(at_least=20)
ONE_NAME_TARGET = Target(at_least=1.0)  # issue 16: one name per call at least matches the tutorial's loop
MAX_CALLS = 1_000_000  # a bound on every timing loop besides its time


def name_batches(names: list[str], batch_size: int) -> Iterator[list[str]]:
    """Endless batches of `batch_size` names, cycling through `names` in order."""
    if not names:
        raise ValueError("need at least one name to benchmark, got an empty list")
    stream = itertools.cycle(names)
    while True:
        yield list(itertools.islice(stream, batch_size))


def names_per_second(
    call: Callable[[Any], object], batches: Iterator[Any], min_seconds: float, batch_len: Callable[[Any], int] = len
) -> float:
    """Call on successive batches for at least `min_seconds` (after one untimed warm-up call);
    `batch_len` says how many names a batch holds."""
    call(next(batches))
    names_done, calls = 0, 0
    started = time.perf_counter()
    while calls < MAX_CALLS:
        batch = next(batches)
        call(batch)
        names_done += batch_len(batch)
        calls += 1
        elapsed = time.perf_counter() - started
        if elapsed >= min_seconds:
            return names_done / elapsed
    return names_done / (time.perf_counter() - started)


def reference_call(reference: TutorialClassifier) -> Callable[[list[str]], None]:
    """The tutorial's way to classify a list: one `predict(name)` per name."""

    def call(names: list[str]) -> None:
        for name in names:
            reference.predict(name)

    return call


def measure_predictor_and_reference(
    predictor: Predictor,
    reference: TutorialClassifier,
    names: list[str],
    batch_size: int,
    repeats: int,
    min_seconds: float,
) -> tuple[Stats, Stats]:
    """Interleaved runs (reference, predictor, reference, ...) so both see the same machine load."""
    reference_stats, predictor_stats = interleaved(
        repeats,
        lambda: names_per_second(reference_call(reference), name_batches(names, 1), min_seconds),
        lambda: names_per_second(predictor.predict, name_batches(names, batch_size), min_seconds),
    )
    return predictor_stats, reference_stats


def measure_inference(
    predictor: Predictor,
    reference: TutorialClassifier,
    names: list[str],
    repeats: int,
    min_seconds: float,
    batch_sizes: tuple[int, ...] = BATCH_SIZES,
) -> list[Row]:
    """One row per batch size, the target on the largest."""
    rows = []
    for batch_size in batch_sizes:
        predictor_stats, reference_stats = measure_predictor_and_reference(
            predictor, reference, names, batch_size, repeats, min_seconds
        )
        logger.info(
            "inference batch %d: %.0f names/s vs reference %.0f",
            batch_size,
            predictor_stats.median,
            reference_stats.median,
        )
        rows.append(
            Row(
                measurement=f"1. in-process predictor, batch {batch_size} (names/s)",
                value=predictor_stats.format("/s"),
                reference=f"tutorial loop {reference_stats.format('/s')}",
                ratio=paired_ratio(predictor_stats, reference_stats),
                target={TARGET_BATCH_SIZE: SPEEDUP_TARGET, 1: ONE_NAME_TARGET}.get(batch_size),
            )
        )
    return rows


UNSEEN_BATCH_SIZE = 1000


def measure_unseen_names(predictor: Predictor, names: list[str], repeats: int) -> Row:
    """Names the predictor has never read (its caches cleared first) against the same names read again.

    The other rows cycle through a few thousand names, so after the first pass every name's reading
    (transliteration, scripts, full-name parts, evidence) is a cache hit; a table of distinct names,
    or a stream of new customers, pays for each reading once."""
    batches = [names[start : start + UNSEEN_BATCH_SIZE] for start in range(0, len(names), UNSEEN_BATCH_SIZE)]
    unseen_runs: list[float] = []
    seen_runs: list[float] = []
    for _ in range(repeats):
        predictor.clear_caches()
        for runs in (unseen_runs, seen_runs):  # the first pass reads every name, the second finds them read
            started = time.perf_counter()
            for batch in batches:
                predictor.predict(batch)
            runs.append(sum(map(len, batches)) / (time.perf_counter() - started))
    unseen, seen = Stats.of(unseen_runs), Stats.of(seen_runs)
    logger.info("inference, unseen names: %.0f names/s vs read before %.0f", unseen.median, seen.median)
    return Row(
        measurement=f"1. in-process predictor, batch {UNSEEN_BATCH_SIZE}, names never read before (names/s)",
        value=unseen.format("/s"),
        reference=f"the same {len(names):,} names read again {seen.format('/s')}",
        ratio=paired_ratio(unseen, seen),
    )
