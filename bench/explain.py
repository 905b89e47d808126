"""Measurement 8: what `explain: true` costs. Names/s of `Predictor.rank_requests` (what the service's
batcher calls) on 1000-name requests with explanations against the same requests without."""

from __future__ import annotations

import logging
from collections.abc import Callable

from bench.inference import name_batches, names_per_second
from bench.report import Row, Stats, Target, paired_ratio
from model.predictor import Predictor, RankQuery

logger = logging.getLogger(__name__)

EXPLAIN_BATCH_SIZE = 1000  # names per request: the service's default max_names_per_request
EXPLAIN_COST_TARGET = Target(below=10)  # the bar: explaining costs at most 10x the plain request


def request_call(predictor: Predictor, query: RankQuery) -> Callable[[list[str]], object]:
    """One request's names answered as the batcher answers them."""
    return lambda names: predictor.rank_requests([(names, query)])


def measure_explain(predictor: Predictor, names: list[str], repeats: int, min_seconds: float) -> list[Row]:
    """Interleaved runs (plain, explained, plain, ...); the ratio is plain names/s over explained names/s,
    so it reads as how many times the plain request's cost an explained one costs."""
    plain, explained = RankQuery(explain=False), RankQuery(explain=True)
    plain_runs, explained_runs = [], []
    for _ in range(repeats):
        batches = name_batches(names, EXPLAIN_BATCH_SIZE)
        plain_runs.append(names_per_second(request_call(predictor, plain), batches, min_seconds))
        batches = name_batches(names, EXPLAIN_BATCH_SIZE)
        explained_runs.append(names_per_second(request_call(predictor, explained), batches, min_seconds))
    plain_stats, explained_stats = Stats.of(plain_runs), Stats.of(explained_runs)
    logger.info("explain: %.0f names/s vs plain %.0f", explained_stats.median, plain_stats.median)
    return [
        Row(
            measurement=f"10. explain: true, {EXPLAIN_BATCH_SIZE} names per request (cost vs plain)",
            value=f"explained {explained_stats.format('/s')}",
            reference=f"plain {plain_stats.format('/s')}",
            ratio=paired_ratio(plain_stats, explained_stats),
            target=EXPLAIN_COST_TARGET,
        )
    ]
