"""The offline trainer: mini-batches, class weighting, early stopping on val, calibration, outputs.

`python -m training.train --help` lists the flags; defaults live in `TrainConfig`.
"""
from __future__ import annotations

import argparse
import copy
import json
import logging
import math
import time
from dataclasses import dataclass, fields
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from model.checkpoint import make_checkpoint, round_to_storage_precision, save_checkpoint
from model.encoder import PAD_ID, UNKNOWN_ID, EncoderConfig, NameEncoder, pad_sequences
from model.networks import NameClassifier, NetworkConfig, build_network
from model.novelty import CharLanguageModel
from model.predictor import Predictor, resolve_device
from training.augment import TrainingSplits, training_splits
from training.config import TrainConfig
from training.data import SPLIT_RULE, NameRecord, NamesDataset, label_pairs, load_names_dir
from training.metrics import answers_metrics, classification_metrics, confusion_counts, served_metrics
from training.novelty import fit_language_model, fit_threshold
from training.plots import save_confusion_matrix, save_learning_curve

logger = logging.getLogger(__name__)

CHECKPOINT_FILENAME = "model.safetensors"
MIN_SCHEDULE_STEPS = 10
SUMMARY_METRICS = ("num_names", "top1", "top3", "macro_f1", "balanced_accuracy", "expected_calibration_error", "abstained")
BIAS_STRENGTHS = tuple(step / 10 for step in range(-10, 11))  # grid for the val-fitted label bias
TEMPERATURES = tuple(round(0.5 * 1.05**step, 4) for step in range(0, 48))  # 0.5 .. ~5


@dataclass(frozen=True)
class TrainResult:
    checkpoint_path: Path
    metrics: dict


def selection_score(metrics: dict) -> float:
    """What the calibration's label bias maximizes on val: top-1 and macro-F1 count equally."""
    return metrics["top1"] + metrics["macro_f1"]


def stopping_key(metrics: dict) -> tuple[float, float]:
    """What early stopping maximizes: val top-1, ties broken by macro-F1. Macro-F1 over labels with 3-15
    val names swings by 3 points from one epoch to the next; scored in, it once stopped a run half-way
    up its learning curve (epoch 6 of 16, top-1 still rising)."""
    return metrics["top1"], metrics["macro_f1"]


def label_counts(records: list[NameRecord], labels: tuple[str, ...]) -> torch.Tensor:
    """(L,) each label's (name, label) pairs, a pair counted by its name's share (a family whose
    feminine form was derived counts once, not twice)."""
    label_index = {label: i for i, label in enumerate(labels)}
    counts = torch.zeros(len(labels), dtype=torch.float64)
    for record in records:
        for label in record.labels:
            counts[label_index[label]] += record.share
    return counts.float().clamp(min=1)


def class_weights(counts: torch.Tensor, power: float) -> torch.Tensor:
    """(N / count) ** power per label, scaled so the average training pair has weight 1."""
    weights = (counts.sum() / counts) ** power
    return weights * counts.sum() / (weights * counts).sum()


def length_bucketed_batches(lengths: list[int], batch_size: int, generator: torch.Generator) -> list[list[int]]:
    """Shuffled batches of similar-length names: less padding, same randomness for a fixed seed."""
    order = torch.randperm(len(lengths), generator=generator).tolist()
    pool_size = batch_size * 32
    batches = []
    for start in range(0, len(order), pool_size):
        pool = sorted(order[start : start + pool_size], key=lambda index: lengths[index])
        batches += [pool[i : i + batch_size] for i in range(0, len(pool), batch_size)]
    return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]


def network_log_probs(network: NameClassifier, sequences: list[tuple[int, ...]], device: torch.device) -> torch.Tensor:
    """(N, L) log-probabilities on the CPU, in input order, as the network gives them now: uncalibrated
    while its label bias and temperature are still 0 and 1, calibrated once they are fitted."""
    network.eval()
    outputs = []
    with torch.inference_mode():
        for start in range(0, len(sequences), 1024):
            ids, lengths = pad_sequences(sequences[start : start + 1024])
            outputs.append(network(ids.to(device), lengths).float().cpu())
    network.train()
    return torch.cat(outputs)


