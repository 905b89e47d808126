"""Measurement 4: seconds for the default checkpoint's saved recipe to reach its val top-1, read from the
run's metrics.json, and what the tutorial's per-sample SGD loop reaches in as many seconds beside it
(method: docs/benchmarks.md)."""

from __future__ import annotations

import json
import logging
import random
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, fields
from pathlib import Path

import torch

from bench.reference import TutorialClassifier
from bench.report import REPO_ROOT, Row, display_path
from model.checkpoint import Checkpoint
from model.encoder import NameEncoder
from training.config import TrainConfig
from training.data import NamesDataset, label_pairs
from training.metrics import classification_metrics

logger = logging.getLogger(__name__)

TOLERANCE = 0.01  # "within 1 point" of the default model's val top-1


@dataclass(frozen=True)
class RecipeRun:
    seconds: float  # time to the target, or the whole run when the history never reached it
    epoch: int | None  # the first epoch at or above the target; None when never reached
    num_epochs: int  # epochs of the held-out run
    val_top1: float  # uncalibrated at `epoch`, else the calibrated final
    best_history_top1: float
    final_val_top1: float  # calibrated, from metrics.json
    wall_seconds: float  # the subprocess, start to exit


SNAPSHOT_EVERY_S = 1.0


def recipe_config(checkpoint: Checkpoint) -> tuple[dict, list[str]]:
    """The TrainConfig values that trained the checkpoint, and the fields it lacks (added since: today's default)."""
    saved = checkpoint.info.get("training", {}).get("config")
    if not saved:
        raise ValueError("checkpoint has no info['training']['config']: cannot rerun its recipe")
    known = {field.name for field in fields(TrainConfig)}
    unknown = set(saved) - known
    if unknown:
        raise ValueError(f"checkpoint's training config has keys TrainConfig no longer takes: {sorted(unknown)}")
    return {**TrainConfig().to_dict(), **saved}, sorted(known - set(saved))


def train_command(config: dict, overrides: dict) -> list[str]:
    """`python -m training.train` with one flag per TrainConfig field (bools as --x / --no-x)."""
    command = [sys.executable, "-m", "training.train"]
    for key, value in {**config, **overrides}.items():
        flag = key.replace("_", "-")
        if isinstance(value, bool):
            command.append(f"--{flag}" if value else f"--no-{flag}")
        else:
            command += [f"--{flag}", str(value)]
    return command


def run_recipe(command: list[str], output_dir: Path, target_top1: float, timeout_s: float) -> RecipeRun:
    """Run the recipe to its end and read its metrics.json: the per-epoch `history` (epoch, uncalibrated
    val_top1, seconds since the run started) and the calibrated final val top-1."""
    log_path = output_dir.parent / "train.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with log_path.open("wb") as log_file:
        try:
            completed = subprocess.run(
                command, cwd=REPO_ROOT, stdout=log_file, stderr=subprocess.STDOUT, timeout=timeout_s
            )
        except subprocess.TimeoutExpired as error:
            raise RuntimeError(f"the recipe did not finish within --training-timeout {timeout_s:.0f} s") from error
    wall_seconds = time.perf_counter() - started
    if completed.returncode != 0:
        raise RuntimeError(
            f"training failed (exit {completed.returncode}):\n{log_path.read_text(errors='replace')[-2000:]}"
        )
    metrics = json.loads((output_dir / "metrics.json").read_text())
    history = metrics["history"]
    final_top1 = metrics["metrics"]["val"]["top1"]
    best = max(entry["val_top1"] for entry in history)
    reached = [entry for entry in history if entry["val_top1"] >= target_top1]
    if reached:
        first = reached[0]
        return RecipeRun(
            first["seconds"], first["epoch"], len(history), first["val_top1"], best, final_top1, wall_seconds
        )
    return RecipeRun(metrics["training_seconds"], None, len(history), final_top1, best, final_top1, wall_seconds)


@dataclass(frozen=True)
class Snapshot:
    seconds: float  # of tutorial training when taken
    steps: int  # names trained on so far
    state: dict[str, torch.Tensor]


