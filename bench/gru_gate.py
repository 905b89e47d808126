"""Measurement 7: the GRU gate. Names/s of the network's sequence features through the hand-written CPU
GRU against nn.GRU at each batch size, and the batch size from which the hand-written one wins,
beside the gate the code uses (model.gru_inference.FAST_GRU_MIN_BATCH)."""

from __future__ import annotations

import itertools
import logging

import torch

from bench.inference import name_batches, names_per_second
from bench.report import Row, Stats, paired_ratio
from model.checkpoint import Checkpoint
from model.encoder import NameEncoder, pad_sequences
from model.gru_inference import FAST_GRU_MIN_BATCH, is_plain_gru

logger = logging.getLogger(__name__)

GATE_BATCH_SIZES = (1, 4, 16, 64, 256, 1024, 4096)
MAX_DISTINCT_BATCHES = 64  # padded up front and cycled, so encoding and padding stay out of the timing


def measured_gate(ratios: dict[int, float]) -> int | None:
    """The smallest batch size from which the hand-written GRU is faster (ratio > 1) at every larger
    size measured; None when it is not faster at the largest."""
    gate = None
    for batch_size in sorted(ratios, reverse=True):
        if ratios[batch_size] <= 1:
            break
        gate = batch_size
    return gate


def gate_warning(batch_sizes: tuple[int, ...], measured: int | None, code_gate: int) -> str | None:
    """A warning when the code's gate is more than one measured size step away from the measured one."""

    def step(gate: int | None) -> int:  # the first measured size the gate sends to the hand-written GRU
        return len(batch_sizes) if gate is None else sum(size < gate for size in batch_sizes)

    if abs(step(code_gate) - step(measured)) <= 1:
        return None
    found = "never faster" if measured is None else f"faster from batch {measured}"
    return f"GRU gate: measured {found}, but FAST_GRU_MIN_BATCH is {code_gate}: more than one measured size away"


def measure_gru_gate(
    checkpoint: Checkpoint,
    names: list[str],
    repeats: int,
    min_seconds: float,
    batch_sizes: tuple[int, ...] = GATE_BATCH_SIZES,
) -> tuple[list[Row], list[str]]:
    """Rows per batch size plus the gate row, and the warnings; interleaved runs, on the CPU."""
    network = checkpoint.build_network()
    if not is_plain_gru(getattr(network, "rnn", None)):
        return [Row("7. GRU gate", "not measured", "the hand-written GRU serves one-layer, one-way GRUs only")], []
    encoder = NameEncoder(checkpoint.encoder_config)
    rows, ratios = [], {}
    with torch.inference_mode():
        for batch_size in batch_sizes:
            name_stream = name_batches(names, batch_size)
            count = max(1, min(MAX_DISTINCT_BATCHES, len(names) // batch_size))
            padded = [pad_sequences([encoder.encode(name) for name in next(name_stream)]) for _ in range(count)]
            fast_runs, torch_runs = [], []
            for _ in range(repeats):
                for fast_gru, runs in ((False, torch_runs), (True, fast_runs)):
                    runs.append(
                        names_per_second(
                            lambda batch, fast_gru=fast_gru: network.sequence_features(*batch, fast_gru=fast_gru),
                            itertools.cycle(padded),
                            min_seconds,
                            batch_len=lambda batch: len(batch[1]),
                        )
                    )
            fast, reference = Stats.of(fast_runs), Stats.of(torch_runs)
            ratios[batch_size] = paired_ratio(fast, reference)
            logger.info(
                "GRU gate batch %d: hand-written %.0f names/s vs nn.GRU %.0f", batch_size, fast.median, reference.median
            )
            rows.append(
                Row(
                    f"7. GRU gate, batch {batch_size} (names/s)",
                    f"hand-written {fast.format('/s')}",
                    f"nn.GRU {reference.format('/s')}",
                    ratio=ratios[batch_size],
                )
            )
    gate = measured_gate(ratios)
    rows.append(
        Row(
            "7. GRU gate: measured (batch size)",
            "never faster" if gate is None else f"faster from batch {gate}",
            f"FAST_GRU_MIN_BATCH {FAST_GRU_MIN_BATCH}",
        )
    )
    warning = gate_warning(batch_sizes, gate, FAST_GRU_MIN_BATCH)
    return rows, [warning] if warning else []
