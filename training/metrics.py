"""Classification metrics for multi-label names, computed with scikit-learn.

A prediction is correct when it is any of the name's labels. For the single-label metrics
(macro-F1, balanced accuracy, per-label precision/recall, confusions) a name's true label is the
predicted one when that is among its labels, otherwise the first of its labels in sorted order.
A name the predictor abstained on counts as wrong everywhere (the user got no answer), except in
the calibration error, which is of the answers given.
"""

from __future__ import annotations

import warnings
from collections import Counter
from typing import Any

import numpy as np
import torch
from sklearn.metrics import (
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
)

from model.predictor import Predictor
from training.data import NameRecord


def credited_labels(predicted: list[str], records: list[NameRecord]) -> list[str]:
    """Each name's single true label: the prediction when it is one of the name's labels, else the
    first of its labels in sorted order. The one place this convention lives."""
    return [
        guess if guess in record.labels else sorted(record.labels)[0]
        for guess, record in zip(predicted, records, strict=True)
    ]


ABSTAINED = "(abstained)"  # the predicted label of a name with no answer


def classification_metrics(
    records: list[NameRecord],
    log_probs: torch.Tensor,
    labels: tuple[str, ...],
    top_confusions: int = 10,
    abstained: list[bool] | None = None,
) -> dict[str, Any]:
    """Top-1/top-3, macro-F1, balanced accuracy, per-label precision/recall, the biggest confusions,
    the calibration error of the answers and the share of names abstained on."""
    abstained = abstained or [False] * len(records)
    ranked = log_probs.argsort(dim=1, descending=True)[:, :3].tolist()
    predicted = [ABSTAINED if gave_up else labels[row[0]] for row, gave_up in zip(ranked, abstained, strict=True)]
    true = credited_labels(predicted, records)
    top1_correct = [guess in record.labels for guess, record in zip(predicted, records, strict=True)]
    top3 = np.mean(
        [
            not gave_up and any(labels[i] in record.labels for i in row)
            for row, record, gave_up in zip(ranked, records, abstained, strict=True)
        ]
    )
    present = sorted((set(true) | set(predicted)) - {ABSTAINED})
    answered = torch.tensor([not gave_up for gave_up in abstained])
    precision, recall, f1, support = precision_recall_fscore_support(true, predicted, labels=present, zero_division=0)
    confusions = Counter((t, p) for t, p in zip(true, predicted, strict=True) if t != p)
    return {
        "num_names": len(records),
        "top1": float(np.mean(top1_correct)),
        "top3": float(top3),
        "macro_f1": float(f1_score(true, predicted, labels=present, average="macro", zero_division=0)),
        "balanced_accuracy": _balanced_accuracy(true, predicted),
        "expected_calibration_error": expected_calibration_error(
            log_probs.max(dim=1).values.exp()[answered],
            [c for c, a in zip(top1_correct, answered.tolist(), strict=True) if a],
        ),
        "abstained": float(np.mean(abstained)) if records else 0.0,
        "per_label": {
            label: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for label, p, r, f, s in zip(present, precision, recall, f1, support, strict=True)
        },
        "confusions": [
            {"true": t, "predicted": p, "count": count} for (t, p), count in confusions.most_common(top_confusions)
        ],
    }


def confusion_counts(
    records: list[NameRecord], log_probs: torch.Tensor, labels: tuple[str, ...], abstained: list[bool] | None = None
) -> np.ndarray:
    """(L, L) matrix of true-label rows by predicted-label columns, same convention as above; a name the
    model abstained on has no predicted label and is not drawn (its argmax drew 3 of the shipped model's
    12 test abstentions as right answers, beside a top-1 that counts them wrong)."""
    kept = [index for index in range(len(records)) if not (abstained and abstained[index])]
    predicted = [labels[row] for row in log_probs[kept].argmax(dim=1).tolist()]
    true = credited_labels(predicted, [records[index] for index in kept])
    counts: np.ndarray = confusion_matrix(true, predicted, labels=list(labels))
    return counts


def _balanced_accuracy(true: list[str], predicted: list[str]) -> float:
    """Mean recall over true labels; a label only ever predicted is not a class to average over."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "y_pred contains classes not in y_true"
        return float(balanced_accuracy_score(true, predicted))


def expected_calibration_error(confidences: torch.Tensor, correct: list[bool], num_bins: int = 15) -> float:
    """Mean |accuracy - confidence| over equal-width confidence bins, weighted by bin size (0 for no names)."""
    if not correct:
        return 0.0
    correct_tensor = torch.tensor(correct, dtype=torch.float)
    bins = torch.clamp((confidences * num_bins).long(), max=num_bins - 1)
    error = 0.0
    for bin_index in bins.unique().tolist():  # type: ignore[no-untyped-call]  # torch's Tensor.unique is unannotated
        members = bins == bin_index
        error += float(members.float().mean()) * abs(
            float(correct_tensor[members].mean()) - float(confidences[members].mean())
        )
    return error


def served_metrics(
    predictor: Predictor, records: list[NameRecord], labels: tuple[str, ...], prior: str = "dataset"
) -> dict[str, Any]:
    """The metrics of a predictor as it serves: reading, evidence, and abstentions counted as wrong."""
    return answers_metrics(
        records, *predictor.log_probabilities([record.name for record in records], prior=prior), labels
    )


def answers_metrics(
    records: list[NameRecord], log_probs: torch.Tensor, reasons: list[str | None], labels: tuple[str, ...]
) -> dict[str, Any]:
    """classification_metrics of served answers (`Predictor.log_probabilities`), plus how many
    abstained for each reason."""
    metrics = classification_metrics(records, log_probs, labels, abstained=[reason is not None for reason in reasons])
    metrics["abstained_by_reason"] = dict(Counter(reason for reason in reasons if reason is not None))
    return metrics
