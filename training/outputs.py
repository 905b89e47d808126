"""What a training run leaves behind: the checkpoint, metrics.json and the two plots.

The test metrics are measured on the checkpoint as the service will run it (reading, evidence,
abstentions), before anything is written.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from model.checkpoint import checkpoint_payload, make_checkpoint, remove_stale_temp_files, write_together
from model.encoder import NameEncoder
from model.networks import NameClassifier
from model.novelty import CharLanguageModel
from model.predictor import Predictor
from training.augment import TrainingSplits
from training.calibration import effective_label_prior
from training.config import TrainConfig
from training.data import SPLIT_RULE, NamesDataset
from training.metrics import answers_metrics, confusion_counts, served_metrics
from training.plots import confusion_matrix_png, learning_curve_png
from training.splits import network_log_probs

logger = logging.getLogger(__name__)

CHECKPOINT_FILENAME = "model.safetensors"
METRICS_FILENAME = "metrics.json"
CONFUSION_FILENAME = "confusion_matrix.png"
CURVE_FILENAME = "learning_curve.png"
SUMMARY_METRICS = (
    "num_names",
    "top1",
    "top3",
    "macro_f1",
    "balanced_accuracy",
    "expected_calibration_error",
    "abstained",
)
REFIT_METRICS_NOTE = (
    "val: the held-out run's network alone, which trained on train only; the saved network was refit on "
    "train + val, so only test (and held_out_run_test, the held-out network alone on test) is unseen by it. "
    "test and test_gender_forms are the served model: reading, evidence and abstentions (counted as wrong)"
)


@dataclass(frozen=True)
class TrainResult:
    checkpoint_path: Path
    metrics: dict[str, Any]


@dataclass(frozen=True)
class TrainedModel:
    """What the run made: the calibrated network, the reader it was trained with, the not-a-name model."""

    network: NameClassifier
    encoder: NameEncoder
    language_model: CharLanguageModel


def prepare_output_dir(output_dir: str) -> Path:
    """The output folder, made and tried with a file written and removed, before any training: a
    folder that is a file, read-only, or too long a name failed only when the minutes of training
    were done, and an empty name wrote into the working directory."""
    if not output_dir.strip():
        raise ValueError("--output-dir is empty; name a folder for the model, metrics and plots")
    folder = Path(output_dir)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle, probe = tempfile.mkstemp(prefix=f".{CHECKPOINT_FILENAME}.", suffix=".probe", dir=folder)
        os.close(handle)
        os.unlink(probe)
    except OSError as error:
        raise OSError(f"cannot write the outputs to {folder}: {error.strerror or error}") from error
    return folder


# The run's config, its data and the trained model are three different things the outputs record;
# split_metrics and run_info are the run's own figures so far.
def write_outputs(
    config: TrainConfig,
    dataset: NamesDataset,
    splits: TrainingSplits,
    model: TrainedModel,
    split_metrics: dict[str, dict[str, Any]],
    run_info: dict[str, Any],
) -> TrainResult:
    """Measure the checkpoint as it will be served on test, then write it, metrics.json and both plots."""
    output_dir = Path(config.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    written = (CHECKPOINT_FILENAME, METRICS_FILENAME, CONFUSION_FILENAME, CURVE_FILENAME)
    for stale in remove_stale_temp_files(output_dir, written):
        logger.warning("removed %s, left by a run killed while writing", stale)
    network, encoder = model.network.cpu(), model.encoder
    val_sequences = [encoder.encode(record.name) for record in splits.names["val"]]
    label_prior = effective_label_prior(network_log_probs(network, val_sequences, next(network.parameters()).device))
    info: dict[str, Any] = {
        "data_fingerprint": dataset.fingerprint,
        "split_rule": SPLIT_RULE,
        "training": {
            "config": config.to_dict(),
            **{k: v for k, v in run_info.items() if k not in ("history", "refit_history")},
        },
    }
    pictures: dict[Path, bytes] = {}
    if splits.names["test"]:
        checkpoint = make_checkpoint(
            network, encoder.config, dataset.labels, model.language_model, label_prior, info=info
        )
        served = Predictor(checkpoint, device="cpu")
        log_probs, reasons = served.log_probabilities([record.name for record in splits.names["test"]])
        split_metrics["test"] = answers_metrics(splits.names["test"], log_probs, reasons, dataset.labels)
        if splits.derived["test"]:
            split_metrics["test_gender_forms"] = served_metrics(served, splits.derived["test"], dataset.labels)
        abstained = [reason is not None for reason in reasons]
        pictures[output_dir / CONFUSION_FILENAME] = confusion_matrix_png(
            confusion_counts(splits.names["test"], log_probs, dataset.labels, abstained),
            dataset.labels,
            f"{config.architecture}: test split ({sum(abstained)} abstained, not drawn)",
        )
    info["metrics"] = {
        split: {key: value for key, value in metrics.items() if key in SUMMARY_METRICS}
        for split, metrics in split_metrics.items()
    }
    if config.refit:
        info["metrics_note"] = REFIT_METRICS_NOTE
    checkpoint_path = output_dir / CHECKPOINT_FILENAME
    payload, saved = checkpoint_payload(
        network, encoder.config, dataset.labels, model.language_model, label_prior, info=info
    )
    pictures[output_dir / CURVE_FILENAME] = learning_curve_png(run_info["history"])
    # The metrics name the model they describe: beside weights from another run, the ids differ.
    metrics = {
        "model_id": saved.model_id,
        "metrics": split_metrics,
        "data_fingerprint": dataset.fingerprint,
        "label_prior": label_prior,
        **run_info,
    }
    # One unit: the weights, the metrics that name them and the pictures of the same run are renamed in
    # together, the old ones removed first, so a crash never leaves one run's metrics.json or pictures
    # beside another run's weights (the pictures were written in place before the rest).
    metrics_json = json.dumps(metrics, indent=2).encode()
    # A run with no test names draws no confusion matrix: an old run's must not stay beside these weights.
    old_pictures = tuple(path for path in (output_dir / CONFUSION_FILENAME,) if path not in pictures)
    write_together({checkpoint_path: payload, output_dir / METRICS_FILENAME: metrics_json, **pictures}, old_pictures)
    for split, values in info["metrics"].items():
        logger.info(
            "%s: %s", split, " ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in values.items())
        )
    logger.info("wrote %s to %s", ", ".join(written), output_dir)
    return TrainResult(checkpoint_path, metrics)
