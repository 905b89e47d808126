"""One object per data split: its names, encoded once, with the label mask and loss weights."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from model.encoder import NameEncoder, pad_sequences
from model.networks import NameClassifier
from training.data import NameRecord
from training.losses import class_weights, label_counts, label_mask, name_weights

EVAL_CHUNK = 1024  # names per forward pass when scoring a whole split


@dataclass(frozen=True)
class EncodedSplit:
    """A split's names as training and scoring read them, built once per fit."""

    records: list[NameRecord]
    sequences: list[tuple[int, ...]]  # each name's character ids
    mask: torch.Tensor  # (N, L) True where a label is one of the name's labels
    weights: torch.Tensor  # (N,) loss weight of each name (mean 1); all ones where only scored

    @classmethod
    def of(
        cls,
        records: list[NameRecord],
        labels: tuple[str, ...],
        encoder: NameEncoder,
        class_weight_power: float | None = None,
    ) -> EncodedSplit:
        """class_weight_power: weigh the names for training by (N / count) ** power of their labels;
        None for a split that is only scored."""
        sequences = [encoder.encode(record.name) for record in records]
        mask = label_mask(records, labels)
        if class_weight_power is None:
            weights = torch.ones(len(records))
        else:
            shares = torch.tensor([record.share for record in records])
            weights = name_weights(mask, class_weights(label_counts(records, labels), class_weight_power), shares)
        return cls(records, sequences, mask, weights)

    def __len__(self) -> int:
        return len(self.records)


def network_log_probs(network: NameClassifier, sequences: list[tuple[int, ...]], device: torch.device) -> torch.Tensor:
    """(N, L) log-probabilities on the CPU, in input order, as the network gives them now: uncalibrated
    while its label bias and temperature are still 0 and 1, calibrated once they are fitted."""
    network.eval()
    outputs = []
    with torch.inference_mode():
        for start in range(0, len(sequences), EVAL_CHUNK):
            ids, lengths = pad_sequences(sequences[start : start + EVAL_CHUNK])
            outputs.append(network(ids.to(device), lengths).float().cpu())
    network.train()
    return torch.cat(outputs)
