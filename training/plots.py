"""The training run's pictures: a confusion matrix and a learning curve, as PNG bytes (written with the
weights and metrics as one unit, training.outputs)."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")  # files only; no display on training machines
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure


def confusion_matrix_png(matrix: np.ndarray, labels: tuple[str, ...], title: str) -> bytes:
    """Row-normalized confusion matrix (true rows, predicted columns) with counts in the cells."""
    row_sums = matrix.sum(axis=1, keepdims=True)
    normalized = np.divide(matrix, row_sums, out=np.zeros(matrix.shape, dtype=float), where=row_sums > 0)
    figure, axes = plt.subplots(figsize=(10, 9))
    image = axes.imshow(normalized, cmap="Blues", vmin=0, vmax=1)
    axes.set_xticks(range(len(labels)), labels, rotation=90)
    axes.set_yticks(range(len(labels)), labels)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(title)
    for row, col in zip(*np.nonzero(matrix), strict=True):
        color = "white" if normalized[row, col] > 0.5 else "black"
        axes.text(col, row, str(matrix[row, col]), ha="center", va="center", fontsize=7, color=color)
    figure.colorbar(image, ax=axes, fraction=0.046)
    figure.tight_layout()
    return _png(figure)


def learning_curve_png(history: list[dict[str, float]]) -> bytes:
    """Training loss and validation top-1 / macro-F1 per epoch."""
    epochs = [entry["epoch"] for entry in history]
    figure, (loss_axes, score_axes) = plt.subplots(1, 2, figsize=(11, 4))
    loss_axes.plot(epochs, [entry["train_loss"] for entry in history], marker="o", label="train loss")
    loss_axes.plot(epochs, [entry["val_loss"] for entry in history], marker="o", label="val loss")
    loss_axes.set_xlabel("epoch")
    loss_axes.legend()
    score_axes.plot(epochs, [entry["val_top1"] for entry in history], marker="o", label="val top-1")
    score_axes.plot(epochs, [entry["val_macro_f1"] for entry in history], marker="o", label="val macro-F1")
    score_axes.set_xlabel("epoch")
    score_axes.set_ylim(0, 1)
    score_axes.legend()
    figure.tight_layout()
    return _png(figure)


def _png(figure: Figure) -> bytes:
    image = io.BytesIO()
    figure.savefig(image, format="png", dpi=100)
    plt.close(figure)
    return image.getvalue()
