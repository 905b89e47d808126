"""What training fits: the any-of-its-labels loss, and the class and name weights that feed it."""

from __future__ import annotations

import torch

from training.data import NameRecord


def label_mask(records: list[NameRecord], labels: tuple[str, ...]) -> torch.Tensor:
    """(N, L) True where a label is one of the name's labels; built once per split."""
    index = {label: i for i, label in enumerate(labels)}
    mask = torch.zeros(len(records), len(labels), dtype=torch.bool)
    for row, record in enumerate(records):
        mask[row, [index[label] for label in record.labels]] = True
    return mask


def label_counts(records: list[NameRecord], labels: tuple[str, ...]) -> torch.Tensor:
    """(L,) each label's (name, label) pairs, a pair counted by its name's share (a family whose
    feminine form was derived counts once, not twice)."""
    label_index = {label: i for i, label in enumerate(labels)}
    counts = torch.zeros(len(labels), dtype=torch.float64)
    for record in records:
        for label in record.labels:
            counts[label_index[label]] += record.share
    return counts.float().clamp(min=1)


def log_prior(records: list[NameRecord], labels: tuple[str, ...]) -> torch.Tensor:
    """(L,) log share of each label among the (name, label) pairs: what the calibration bias scales."""
    counts = label_counts(records, labels)
    return torch.log(counts / counts.sum())


def class_weights(counts: torch.Tensor, power: float) -> torch.Tensor:
    """(N / count) ** power per label, scaled so the average training pair has weight 1."""
    weights = (counts.sum() / counts) ** power
    return weights * counts.sum() / (weights * counts).sum()


def name_weights(mask: torch.Tensor, label_weights: torch.Tensor, shares: torch.Tensor) -> torch.Tensor:
    """(N,) loss weight of each name: the largest weight among its labels times its share, scaled to
    mean 1, so a name that is also Portuguese counts as much as a Portuguese-only one."""
    weights = torch.where(mask, label_weights, torch.zeros_like(label_weights)).max(dim=1).values * shares
    return weights / weights.mean()


def any_label_loss(log_probs: torch.Tensor, mask: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Weighted mean of -log P(any of the name's labels): what top-1 credits. Fitting each
    (name, label) pair instead splits a two-label name's mass between its labels, and for Scottish,
    whose names are nearly all English too, teaches the model to guess a label that never pays."""
    return (-torch.logsumexp(log_probs.masked_fill(~mask, float("-inf")), dim=1) * weights).mean()


def multilabel_nll(log_probs: torch.Tensor, mask: torch.Tensor) -> float:
    """Mean -log P(any of the name's labels), with `mask` from label_mask: the loss calibration minimizes."""
    return float(any_label_loss(log_probs, mask, log_probs.new_ones(len(log_probs))))
