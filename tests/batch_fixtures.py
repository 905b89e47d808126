"""Helpers for the test_batch_* modules (no tests here): a tiny trained checkpoint, trained once per
session, and small name lists with the blanks and junk real tables hold."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from tests.names_fixtures import synthetic_names, write_names_dir
from training.config import TrainConfig
from training.train import train

JUNK = ["", "   ", None, "123", "N/A", "-", "x" * 80, "\t"]
_trained: dict[int, Path] = {}


def tiny_checkpoint_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3-label GRU (hidden 8, one epoch) trained on synthetic -ov/-ski/-ez names: seconds to train,
    its answers are real predictor answers (labels, abstentions), not good ones."""
    key = id(tmp_path_factory)
    if key not in _trained:
        names_dir = write_names_dir(tmp_path_factory.mktemp("batch-names"), synthetic_names(per_label=60))
        config = TrainConfig(
            data_dir=str(names_dir),
            output_dir=str(tmp_path_factory.mktemp("batch-run")),
            hidden_size=8,
            epochs=1,
            batch_size=8,
            num_threads=1,
        )
        _trained[key] = train(config).checkpoint_path
    return _trained[key]


def name_column(rows: int, seed: int = 0, distinct: int = 40) -> list[str | None]:
    """`rows` names drawn with repetition from `distinct` synthetic names, with case and spacing
    variants, blanks, None and junk mixed in."""
    rng = random.Random(seed)
    pool = [name for names in synthetic_names(per_label=distinct // 3 + 1, seed=seed + 1).values() for name in names][
        :distinct
    ]
    column: list[str | None] = []
    for _ in range(rows):
        draw = rng.random()
        if draw < 0.1:
            column.append(rng.choice(JUNK))
        elif draw < 0.2:
            name = rng.choice(pool)
            column.append(rng.choice([name.upper(), name.lower(), f"  {name} ", name]))
        else:
            column.append(rng.choice(pool))
    return column