def label_mask(records: list[NameRecord], labels: tuple[str, ...]) -> torch.Tensor:
    """(N, L) True where a label is one of the name's labels; built once per split."""
    index = {label: i for i, label in enumerate(labels)}
    mask = torch.zeros(len(records), len(labels), dtype=torch.bool)
    for row, record in enumerate(records):
        mask[row, [index[label] for label in record.labels]] = True
    return mask


def multilabel_nll(log_probs: torch.Tensor, mask: torch.Tensor) -> float:
    """Mean -log P(any of the name's labels), with `mask` from label_mask: the loss calibration minimizes."""
    return float(any_label_loss(log_probs, mask, log_probs.new_ones(len(log_probs))))


def fit_calibration(
    val_log_probs: torch.Tensor, records: list[NameRecord], labels: tuple[str, ...], log_prior: torch.Tensor
) -> tuple[torch.Tensor, float, float]:
    """Pick the label bias (a multiple of -log prior) that maximizes the val score, then the temperature
    that minimizes val NLL. Returns (label_bias, bias_strength, temperature)."""
    best_strength = max(
        BIAS_STRENGTHS,
        key=lambda s: (selection_score(classification_metrics(records, val_log_probs - s * log_prior, labels)), -abs(s)),
    )
    label_bias = -best_strength * log_prior
    adjusted = val_log_probs + label_bias
    mask = label_mask(records, labels)
    temperature = min(TEMPERATURES, key=lambda t: multilabel_nll(F.log_softmax(adjusted / t, dim=1), mask))
    return label_bias, best_strength, temperature


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


def run_epoch(network, optimizer, scheduler, sequences, mask, weights, config, generator, device, description) -> float:
    """One pass over the training names; returns the mean weighted loss."""
    lengths = [len(sequence) for sequence in sequences]
    batches = length_bucketed_batches(lengths, config.batch_size, generator)
    total_loss, total_correct, seen = 0.0, 0, 0
    progress = tqdm(batches, desc=description, unit="batch", leave=False, disable=None)
    for batch in progress:
        ids, batch_lengths = pad_sequences([sequences[i] for i in batch])
        if config.char_dropout:
            dropped = (torch.rand(ids.shape, generator=generator) < config.char_dropout) & (ids != PAD_ID)
            ids = ids.masked_fill(dropped, UNKNOWN_ID)
        batch_mask, batch_weights = mask[batch].to(device), weights[batch].to(device)
        head_log_probs = network.head_log_probs(ids.to(device), batch_lengths)  # (K, B, L)
        # Each head fits the labels on its own (mean of head losses): what keeps them different.
        loss = torch.stack([any_label_loss(lp, batch_mask, batch_weights) for lp in head_log_probs]).mean()
        guesses = head_log_probs.exp().mean(dim=0).argmax(dim=1, keepdim=True)  # as forward() averages the heads
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(network.parameters(), config.grad_clip)
        optimizer.step()
        scheduler.step()
        total_loss += loss.item() * len(batch)
        total_correct += int(batch_mask.gather(1, guesses).sum())
        seen += len(batch)
        progress.set_postfix(loss=f"{total_loss / seen:.3f}", acc=f"{total_correct / seen:.3f}")
    return total_loss / seen


def ngram_settings(config: TrainConfig) -> dict:
    """The n-gram bag's part of the network config. The concat cell is the tutorial's as it was,
    characters only, so it trains without a bag whatever the (recipe's) default says."""
    if config.architecture == "concat" and config.ngram_order:
        logger.info("the concat cell reads characters only: training it without the n-gram bag")
    if config.architecture == "concat" or not config.ngram_order:
        return {"ngram_order": 0, "ngram_buckets": 0, "ngram_dim": 0}
    return {"ngram_order": config.ngram_order, "ngram_buckets": config.ngram_buckets, "ngram_dim": config.ngram_dim}


