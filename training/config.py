"""The training configuration: every training default lives here and is saved into the checkpoint."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from model.networks import NetworkConfig


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of one training run (defaults reproduce the shipped model)."""

    data_dir: str = "data/names"
    output_dir: str = "runs/default"
    architecture: str = "gru"
    hidden_size: int = 64
    num_layers: int = 1
    bidirectional: bool = False
    dropout: float = 0.3
    nonlinearity: str = "tanh"
    concat_tanh: bool = False
    pooling: str = "last_max"
    num_heads: int = 2  # classifier heads over the one GRU, each with its own hashed bag; probabilities averaged
    ngram_order: int = 5  # each head also reads a bag of hashed character 1..5-grams (0 = off)
    ngram_buckets: int = 32768  # per head, stored as float16: 1.5 MB of the checkpoint each at dim 24
    ngram_dim: int = 24
    epochs: int = 16
    batch_size: int = 128
    optimizer: str = "adam"
    learning_rate: float = 1e-2
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    char_dropout: float = 0.0  # chance that a training character becomes the unknown id; it also garbles n-grams
    class_weight_power: float = (
        0.35  # label weight = (N / count) ** power (0 = none, 1 = balanced); a name takes its labels' largest
    )
    patience: int = 6  # epochs without a better val score before stopping
    refit: bool = True  # then train again on train + val up to the epoch val picked, keeping val's calibration
    gender_forms: bool = True  # train on the regular other-gender forms of Russian, Polish, Czech, Greek surnames
    gender_form_share: float = 0.5  # of a family's training weight, the part its derived form carries
    novelty_order: int = 4  # the not-a-name character model reads 4-grams
    novelty_val_quantile: float = 0.01  # names scoring below this share of validation names are not names
    seed: int = 0
    device: str = "auto"
    num_threads: int = (
        1  # small recurrent steps: a second intra-op thread costs more than it gains (docs/benchmarks.md)
    )

    def __post_init__(self) -> None:
        """Refuse, before any work, the values that would train nothing or train backwards and still write a
        model over the last one: 0 or -3 epochs ran no epoch, a negative clip did gradient ascent, a clip of
        0 froze every weight, a batch of 0 divided by zero; a bad language-model setting failed only after
        both training runs."""
        at_least_one = {"epochs": self.epochs, "batch_size": self.batch_size, "patience": self.patience}
        for name, value in at_least_one.items():
            if value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
        positive = {"learning_rate": self.learning_rate, "grad_clip": self.grad_clip}
        for name, number in positive.items():
            if not (math.isfinite(number) and number > 0):
                raise ValueError(f"{name} must be a finite number above 0, got {number}")
        not_negative = {"weight_decay": self.weight_decay, "class_weight_power": self.class_weight_power}
        for name, number in not_negative.items():
            if not (math.isfinite(number) and number >= 0):
                raise ValueError(f"{name} must be a finite number of at least 0, got {number}")
        if not 0.0 <= self.char_dropout < 1.0:
            raise ValueError(f"char_dropout must be in [0, 1), got {self.char_dropout}")
        if not 0.0 < self.gender_form_share < 1.0:
            raise ValueError(f"gender_form_share must be between 0 and 1 (exclusive), got {self.gender_form_share}")
        if self.novelty_order < 2:
            raise ValueError(
                f"novelty_order must be at least 2 (a character model of pairs or more), got {self.novelty_order}"
            )
        if not 0.0 <= self.novelty_val_quantile < 1.0:
            raise ValueError(f"novelty_val_quantile must be in [0, 1), got {self.novelty_val_quantile}")
        if self.num_threads < 0:
            raise ValueError(f"num_threads must be at least 0 (0: torch's default), got {self.num_threads}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def network_config(self, vocab_size: int, num_labels: int) -> NetworkConfig:
        """The network this recipe asks for, field for field; one NetworkConfig refuses (no rewrites):
        the tutorial's concat cell reads characters only, so it needs --ngram-order 0 --num-heads 1."""
        if self.architecture == "concat" and (self.ngram_order or self.num_heads != 1):
            raise ValueError(
                "the concat cell reads characters only with one head: train it with --ngram-order 0 --num-heads 1 "
                f"(got ngram_order={self.ngram_order}, num_heads={self.num_heads})"
            )
        return NetworkConfig(
            architecture=self.architecture,
            vocab_size=vocab_size,
            num_labels=num_labels,
            hidden_size=self.hidden_size,
            num_layers=self.num_layers,
            bidirectional=self.bidirectional,
            dropout=self.dropout,
            nonlinearity=self.nonlinearity,
            concat_tanh=self.concat_tanh,
            pooling=self.pooling,
            num_heads=self.num_heads,
            ngram_order=self.ngram_order,
            ngram_buckets=self.ngram_buckets if self.ngram_order else 0,
            ngram_dim=self.ngram_dim if self.ngram_order else 0,
        )
