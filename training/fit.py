"""The fit loop: one network trained on one split, with early stopping on another.

Reads top to bottom: seed, build, optimizer and one-cycle schedule, then epochs of length-bucketed
mini-batches, each scored on val, the best epoch's weights kept.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from dataclasses import dataclass
from typing import Any

import torch
from tqdm import tqdm

from model.checkpoint import round_to_storage_precision
from model.encoder import PAD_ID, UNKNOWN_ID, pad_sequences
from model.networks import NameClassifier, NetworkConfig, build_network
from training.config import TrainConfig
from training.data import label_pairs
from training.losses import any_label_loss, multilabel_nll
from training.metrics import classification_metrics
from training.splits import EncodedSplit, network_log_probs

logger = logging.getLogger(__name__)

MIN_SCHEDULE_STEPS = 10
SHUFFLE_POOL_BATCHES = 32  # batches' worth of names sorted by length together before batching


@dataclass(frozen=True)
class FitPlan:
    """A fit's fixed inputs besides its data: the recipe, the network it builds, where it runs, and
    how the log names it."""

    config: TrainConfig
    network_config: NetworkConfig
    labels: tuple[str, ...]
    device: torch.device
    phase: str  # "held-out" or "refit"
    started: float  # time.perf_counter() at the run's start: the log's clock


@dataclass(frozen=True)
class FitResult:
    network: NameClassifier
    history: list[dict[str, float]]  # one entry per epoch: losses, val scores, seconds
    best_epoch: int


def stopping_key(metrics: dict[str, Any]) -> tuple[float, float]:
    """What early stopping maximizes: val top-1, ties broken by macro-F1. Macro-F1 over labels with 3-15
    val names swings by 3 points from one epoch to the next; scored in, it once stopped a run half-way
    up its learning curve (epoch 6 of 16, top-1 still rising)."""
    return metrics["top1"], metrics["macro_f1"]


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


def length_bucketed_batches(lengths: list[int], batch_size: int, generator: torch.Generator) -> list[list[int]]:
    """Shuffled batches of similar-length names: less padding, same randomness for a fixed seed."""
    order = torch.randperm(len(lengths), generator=generator).tolist()
    pool_size = batch_size * SHUFFLE_POOL_BATCHES
    batches = []
    for start in range(0, len(order), pool_size):
        pool = sorted(order[start : start + pool_size], key=lambda index: lengths[index])
        batches += [pool[i : i + batch_size] for i in range(0, len(pool), batch_size)]
    return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]


def fit_network(
    plan: FitPlan, train: EncodedSplit, val: EncodedSplit | None = None, stop_after: int | None = None
) -> FitResult:
    """Mini-batch training on `train` with a one-cycle schedule over `config.epochs` epochs.

    With `val`, every epoch is scored on it and the best epoch's weights are kept (early stopping
    after `config.patience` epochs without a better score). With `stop_after`, training stops after
    that many epochs of the same schedule: the refit replays the held-out run's course.
    """
    config = plan.config
    torch.manual_seed(config.seed)  # the refit starts from the same weights as the held-out run
    network = build_network(plan.network_config).to(plan.device)
    optimizer = build_optimizer(network, config)
    steps_per_epoch = math.ceil(len(train) / config.batch_size)
    # OneCycleLR divides by its warm-up and cool-down lengths, which round to zero steps on a tiny
    # run; a floor of MIN_SCHEDULE_STEPS keeps them positive (a tiny run then stops mid-cycle).
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer,
        max_lr=config.learning_rate,
        pct_start=0.2,
        total_steps=max(config.epochs * steps_per_epoch, MIN_SCHEDULE_STEPS),
    )
    generator = torch.Generator().manual_seed(config.seed)
    last_epoch = min(stop_after or config.epochs, config.epochs)
    logger.info(
        "%s: training %s (%d parameters) on %d names (%d name-label pairs) for up to %d epochs, device %s",
        plan.phase,
        config.architecture,
        sum(p.numel() for p in network.parameters()),
        len(train),
        len(label_pairs(train.records)),
        last_epoch,
        plan.device,
    )
    history: list[dict[str, float]] = []
    best_key, best_state, best_epoch = (-math.inf, -math.inf), None, last_epoch
    for epoch in range(1, last_epoch + 1):
        train_loss = run_epoch(network, optimizer, scheduler, generator, train, plan, epoch)
        if not math.isfinite(train_loss):  # it never comes back, and ran to the end before failing at the save
            raise ValueError(
                f"{plan.phase} training diverged: the loss is {train_loss} after epoch {epoch}; "
                f"lower --learning-rate (got {config.learning_rate})"
            )
        entry = {"epoch": epoch, "train_loss": train_loss}
        if val is not None:
            val_log_probs = network_log_probs(network, val.sequences, plan.device)
            val_metrics = classification_metrics(val.records, val_log_probs, plan.labels)
            entry.update(
                val_loss=multilabel_nll(val_log_probs, val.mask),
                val_top1=val_metrics["top1"],
                val_macro_f1=val_metrics["macro_f1"],
            )
        entry["seconds"] = round(time.perf_counter() - plan.started, 1)
        history.append(entry)
        log_epoch(plan, entry, last_epoch)
        if val is None:
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


def log_epoch(plan: FitPlan, entry: dict[str, float], last_epoch: int) -> None:
    scored = (
        " val_loss {:.4f} val_top1 {:.4f} val_macro_f1 {:.4f}".format(
            entry["val_loss"], entry["val_top1"], entry["val_macro_f1"]
        )
        if "val_loss" in entry
        else ""
    )
    logger.info(
        "%s epoch %d/%d train_loss %.4f%s (%.0fs)",
        plan.phase,
        entry["epoch"],
        last_epoch,
        entry["train_loss"],
        scored,
        entry["seconds"],
    )


# The optimizer, its schedule and the shuffling generator carry their state from epoch to epoch, so
# the loop passes them in rather than rebuilding them.
def run_epoch(
    network: NameClassifier,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    generator: torch.Generator,
    train: EncodedSplit,
    plan: FitPlan,
    epoch: int,
) -> float:
    """One pass over the training names; returns the mean weighted loss."""
    config, device = plan.config, plan.device
    batches = length_bucketed_batches([len(sequence) for sequence in train.sequences], config.batch_size, generator)
    total_loss, total_correct, seen = 0.0, 0, 0
    progress = tqdm(batches, desc=f"{plan.phase} epoch {epoch}", unit="batch", leave=False, disable=None)
    for batch in progress:
        ids, batch_lengths = pad_sequences([train.sequences[i] for i in batch])
        if config.char_dropout:
            dropped = (torch.rand(ids.shape, generator=generator) < config.char_dropout) & (ids != PAD_ID)
            ids = ids.masked_fill(dropped, UNKNOWN_ID)
        batch_mask, batch_weights = train.mask[batch].to(device), train.weights[batch].to(device)
        head_log_probs = network.head_log_probs(ids.to(device), batch_lengths)  # (K, B, L)
        # Each head fits the labels on its own (mean of head losses): what keeps them different.
        loss = torch.stack([any_label_loss(lp, batch_mask, batch_weights) for lp in head_log_probs]).mean()
        guesses = head_log_probs.exp().mean(dim=0).argmax(dim=1, keepdim=True)  # as forward() averages the heads
        optimizer.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]  # torch's Tensor.backward is unannotated
        torch.nn.utils.clip_grad_norm_(network.parameters(), config.grad_clip)
        optimizer.step()
        scheduler.step()
        total_loss += loss.item() * len(batch)
        total_correct += int(batch_mask.gather(1, guesses).sum())
        seen += len(batch)
        progress.set_postfix(loss=f"{total_loss / seen:.3f}", acc=f"{total_correct / seen:.3f}")
    return total_loss / seen
