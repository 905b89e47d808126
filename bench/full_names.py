"""Measurement 1 (full names): a batch of "Given Surname" names against the same surnames alone.

CRM exports and forms send whole names, and a full name is more than its two readings: its parts are
weighed into one answer and each part is ranked on its own. This row holds that extra work to a
bound, so a per-name cost in the combination (it once made full names six times slower than
surnames) shows as a failed target rather than a slow table. The given names are the first
GIVEN_NAME_POOL distinct names of the data, each used again and again, as a customer table's given
names repeat; no outside name list is needed. Both sides are timed on names read before, as the other
in-process rows are (names never read before have their own row): one untimed pass reads every full
name first, or the first timed runs would be mostly reading (0.30x in one run where the warm ratio
was 0.44-0.45x).
"""

from __future__ import annotations

import logging

from bench.explain import request_call
from bench.inference import name_batches, names_per_second
from bench.report import Row, Target, interleaved, paired_ratio
from model.predictor import Predictor, RankQuery

logger = logging.getLogger(__name__)

FULL_NAME_BATCH_SIZE = 1000  # names per request: the service's default max_names_per_request
GIVEN_NAME_POOL = 200
# Full names over surnames, in names/s. Two readings a name make about 0.5x the ceiling; the per-name
# combination before it was batched ran at 0.16-0.18x (docs/benchmarks.md, "Full names in bulk").
FULL_NAME_TARGET = Target(at_least=0.35)


def full_names(names: list[str]) -> tuple[list[str], list[str]]:
    """("Given Surname" names, their surnames): given names from the first GIVEN_NAME_POOL names (a
    fifth of a smaller list), surnames the rest in order, each after a given name from the pool in turn."""
    if len(names) < 2:
        raise ValueError(f"need at least 2 names to build full names, got {len(names)}")
    pool = max(1, min(GIVEN_NAME_POOL, len(names) // 5))
    given, surnames = names[:pool], names[pool:]
    return [f"{given[index % pool]} {surname}" for index, surname in enumerate(surnames)], surnames


def measure_full_names(predictor: Predictor, names: list[str], repeats: int, min_seconds: float) -> list[Row]:
    """Interleaved runs (surnames, full names, ...) of `rank_requests` on 1000-name requests, as the
    service's batcher answers them; the ratio is full names/s over surnames/s."""
    full, surnames = full_names(names)
    call = request_call(predictor, RankQuery())
    for listed in (surnames, full):  # every name read once, untimed
        for start in range(0, len(listed), FULL_NAME_BATCH_SIZE):
            call(listed[start : start + FULL_NAME_BATCH_SIZE])
    surname_stats, full_stats = interleaved(
        repeats,
        lambda: names_per_second(call, name_batches(surnames, FULL_NAME_BATCH_SIZE), min_seconds),
        lambda: names_per_second(call, name_batches(full, FULL_NAME_BATCH_SIZE), min_seconds),
    )
    logger.info("full names: %.0f names/s vs surnames %.0f", full_stats.median, surname_stats.median)
    return [
        Row(
            measurement=f'1. in-process predictor, {FULL_NAME_BATCH_SIZE} "Given Surname" names a call (names/s)',
            value=f"full names {full_stats.format('/s')}",
            reference=f"their surnames alone {surname_stats.format('/s')}",
            ratio=paired_ratio(full_stats, surname_stats),
            target=FULL_NAME_TARGET,
        )
    ]
