"""Measurement 9: how close the batched predictor comes to this core's arithmetic limits.

The work a name needs is counted, not estimated: torch's FLOP counter over the network's forward
pass on real names at the predictor's chunk size, where the hand-written GRU multiplies only the
names still going (one multiply-add = 2 FLOPs). Two rates bound names/s: the core's peak on a
large square matmul, and the rate it sustains on the GRU step's own matmul shape, which is what
a recurrent step can hope for. Every rate is timed in the same process, interleaved with the
predictor, on the same torch threads.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

from bench.inference import name_batches, names_per_second
from bench.report import Row, Stats, Target, paired_ratio
from model.encoder import pad_sequences
from model.predictor import Predictor

logger = logging.getLogger(__name__)

PREDICTOR_BATCH = 4096
PEAK_SIDE = 1024  # a square fp32 matmul this large runs at the core's peak
SHAPE_BOUND_TARGET = Target(at_least=0.6)  # issue 16: >= 60% of the shape-bound rate
PEAK_TARGET = Target(at_least=0.25)  # and >= 25% of peak


def _in_place_addmm_flops(
    self_shape: torch.Size, mat1_shape: torch.Size, mat2_shape: torch.Size, *args: object, **kwargs: object
) -> int:
    """FLOPs of `x.addmm_(mat1, mat2)`, counted as torch counts `addmm` (the product, 2 per
    multiply-add): torch's counter has no formula for the in-place op, which the hand-written GRU
    uses for its gate matmuls, and would count them as nothing."""
    rows, inner = mat1_shape
    return 2 * rows * inner * mat2_shape[1]


def network_flops_per_name(predictor: Predictor, names: list[str]) -> float:
    """FLOPs the network spends per name on `names`, run as the predictor runs them (one chunk)."""
    sequences = sorted((predictor.encoder.encode(name) for name in names), key=len)
    ids, lengths = pad_sequences(sequences)
    counter = FlopCounterMode(display=False, custom_mapping={torch.ops.aten.addmm_: _in_place_addmm_flops})
    with torch.inference_mode(), counter:
        predictor.network(ids.to(predictor.device), lengths)
    return counter.get_total_flops() / len(names)


def matmul_flops_per_second(rows: int, inner: int, columns: int, min_seconds: float) -> float:
    """Sustained FLOP/s of `addmm` on (rows, inner) @ (inner, columns), after one untimed call."""
    left, right, bias = torch.randn(rows, inner), torch.randn(inner, columns), torch.randn(columns)
    out = torch.empty(rows, columns)
    torch.addmm(bias, left, right, out=out)
    calls, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < min_seconds:
        torch.addmm(bias, left, right, out=out)
        calls += 1
    return 2 * rows * inner * columns * calls / elapsed


def measure_compute(predictor: Predictor, names: list[str], repeats: int, min_seconds: float) -> list[Row]:
    """Multiply-adds per name, the two bounds in names/s, and the predictor's fraction of each."""
    network = predictor.network
    hidden_size = network.config.hidden_size
    chunk = min(PREDICTOR_BATCH, predictor.scorer.max_batch_size)  # the names of one network call
    flops_per_name = network_flops_per_name(predictor, names[:chunk])
    step_shape = (chunk, hidden_size, 3 * hidden_size)  # the GRU step: (B, H) @ (H, 3H)
    peak_runs: list[float] = []
    shape_runs: list[float] = []
    predictor_runs: list[float] = []
    timed: list[tuple[list[float], Callable[[], float]]] = [
        (peak_runs, lambda: matmul_flops_per_second(PEAK_SIDE, PEAK_SIDE, PEAK_SIDE, min_seconds)),
        (shape_runs, lambda: matmul_flops_per_second(*step_shape, min_seconds)),
        (
            predictor_runs,
            lambda: names_per_second(predictor.predict, name_batches(names, PREDICTOR_BATCH), min_seconds),
        ),
    ]
    for _ in range(repeats):
        for runs, call in timed:
            runs.append(call())
    peak_names = Stats.of([rate / flops_per_name for rate in peak_runs])
    shape_names = Stats.of([rate / flops_per_name for rate in shape_runs])
    predictor_names = Stats.of(predictor_runs)
    logger.info(
        "compute: %.0f FLOPs/name; peak %.1f GFLOP/s, GRU-step shape %.1f GFLOP/s; predictor %.0f names/s",
        flops_per_name,
        Stats.of(peak_runs).median / 1e9,
        Stats.of(shape_runs).median / 1e9,
        predictor_names.median,
    )
    return [
        Row(
            "9. compute: multiply-adds per name (network)",
            f"{flops_per_name / 2 / 1000:.1f}k",
            f"torch FLOP counter, {chunk} real names in one chunk",
        ),
        Row(
            "9. compute: peak matmul bound (names/s)",
            peak_names.format("/s"),
            f"{Stats.of(peak_runs).median / 1e9:.1f} GFLOP/s on {PEAK_SIDE}^3 fp32, {torch.get_num_threads()} thread(s)",
        ),
        Row(
            "9. compute: GRU-step shape bound (names/s)",
            shape_names.format("/s"),
            f"{Stats.of(shape_runs).median / 1e9:.1f} GFLOP/s on ({chunk}, {hidden_size}) @ ({hidden_size}, {3 * hidden_size})",
        ),
        Row(
            f"9. compute: predictor, batch {PREDICTOR_BATCH}, vs the shape bound",
            predictor_names.format("/s"),
            f"shape bound {shape_names.format('/s')}",
            ratio=paired_ratio(predictor_names, shape_names),
            target=SHAPE_BOUND_TARGET,
        ),
        Row(
            f"9. compute: predictor, batch {PREDICTOR_BATCH}, vs peak",
            predictor_names.format("/s"),
            f"peak bound {peak_names.format('/s')}",
            ratio=paired_ratio(predictor_names, peak_names),
            target=PEAK_TARGET,
        ),
    ]