def network_config_for(config: TrainConfig, vocab_size: int, num_labels: int) -> NetworkConfig:
    """The network a training config asks for; the concat cell always has one head and no bag."""
    if config.architecture == "concat" and config.num_heads != 1:
        logger.info("the concat cell has one head: training it with one")
    return NetworkConfig(
        architecture=config.architecture, vocab_size=vocab_size, num_labels=num_labels,
        hidden_size=config.hidden_size, num_layers=config.num_layers, bidirectional=config.bidirectional,
        dropout=config.dropout, nonlinearity=config.nonlinearity, concat_tanh=config.concat_tanh,
        pooling=config.pooling, num_heads=1 if config.architecture == "concat" else config.num_heads,
        **ngram_settings(config),
    )


def build_optimizer(network: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    if config.optimizer == "adam":
        return torch.optim.Adam(network.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(network.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            network.parameters(), lr=config.learning_rate, momentum=0.9, weight_decay=config.weight_decay
        )
    raise ValueError(f"optimizer must be adam, adamw or sgd, got {config.optimizer!r}")


@dataclass(frozen=True)
class FitResult:
    network: NameClassifier
    history: list[dict]
    best_epoch: int


def fit_network(
    network_config: NetworkConfig, config: TrainConfig, records: list[NameRecord], labels: tuple[str, ...],
    encoder: NameEncoder, device: torch.device, started: float, phase: str,
    val_records: list[NameRecord] | None = None, stop_after: int | None = None,
) -> FitResult:
    """Mini-batch training on `records` with a one-cycle schedule over `config.epochs` epochs.

    With `val_records`, every epoch is scored on them and the best epoch's weights are kept (early
    stopping after `config.patience` epochs without a better score). With `stop_after`, training
    stops after that many epochs of the same schedule: the refit replays the held-out run's course.
    """
    torch.manual_seed(config.seed)  # the refit starts from the same weights as the held-out run
    sequences = [encoder.encode(record.name) for record in records]
    mask = label_mask(records, labels)
    shares = torch.tensor([record.share for record in records])
    weights = name_weights(mask, class_weights(label_counts(records, labels), config.class_weight_power), shares)
    val_sequences = [encoder.encode(record.name) for record in val_records] if val_records else []
    val_mask = label_mask(val_records, labels) if val_records else None
    network = build_network(network_config).to(device)
    optimizer = build_optimizer(network, config)
    steps_per_epoch = math.ceil(len(records) / config.batch_size)
    # OneCycleLR divides by its warm-up and cool-down lengths, which round to zero steps on a tiny
    # run; a floor of MIN_SCHEDULE_STEPS keeps them positive (a tiny run then stops mid-cycle).
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=config.learning_rate, pct_start=0.2,
        total_steps=max(config.epochs * steps_per_epoch, MIN_SCHEDULE_STEPS),
    )
    generator = torch.Generator().manual_seed(config.seed)
    last_epoch = min(stop_after or config.epochs, config.epochs)
    logger.info(
        "%s: training %s (%d parameters) on %d names (%d name-label pairs) for up to %d epochs, device %s",
        phase, config.architecture, sum(p.numel() for p in network.parameters()), len(records),
        len(label_pairs(records)), last_epoch, device,
    )
    history: list[dict] = []
    best_key, best_state, best_epoch = (-math.inf, -math.inf), None, last_epoch
    for epoch in range(1, last_epoch + 1):
        train_loss = run_epoch(
            network, optimizer, scheduler, sequences, mask, weights, config, generator, device, f"{phase} epoch {epoch}"
        )
        entry = {"epoch": epoch, "train_loss": train_loss}
        if val_records:
            val_log_probs = network_log_probs(network, val_sequences, device)
            val_metrics = classification_metrics(val_records, val_log_probs, labels)
            entry.update(val_loss=multilabel_nll(val_log_probs, val_mask), val_top1=val_metrics["top1"],
                         val_macro_f1=val_metrics["macro_f1"])
        entry["seconds"] = round(time.perf_counter() - started, 1)
        history.append(entry)
        logger.info(
            "%s epoch %d/%d train_loss %.4f%s (%.0fs)", phase, epoch, last_epoch, train_loss,
            " val_loss %.4f val_top1 %.4f val_macro_f1 %.4f" % (entry["val_loss"], entry["val_top1"], entry["val_macro_f1"])
            if val_records else "",
            entry["seconds"],
        )
        if not val_records:
            continue
        if stopping_key(val_metrics) > best_key:
            best_key, best_state, best_epoch = stopping_key(val_metrics), copy.deepcopy(network.state_dict()), epoch
        elif epoch - best_epoch >= config.patience:
            logger.info("early stop: no better val score for %d epochs", config.patience)
            break
    if best_state is not None:
        network.load_state_dict(best_state)
    round_to_storage_precision(network)  # calibrate and evaluate exactly what the file will hold
    return FitResult(network, history, best_epoch)


def train(config: TrainConfig, dataset: NamesDataset | None = None) -> TrainResult:
    """Train, calibrate, evaluate and write checkpoint, metrics.json and plots to config.output_dir.

    The held-out run trains on the train split and uses val to stop early and to fit calibration;
    its val metrics are the honest ones. With `config.refit`, the network is then trained again
    from the same start on train + val (12% more names) for the epochs val picked, and keeps the
    held-out run's calibration; test, never seen by either, measures the network that is saved.
    With `config.gender_forms`, each split also trains on the other-gender forms derived from its
    own names; early stopping, calibration and the reported metrics use the files' names only.
    """
    started = time.perf_counter()
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    device = resolve_device(config.device)
    dataset = dataset or load_names_dir(config.data_dir)
    labels = dataset.labels
    encoder_config = EncoderConfig()
    encoder = NameEncoder(encoder_config)
    splits = training_splits(dataset, config.gender_forms)
    train_records, val_records, test_records = splits.names["train"], splits.names["val"], splits.names["test"]
    if not train_records or not val_records:
        raise ValueError(f"need names in both train and val splits, got {len(train_records)} and {len(val_records)}")
    network_config = network_config_for(config, encoder.vocab_size, len(labels))
    held_out = fit_network(
        network_config, config, splits.trained("train"), labels, encoder, device, started, "held-out",
        val_records=val_records,
    )
    val_sequences = [encoder.encode(record.name) for record in val_records]
    label_bias, bias_strength, temperature = fit_calibration(
        network_log_probs(held_out.network, val_sequences, device), val_records, labels,
        log_prior(splits.trained("train"), labels),
    )
    apply_calibration(held_out.network, label_bias, temperature)
    logger.info(
        "best epoch %d; calibration bias strength %.1f, temperature %.3f", held_out.best_epoch, bias_strength, temperature
    )
    split_metrics = {"val": evaluate_on(held_out.network, val_records, encoder, labels, device)}
    run_info = {
        "history": held_out.history, "best_epoch": held_out.best_epoch, "bias_strength": bias_strength,
        "temperature": temperature, "num_train_names": len(splits.trained("train")),
        "num_gender_forms": {split: len(forms) for split, forms in splits.derived.items()},
        "num_train_pairs": len(label_pairs(splits.trained("train"))), "device": str(device),
    }
    final = held_out.network
    if config.refit:
        if test_records:
            split_metrics["held_out_run_test"] = evaluate_on(held_out.network, test_records, encoder, labels, device)
        refit_records = splits.trained("train") + splits.trained("val")
        refit = fit_network(
            network_config, config, refit_records, labels, encoder, device, started, "refit", stop_after=held_out.best_epoch,
        )
        final = refit.network
        apply_calibration(final, label_bias, temperature)
        run_info.update(
            refit_history=refit.history, num_train_names=len(refit_records), num_train_pairs=len(label_pairs(refit_records)),
        )
    language_model = fit_not_a_name_check(splits, encoder, config)
    run_info["training_seconds"] = round(time.perf_counter() - started, 1)
    return _write_outputs(config, dataset, splits, final, encoder, language_model, split_metrics, run_info)


def fit_not_a_name_check(splits: TrainingSplits, encoder: NameEncoder, config: TrainConfig) -> CharLanguageModel:
    """The character model of the train names (with their derived forms), its threshold fitted on val's."""
    language_model = fit_language_model(
        [encoder.encode(record.name) for record in splits.trained("train")], encoder.vocab_size, config.novelty_order
    )
    novelty_config = fit_threshold(
        language_model, [encoder.encode(record.name) for record in splits.trained("val")], config.novelty_val_quantile
    )
    return CharLanguageModel(novelty_config, language_model.tables())


def log_prior(records: list[NameRecord], labels: tuple[str, ...]) -> torch.Tensor:
    """(L,) log share of each label among the (name, label) pairs: what the calibration bias scales."""
    counts = label_counts(records, labels)
    return torch.log(counts / counts.sum())


def apply_calibration(network: NameClassifier, label_bias: torch.Tensor, temperature: float) -> None:
    network.label_bias.copy_(label_bias.to(network.label_bias.device))
    network.temperature.fill_(temperature)


def evaluate_on(
    network: NameClassifier, records: list[NameRecord], encoder: NameEncoder, labels: tuple[str, ...], device: torch.device
) -> dict:
    log_probs = network_log_probs(network, [encoder.encode(record.name) for record in records], device)
    return classification_metrics(records, log_probs, labels)


def effective_label_prior(network: NameClassifier, records: list[NameRecord], encoder: NameEncoder) -> list[float]:
    """P(label) the calibrated network answers under: its mean probability over names it was fitted
    to (for a calibrated model the two agree). What a new prior is swapped against by Bayes' rule."""
    device = next(network.parameters()).device
    log_probs = network_log_probs(network, [encoder.encode(record.name) for record in records], device)
    return log_probs.exp().mean(dim=0).clamp(min=1e-6).tolist()


def _write_outputs(
    config: TrainConfig, dataset: NamesDataset, splits: TrainingSplits, network: NameClassifier, encoder: NameEncoder,
    language_model: CharLanguageModel, split_metrics: dict, run_info: dict,
) -> TrainResult:
    """Measure the checkpoint as it will be served on test, then write it, metrics.json and both plots."""
    output_dir = Path(config.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    network = network.cpu()
    label_prior = effective_label_prior(network, splits.names["val"], encoder)
    info = {
        "data_fingerprint": dataset.fingerprint,
        "split_rule": SPLIT_RULE,
        "training": {
            "config": config.to_dict(),
            **{k: v for k, v in run_info.items() if k not in ("history", "refit_history")},
        },
    }
    if splits.names["test"]:
        served = Predictor(make_checkpoint(network, encoder.config, dataset.labels, language_model, label_prior, info=info), device="cpu")
        log_probs, reasons = served.log_probabilities([record.name for record in splits.names["test"]])
        split_metrics["test"] = answers_metrics(splits.names["test"], log_probs, reasons, dataset.labels)
        if splits.derived["test"]:
            split_metrics["test_gender_forms"] = served_metrics(served, splits.derived["test"], dataset.labels)
        save_confusion_matrix(
            confusion_counts(splits.names["test"], log_probs, dataset.labels), dataset.labels,
            output_dir / "confusion_matrix.png", f"{config.architecture}: test split",
        )
    info["metrics"] = {
        split: {key: value for key, value in metrics.items() if key in SUMMARY_METRICS}
        for split, metrics in split_metrics.items()
    }
    if config.refit:
        info["metrics_note"] = (
            "val: the held-out run's network alone, which trained on train only; the saved network was refit on "
            "train + val, so only test (and held_out_run_test, the held-out network alone on test) is unseen by it. "
            "test and test_gender_forms are the served model: reading, evidence and abstentions (counted as wrong)"
        )
    checkpoint_path = output_dir / CHECKPOINT_FILENAME
    save_checkpoint(checkpoint_path, network, encoder.config, dataset.labels, language_model, label_prior, info=info)
    save_learning_curve(run_info["history"], output_dir / "learning_curve.png")
    metrics = {"metrics": split_metrics, "data_fingerprint": dataset.fingerprint, "label_prior": label_prior, **run_info}
    (output_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    for split, values in info["metrics"].items():
        logger.info("%s: %s", split, " ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in values.items()))
    logger.info("wrote %s, metrics.json, confusion_matrix.png, learning_curve.png to %s", CHECKPOINT_FILENAME, output_dir)
    return TrainResult(checkpoint_path, metrics)


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
    return TrainConfig(**vars(parser.parse_args(argv)))


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = parse_args(argv)
    try:
        result = train(config)
    except (ValueError, OSError) as error:
        logger.error("%s", error)
        return 2
    print(result.checkpoint_path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
