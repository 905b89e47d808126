"""Calibration, fitted on validation after training: a per-label bias, then a temperature.

The bias (a multiple of -log prior) trades the majority labels against the small ones; the
temperature makes the probabilities match how often they are right. Both are buffers of the
network, so training, evaluation and the service see the same numbers.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from model.networks import NameClassifier
from training.data import NameRecord
from training.losses import label_mask, multilabel_nll
from training.metrics import classification_metrics

BIAS_STRENGTHS = tuple(step / 10 for step in range(-10, 11))  # grid for the val-fitted label bias
TEMPERATURES = tuple(round(0.5 * 1.05**step, 4) for step in range(0, 48))  # 0.5 .. ~5


def selection_score(metrics: dict[str, Any]) -> float:
    """What the calibration's label bias maximizes on val: top-1 and macro-F1 count equally."""
    score: float = metrics["top1"] + metrics["macro_f1"]
    return score


def fit_calibration(
    val_log_probs: torch.Tensor, records: list[NameRecord], labels: tuple[str, ...], log_prior: torch.Tensor
) -> tuple[torch.Tensor, float, float]:
    """Pick the label bias (a multiple of -log prior) that maximizes the val score, then the temperature
    that minimizes val NLL. Returns (label_bias, bias_strength, temperature)."""
    best_strength = max(
        BIAS_STRENGTHS,
        key=lambda s: (
            selection_score(classification_metrics(records, val_log_probs - s * log_prior, labels)),
            -abs(s),
        ),
    )
    label_bias = -best_strength * log_prior
    adjusted = val_log_probs + label_bias
    mask = label_mask(records, labels)
    temperature = min(TEMPERATURES, key=lambda t: multilabel_nll(F.log_softmax(adjusted / t, dim=1), mask))
    return label_bias, best_strength, temperature


def apply_calibration(network: NameClassifier, label_bias: torch.Tensor, temperature: float) -> None:
    network.label_bias.copy_(label_bias.to(network.label_bias.device))
    network.temperature.fill_(temperature)


def effective_label_prior(val_log_probs: torch.Tensor) -> list[float]:
    """P(label) the calibrated network answers under: its mean probability over names it was fitted
    to (for a calibrated model the two agree). What a new prior is swapped against by Bayes' rule."""
    return val_log_probs.exp().mean(dim=0).clamp(min=1e-6).tolist()
