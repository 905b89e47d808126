"""The offline trainer: `python -m training.train` (`--help` lists the flags; defaults live in TrainConfig).

A run, top to bottom: load the names and their derived forms, fit a network on train with early
stopping on val (training.fit), calibrate it on val (training.calibration), refit on train + val
for the epochs val chose, fit the not-a-name character model, and write the checkpoint, metrics
and plots (training.outputs).
"""

from __future__ import annotations

import argparse
import logging
import signal
import time
from dataclasses import fields
from pathlib import Path
from typing import Any

import torch

from model.encoder import EncoderConfig, NameEncoder
from model.networks import NameClassifier
from model.novelty import CharLanguageModel
from model.predictor import DeviceUnavailableError, resolve_device
from training.augment import training_splits
from training.calibration import apply_calibration, fit_calibration
from training.config import TrainConfig
from training.data import NamesDataset, label_pairs, load_names_dir
from training.fit import FitPlan, fit_network
from training.losses import log_prior
from training.metrics import classification_metrics
from training.novelty import fit_language_model, fit_threshold
from training.outputs import TrainedModel, TrainResult, prepare_output_dir, write_outputs
from training.splits import EncodedSplit, network_log_probs

logger = logging.getLogger(__name__)


def train(config: TrainConfig, dataset: NamesDataset | None = None) -> TrainResult:
    """Train, calibrate, evaluate and write checkpoint, metrics.json and plots to config.output_dir.

    The held-out run trains on the train split and uses val to stop early and to fit calibration;
    its val metrics are the honest ones. With `config.refit`, the network is then trained again
    from the same start on train + val (12% more names) for the epochs val picked, and keeps the
    held-out run's calibration; test, never seen by either, measures the network that is saved.
    With `config.gender_forms`, each split also trains on the other-gender forms derived from its
    own names; early stopping, calibration and the reported metrics use the files' names only.
    """
    made = not Path(config.output_dir).exists()
    output_dir = prepare_output_dir(config.output_dir)
    try:
        return _train(config, dataset)
    except BaseException:
        if made and output_dir.is_dir() and not any(output_dir.iterdir()):
            output_dir.rmdir()  # a folder this run made and left empty (a mistyped --data-dir, Ctrl-C)
        raise


def _train(config: TrainConfig, dataset: NamesDataset | None) -> TrainResult:
    started = time.perf_counter()
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    device = resolve_device(config.device)
    dataset = dataset or load_names_dir(config.data_dir)
    labels = dataset.labels
    encoder = NameEncoder(EncoderConfig())
    splits = training_splits(dataset, config.gender_forms, config.gender_form_share)
    if not splits.names["train"] or not splits.names["val"]:
        raise ValueError(
            f"need names in both train and val splits, got {len(splits.names['train'])} and {len(splits.names['val'])}"
        )
    network_config = config.network_config(encoder.vocab_size, len(labels))
    train_split = EncodedSplit.of(splits.trained("train"), labels, encoder, config.class_weight_power)
    val_split = EncodedSplit.of(splits.names["val"], labels, encoder)

    held_out = fit_network(FitPlan(config, network_config, labels, device, "held-out", started), train_split, val_split)
    label_bias, bias_strength, temperature = fit_calibration(
        network_log_probs(held_out.network, val_split.sequences, device),
        val_split.records,
        labels,
        log_prior(train_split.records, labels),
    )
    apply_calibration(held_out.network, label_bias, temperature)
    logger.info(
        "best epoch %d; calibration bias strength %.1f, temperature %.3f",
        held_out.best_epoch,
        bias_strength,
        temperature,
    )
    split_metrics = {"val": scored_metrics(held_out.network, val_split, labels, device)}
    run_info = {
        "history": held_out.history,
        "best_epoch": held_out.best_epoch,
        "bias_strength": bias_strength,
        "temperature": temperature,
        "num_train_names": len(train_split),
        "num_gender_forms": {split: len(forms) for split, forms in splits.derived.items()},
        "num_train_pairs": len(label_pairs(train_split.records)),
        "device": str(device),
    }
    final = held_out.network
    if config.refit:
        if splits.names["test"]:
            test_split = EncodedSplit.of(splits.names["test"], labels, encoder)
            split_metrics["held_out_run_test"] = scored_metrics(held_out.network, test_split, labels, device)
        refit_split = EncodedSplit.of(
            splits.trained("train") + splits.trained("val"), labels, encoder, config.class_weight_power
        )
        refit = fit_network(
            FitPlan(config, network_config, labels, device, "refit", started),
            refit_split,
            stop_after=held_out.best_epoch,
        )
        final = refit.network
        apply_calibration(final, label_bias, temperature)
        run_info.update(
            refit_history=refit.history,
            num_train_names=len(refit_split),
            num_train_pairs=len(label_pairs(refit_split.records)),
        )
    val_forms = [encoder.encode(record.name) for record in splits.trained("val")]  # val's names and derived forms
    language_model = fit_not_a_name_check(train_split.sequences, val_forms, encoder.vocab_size, config)
    run_info["training_seconds"] = round(time.perf_counter() - started, 1)
    return write_outputs(config, dataset, splits, TrainedModel(final, encoder, language_model), split_metrics, run_info)


def scored_metrics(
    network: NameClassifier, split: EncodedSplit, labels: tuple[str, ...], device: torch.device
) -> dict[str, Any]:
    """The network's own metrics on a split (no reading, evidence or abstention: those are the served model's)."""
    return classification_metrics(split.records, network_log_probs(network, split.sequences, device), labels)


def fit_not_a_name_check(
    train_sequences: list[tuple[int, ...]], val_sequences: list[tuple[int, ...]], vocab_size: int, config: TrainConfig
) -> CharLanguageModel:
    """The character model of the train names (with their derived forms), its threshold fitted on val's."""
    language_model = fit_language_model(train_sequences, vocab_size, config.novelty_order)
    novelty_config = fit_threshold(language_model, val_sequences, config.novelty_val_quantile)
    return CharLanguageModel(novelty_config, language_model.tables())


def parse_args(argv: list[str] | None = None) -> TrainConfig:
    """Flags mirror TrainConfig's fields; their defaults come from it."""
    parser = argparse.ArgumentParser(prog="python -m training.train", description=__doc__)
    for field in fields(TrainConfig):
        flag = "--" + field.name.replace("_", "-")
        default = getattr(TrainConfig(), field.name)
        if isinstance(default, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=default)
        else:
            parser.add_argument(flag, type=type(default), default=default, help=f"default: {default}")
    try:
        return TrainConfig(**vars(parser.parse_args(argv)))
    except ValueError as error:  # a value no run can train with: exit 2 before any work
        parser.error(str(error))


def _interrupt(signal_number: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signal_number}")


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = parse_args(argv)
    # SIGTERM (docker stop, a batch scheduler) unwinds as Ctrl-C does, so an output folder this run made
    # and left empty is removed; the files of an earlier run are only ever replaced whole.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        result = train(config)
    except (ValueError, OSError, DeviceUnavailableError) as error:
        logger.error("%s", error)
        return 2
    except KeyboardInterrupt:
        logger.error("interrupted; %s holds what it held before this run", config.output_dir)
        return 130
    print(result.checkpoint_path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