class TutorialAlongside:
    """The tutorial loop on a thread of the bench, running while the recipe runs in its subprocess
    (side by side: both see the same machine load), with a copy of its weights every SNAPSHOT_EVERY_S
    so it can be scored at exactly the recipe's time to target."""

    def __init__(self, dataset: NamesDataset, encoder: NameEncoder, seed: int) -> None:
        self.dataset = dataset
        label_index = {label: i for i, label in enumerate(dataset.labels)}
        self.names_by_label: dict[int, list[str]] = {}
        for name, label in label_pairs(dataset.split("train")):
            self.names_by_label.setdefault(label_index[label], []).append(name)
        self.reference = TutorialClassifier(encoder, len(dataset.labels), seed=seed)
        self.rng = random.Random(seed)
        self.snapshots: list[Snapshot] = []
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._train, name="tutorial-loop", daemon=True)

    def __enter__(self) -> TutorialAlongside:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop_event.set()
        self.thread.join()

    def _train(self) -> None:
        started, steps = time.perf_counter(), 0
        self._snapshot(0.0, 0)
        while not self.stop_event.is_set():
            self.reference.train_on_random_name(self.names_by_label, self.rng)
            steps += 1
            elapsed = time.perf_counter() - started
            if elapsed >= self.snapshots[-1].seconds + SNAPSHOT_EVERY_S:
                self._snapshot(elapsed, steps)

    def _snapshot(self, seconds: float, steps: int) -> None:
        state = {key: value.detach().clone() for key, value in self.reference.rnn.state_dict().items()}
        self.snapshots.append(Snapshot(seconds, steps, state))

    def val_top1_at(self, seconds: float) -> tuple[float, int, float]:
        """Val top-1 of the last snapshot taken by `seconds` of training, its names seen and its time."""
        snapshot = [snap for snap in self.snapshots if snap.seconds <= seconds][-1]
        self.reference.rnn.load_state_dict(snapshot.state)
        val_records = self.dataset.split("val")
        log_probs = torch.cat([self.reference.evaluate(record.name) for record in val_records])
        return (
            classification_metrics(val_records, log_probs, self.dataset.labels)["top1"],
            snapshot.steps,
            snapshot.seconds,
        )


def measure_training(
    checkpoint: Checkpoint,
    dataset: NamesDataset,
    data_dir: Path,
    device: str,
    work_dir: Path,
    timeout_s: float,
    overrides: dict | None = None,
) -> tuple[list[Row], list[str]]:
    """Rows for the table and lines for the page (the exact command, what was compared)."""
    config, missing = recipe_config(checkpoint)
    default_top1 = checkpoint.info["metrics"]["val"]["top1"]
    target_top1 = default_top1 - TOLERANCE
    output_dir = work_dir / "train"
    command = train_command(
        config, {"data_dir": str(data_dir), "output_dir": str(output_dir), "device": device, **(overrides or {})}
    )
    logger.info("training: %s", " ".join(command))
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(config["num_threads"] or previous_threads)  # the tutorial gets the recipe's threads
    try:
        with TutorialAlongside(dataset, NameEncoder(checkpoint.encoder_config), config["seed"]) as tutorial:
            recipe = run_recipe(command, output_dir, target_top1, timeout_s)
        tutorial_top1, tutorial_steps, tutorial_seconds = tutorial.val_top1_at(recipe.seconds)
    finally:
        torch.set_num_threads(previous_threads)
    if recipe.epoch is not None:
        reached = f"{recipe.seconds:.1f} s (epoch {recipe.epoch}, uncalibrated val top-1 {recipe.val_top1:.3f})"
        kind = f"uncalibrated, epoch {recipe.epoch}"
    else:
        reached = f"{recipe.seconds:.1f} s: whole run (history peaked at {recipe.best_history_top1:.3f} in {recipe.num_epochs} epochs)"
        kind = "calibrated final"
    rows = [
        Row(
            measurement=f"4. training: recipe to val top-1 >= {target_top1:.3f}",
            value=reached,
            reference=f"default model val top-1 {default_top1:.3f} (calibrated)",
        ),
        Row(
            measurement=f"4. training: val top-1 after {recipe.seconds:.0f} s",
            value=f"recipe {recipe.val_top1:.3f} ({kind})",
            reference=f"tutorial SGD loop {tutorial_top1:.3f} (at {tutorial_seconds:.0f} s, {tutorial_steps:,} names, 1 per step)",
            ratio=recipe.val_top1 / tutorial_top1 if tutorial_top1 else None,
        ),
    ]
    shown = train_command(
        config, {"data_dir": display_path(data_dir), "output_dir": "<temp dir>", "device": device, **(overrides or {})}
    )
    notes = [
        f"Training (the checkpoint's saved recipe): `{' '.join(_relative(shown))}`",
        f"The recipe ran {recipe.wall_seconds:.1f} s as a process; its final calibrated val top-1 was "
        f"{recipe.final_val_top1:.3f} against the shipped model's {default_top1:.3f}.",
    ]
    if missing:
        notes.append(
            "The checkpoint's saved recipe predates TrainConfig fields "
            + ", ".join(f"`{key}` (used today's default {config[key]!r})" for key in missing)
            + "; retrain the default checkpoint to make its recipe complete."
        )
    if overrides:
        notes.append(f"--quick changed the recipe: {overrides}; these training figures are not the recipe's.")
    return rows, notes


def _relative(command: list[str]) -> list[str]:
    """The command as a reader would type it: `python`, not the virtualenv's interpreter path."""
    return ["python" if part == sys.executable else part for part in command]
