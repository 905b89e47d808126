"""The reference: the PyTorch char-RNN tutorial's cell, used the tutorial's way, one name and one character at a time.

It reads names with the project's encoder (the tutorial's `all_letters.find` returns -1 for unknown
characters), but otherwise follows the tutorial: a (T, 1, V) one-hot tensor per name, the cell stepped
in a Python loop, per-sample SGD with a hand-written update. Weights start random: speed does not
depend on them, and the training comparison trains them.
"""

from __future__ import annotations

import random

import torch
from torch import nn

from model.encoder import NameEncoder

TUTORIAL_HIDDEN_SIZE = 128
TUTORIAL_LEARNING_RATE = 0.005


class TutorialRNN(nn.Module):
    """hidden = i2h(cat(x, h)); output = LogSoftmax(i2o(cat(x, h))): one step for one name."""

    def __init__(self, input_size: int, hidden_size: int, output_size: int) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.i2h = nn.Linear(input_size + hidden_size, hidden_size)
        self.i2o = nn.Linear(input_size + hidden_size, output_size)
        self.softmax = nn.LogSoftmax(dim=1)

    def forward(self, x: torch.Tensor, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        combined = torch.cat((x, hidden), 1)  # (1, V + H)
        return self.softmax(self.i2o(combined)), self.i2h(combined)

    def init_hidden(self) -> torch.Tensor:
        return torch.zeros(1, self.hidden_size)


class TutorialClassifier:
    """The tutorial's `lineToTensor` + `evaluate` + `train`, around a TutorialRNN."""

    def __init__(self, encoder: NameEncoder, num_labels: int, seed: int = 0) -> None:
        torch.manual_seed(seed)
        self.encoder = encoder
        self.rnn = TutorialRNN(encoder.vocab_size, TUTORIAL_HIDDEN_SIZE, num_labels)
        self.criterion = nn.NLLLoss()

    def line_to_tensor(self, name: str) -> torch.Tensor:
        """(T, 1, V) one-hot, filled one character at a time as in the tutorial."""
        char_ids = self.encoder.encode(name)
        tensor = torch.zeros(len(char_ids), 1, self.encoder.vocab_size)
        for step, char_id in enumerate(char_ids):
            tensor[step][0][char_id] = 1
        return tensor

    def evaluate(self, name: str) -> torch.Tensor:
        """(1, num_labels) log-probabilities after stepping the cell over the name."""
        line_tensor = self.line_to_tensor(name)
        hidden = self.rnn.init_hidden()
        with torch.no_grad():
            for step in range(line_tensor.size(0)):
                output, hidden = self.rnn(line_tensor[step], hidden)
        return output

    def predict(self, name: str, top_k: int = 3) -> tuple[list[float], list[int]]:
        """The tutorial's `predict`: top-k log-probabilities and label indices of one name."""
        top_log_probs, top_indices = self.evaluate(name).topk(top_k, 1, True)
        return top_log_probs[0].tolist(), top_indices[0].tolist()

    def train_step(self, label_tensor: torch.Tensor, line_tensor: torch.Tensor) -> float:
        """One name, one SGD step, the update written out by hand as in the tutorial."""
        hidden = self.rnn.init_hidden()
        self.rnn.zero_grad()
        for step in range(line_tensor.size(0)):
            output, hidden = self.rnn(line_tensor[step], hidden)
        loss = self.criterion(output, label_tensor)
        loss.backward()
        for parameter in self.rnn.parameters():
            parameter.data.add_(parameter.grad.data, alpha=-TUTORIAL_LEARNING_RATE)
        return loss.item()

    def train_on_random_name(self, names_by_label: dict[int, list[str]], rng: random.Random) -> float:
        """The tutorial's `randomTrainingExample` (a random label, then a random name of it) and one step."""
        label_id = rng.choice(sorted(names_by_label))
        name = rng.choice(names_by_label[label_id])
        return self.train_step(torch.tensor([label_id]), self.line_to_tensor(name))
