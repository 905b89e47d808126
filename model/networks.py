"""The networks: the tutorial's concat-Linear RNN cell and the nn.RNN/GRU/LSTM family.

All of them read a right-padded (B, T) batch of character ids plus lengths, one-hot encode it (large
CPU inference batches of a plain GRU go through model.gru_inference, which looks the one-hot rows'
products up instead of multiplying them), and
return (B, num_labels) log-probabilities; padding never changes a name's output.
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass, fields
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from model.gru_inference import fast_gru_applies, gru_inference_features, is_plain_gru

ARCHITECTURES = ("concat", "rnn", "gru", "lstm")
POOLINGS = ("last", "last_max")
MAX_NGRAM_CODE = 2**31  # n-gram codes stay below this, so code * a 32-bit multiplier fits in int64
# One odd 32-bit multiplier per classifier head (the golden ratio's and the murmur3/xxhash mixing
# constants): each head files the same n-grams into differently shared buckets.
HEAD_HASH_MULTIPLIERS = (
    0x9E3779B1,
    0x85EBCA6B,
    0xC2B2AE35,
    0x27D4EB2F,
    0x165667B1,
    0xFD7046C5,
    0xB55A4F09,
    0x61C88647,
)
MAX_HEADS = len(HEAD_HASH_MULTIPLIERS)


@dataclass(frozen=True)
class NetworkConfig:
    """Architecture and shape of a network; saved in the checkpoint so it can be rebuilt. No field has a
    default: a network is built from a training recipe (training.config.TrainConfig, where the
    defaults live) or from a checkpoint's record of one."""

    architecture: str
    vocab_size: int
    num_labels: int
    hidden_size: int
    num_layers: int
    bidirectional: bool
    dropout: float
    nonlinearity: str  # nn.RNN only: tanh or relu
    concat_tanh: bool  # concat only: squash the hidden state (the 2017 tutorial did not)
    pooling: str  # rnn/gru/lstm: final state only ("last"), or final state + max over steps ("last_max")
    num_heads: int  # rnn/gru/lstm: classifier heads over the one recurrent layer stack, probabilities averaged
    ngram_order: int  # rnn/gru/lstm: each head also reads a bag of hashed 1..order-grams (0 = off)
    ngram_buckets: int  # hash buckets of each head's bag
    ngram_dim: int  # width of a bucket's learned vector

    def __post_init__(self) -> None:
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"architecture must be one of {ARCHITECTURES}, got {self.architecture!r}")
        if self.nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity must be tanh or relu, got {self.nonlinearity!r}")
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {self.pooling!r}")
        if self.architecture == "concat" and self.num_heads != 1:
            raise ValueError(f"the concat cell has one head, got num_heads={self.num_heads}")
        if min(self.vocab_size, self.num_labels, self.hidden_size, self.num_layers, self.num_heads) < 1:
            raise ValueError(f"sizes must be positive: {self}")
        if self.num_heads > MAX_HEADS:
            raise ValueError(f"num_heads must be at most {MAX_HEADS} (one hash multiplier each), got {self.num_heads}")
        if self.num_labels < 2:
            raise ValueError(f"need at least 2 labels, got {self.num_labels}")
        if self.ngram_order:
            if self.architecture == "concat":
                raise ValueError("the concat cell reads characters only; ngram_order must be 0")
            if self.ngram_order < 1 or self.ngram_buckets < 1 or self.ngram_dim < 1:
                raise ValueError(f"an n-gram bag needs a positive order, buckets and dim: {self}")
            if self.ngram_buckets >= MAX_NGRAM_CODE:
                raise ValueError(f"ngram_buckets must be below 2**31, got {self.ngram_buckets}")
            # in logarithms: a checkpoint's order of 10**9 must not make Python raise 38 to that power
            if self.ngram_order * math.log2(self.vocab_size + 2) >= math.log2(MAX_NGRAM_CODE):
                raise ValueError(
                    f"ngram_order {self.ngram_order} is too long for {self.vocab_size} symbols: "
                    f"n-gram codes must stay below 2**31"
                )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> NetworkConfig:
        known = {field.name for field in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown network config keys: {sorted(unknown)}")
        missing = known - set(values)
        if missing:
            raise ValueError(f"network config keys missing: {sorted(missing)}")
        return cls(**values)


class NameClassifier(nn.Module):
    """Shared head: calibrated LogSoftmax over label scores.

    `label_bias` and `temperature` are buffers (saved with the weights) fitted on the validation
    split after training: a per-label shift that trades the majority labels against the small ones,
    and a temperature that makes the probabilities calibrated. They stay 0 and 1 while training.
    """

    label_bias: torch.Tensor  # buffers (register_buffer below); declared for the type checker
    temperature: torch.Tensor

    def __init__(self, config: NetworkConfig) -> None:
        super().__init__()
        self.config = config
        self.register_buffer("label_bias", torch.zeros(config.num_labels))
        self.register_buffer("temperature", torch.ones(()))

    def calibrated_log_softmax(self, logits: torch.Tensor) -> torch.Tensor:
        return F.log_softmax((logits + self.label_bias) / self.temperature, dim=1)

    def head_log_probs(self, char_ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(K, B, L) uncalibrated log-probabilities of each classifier head: what training fits."""
        raise NotImplementedError


class ConcatRNN(NameClassifier):
    """The tutorial cell: hidden = i2h(cat(x, h)), output = LogSoftmax(i2o(cat(x, h))), batched."""

    def __init__(self, config: NetworkConfig) -> None:
        super().__init__(config)
        combined_size = config.vocab_size + config.hidden_size
        self.i2h = nn.Linear(combined_size, config.hidden_size)
        self.i2o = nn.Linear(combined_size, config.num_labels)

    def _logits(self, char_ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        x = F.one_hot(char_ids, self.config.vocab_size).float()  # (B, T, V)
        batch_size, max_len, _ = x.shape
        hidden = x.new_zeros(batch_size, self.config.hidden_size)  # (B, H)
        logits = x.new_zeros(batch_size, self.config.num_labels)  # (B, L)
        lengths = lengths.to(x.device)
        for step in range(max_len):
            combined = torch.cat((x[:, step], hidden), dim=1)  # (B, V + H)
            new_hidden = self.i2h(combined)
            if self.config.concat_tanh:
                new_hidden = torch.tanh(new_hidden)
            active = (step < lengths).unsqueeze(1)  # (B, 1): finished names keep their state
            logits = torch.where(active, self.i2o(combined), logits)
            hidden = torch.where(active, new_hidden, hidden)
        return logits

    def head_log_probs(self, char_ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return F.log_softmax(self._logits(char_ids, lengths), dim=1).unsqueeze(0)  # (1, B, L)

    def forward(self, char_ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.calibrated_log_softmax(self._logits(char_ids, lengths))


class NgramHasher:
    """Bucket ids of a name's character 1..order-grams, with begin and end marked ("^Mc", "ski$").

    The n-grams are hashed from the character ids, inside the network, so callers pass the same
    (ids, lengths) batch as to any network, and padding never enters a bag. An n-gram's code is its
    ids read as digits in base vocab_size + 2; ids are >= 1, so codes of different orders never
    coincide. Head k files a code by multiplicative hashing: h = code * HEAD_HASH_MULTIPLIERS[k]
    mod 2**32, bucket = h * buckets >> 32 (the well-mixed high bits of h), exact in int64 on any
    device. With more n-grams than buckets some must share one; each head shares different ones, so
    heads trained side by side make different collision errors and their average cancels part of them.
    """

    def __init__(self, vocab_size: int, order: int, buckets: int) -> None:
        self.order, self.buckets = order, buckets
        self.begin_id, self.end_id, self.base = vocab_size, vocab_size + 1, vocab_size + 2

    def codes(self, char_ids: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Flat codes of every n-gram of every name, and each name's offset into them."""
        batch_size, max_len = char_ids.shape
        lengths = lengths.to(char_ids.device)
        marked = F.pad(char_ids, (1, 1))  # (B, T + 2)
        marked[:, 0] = self.begin_id
        marked[torch.arange(batch_size, device=char_ids.device), lengths + 1] = self.end_id
        codes, parts, ends = marked, [marked], [torch.arange(1, max_len + 3, device=char_ids.device)]
        for n in range(2, min(self.order, max_len + 2) + 1):  # "^name$" has at most max_len + 2 symbols
            codes = codes[:, :-1] * self.base + marked[:, n - 1 :]  # (B, T + 3 - n): n-grams starting at each step
            parts.append(codes)
            ends.append(torch.arange(n, max_len + 3, device=char_ids.device))
        valid = torch.cat(ends) <= (lengths + 2).unsqueeze(1)  # (B, K): the n-gram ends inside "^name$"
        counts = valid.sum(dim=1)
        return torch.cat(parts, dim=1)[valid], torch.cumsum(counts, 0) - counts

    def bucket_ids(self, codes: torch.Tensor, head: int) -> torch.Tensor:
        """Head `head`'s bucket of each code."""
        hashed = (codes * HEAD_HASH_MULTIPLIERS[head]) & 0xFFFFFFFF
        return (hashed * self.buckets) >> 32


class ClassifierHead(nn.Module):
    """Label scores from the shared recurrent features plus, with n-grams on, this head's own bag."""

    def __init__(self, config: NetworkConfig, feature_size: int) -> None:
        super().__init__()
        # A bag of the name's hashed n-grams says which fragments occur anywhere, what a linear
        # n-gram classifier is good at, for the cost of a table lookup.
        self.ngram_table = (
            nn.EmbeddingBag(config.ngram_buckets, config.ngram_dim, mode="mean") if config.ngram_order else None
        )
        self.dropout = nn.Dropout(config.dropout)
        self.linear = nn.Linear(feature_size + (config.ngram_dim if config.ngram_order else 0), config.num_labels)

    def forward(self, features: torch.Tensor, bag: tuple[torch.Tensor, torch.Tensor] | None) -> torch.Tensor:
        if self.ngram_table is not None:
            assert bag is not None  # the classifier passes a bag whenever n-grams are on
            features = torch.cat((features, self.ngram_table(*bag)), dim=1)  # (B, F + ngram_dim)
        logits: torch.Tensor = self.linear(self.dropout(features))  # (B, L)
        return logits


class RecurrentClassifier(NameClassifier):
    """One nn.RNN / nn.GRU / nn.LSTM reads the name; `num_heads` classifier heads score it.

    Each head has its own n-gram bag, hashed its own way, and fits the labels on its own; their
    probabilities are averaged. The heads disagree where their buckets collide, so the average
    does what an ensemble of networks does for the price of one recurrent pass (README.md, "Train":
    two heads matched two whole networks on cross-validation).
    """

    def __init__(self, config: NetworkConfig) -> None:
        super().__init__(config)
        rnn_args = dict(
            input_size=config.vocab_size,
            hidden_size=config.hidden_size,
            num_layers=config.num_layers,
            bidirectional=config.bidirectional,
            dropout=config.dropout if config.num_layers > 1 else 0.0,
            batch_first=True,
        )
        if config.architecture == "rnn":
            self.rnn = nn.RNN(nonlinearity=config.nonlinearity, **rnn_args)
        else:
            self.rnn = {"gru": nn.GRU, "lstm": nn.LSTM}[config.architecture](**rnn_args)
        num_directions = 2 if config.bidirectional else 1
        feature_size = config.hidden_size * num_directions * (2 if config.pooling == "last_max" else 1)
        self.heads = nn.ModuleList(ClassifierHead(config, feature_size) for _ in range(config.num_heads))
        self.ngram_hasher = (
            NgramHasher(config.vocab_size, config.ngram_order, config.ngram_buckets) if config.ngram_order else None
        )

    def sequence_features(
        self, char_ids: torch.Tensor, lengths: torch.Tensor, fast_gru: bool | None = None
    ) -> torch.Tensor:
        """(B, F): the last layer's final state (both directions), plus its max over steps with last_max.

        fast_gru: True takes the hand-written CPU inference GRU (model.gru_inference), False nn.GRU,
        None decides by the batch size (`fast_gru_applies`); True where it cannot apply raises.
        """
        if fast_gru is None:
            fast_gru = fast_gru_applies(self.rnn, char_ids.shape[0], char_ids.device)
        elif fast_gru and not (
            is_plain_gru(self.rnn) and char_ids.device.type == "cpu" and not torch.is_grad_enabled()
        ):
            raise ValueError("the hand-written GRU serves one-layer, one-way GRUs on the CPU, outside autograd")
        # Packing makes the RNN stop at each name's true length, so padding never leaks in; the ids
        # are packed before the one-hot so padding is never expanded to V floats.
        packed_ids = pack_padded_sequence(char_ids, lengths.cpu(), batch_first=True, enforce_sorted=False)
        with_max = self.config.pooling == "last_max"
        if fast_gru:
            # fast_gru is True only where is_plain_gru(self.rnn) held (above, or in fast_gru_applies)
            return gru_inference_features(cast(nn.GRU, self.rnn), packed_ids, with_max)
        packed = packed_ids._replace(data=F.one_hot(packed_ids.data, self.config.vocab_size).float())  # (N, V)
        packed_out, final_state = self.rnn(packed)
        h_n = final_state[0] if self.config.architecture == "lstm" else final_state
        num_directions = 2 if self.config.bidirectional else 1
        features = torch.cat(list(h_n[-num_directions:]), dim=1)  # (B, D * H), already in input order
        if with_max:
            # Max over every step's output sees the middle of long names, not just the ends. Taken
            # straight from the packed rows: no padded copy, no -inf fill.
            steps = packed_out.data  # (N, D * H), time-major rows of the length-sorted batch
            step_positions = _sorted_batch_positions(packed.batch_sizes).to(steps.device)  # (N,)
            pooled = steps.new_full((features.shape[0], steps.shape[1]), float("-inf"))
            pooled = pooled.scatter_reduce(0, step_positions.unsqueeze(1).expand_as(steps), steps, "amax")
            features = torch.cat((features, pooled[packed.unsorted_indices]), dim=1)  # (B, 2 * D * H)
        return features

    def head_log_probs(self, char_ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        features = self.sequence_features(char_ids, lengths)
        codes = self.ngram_hasher.codes(char_ids, lengths) if self.ngram_hasher else None  # shared by the heads
        return torch.stack(
            [F.log_softmax(head(features, self._bag(codes, index)), dim=1) for index, head in enumerate(self.heads)]
        )

    def forward(self, char_ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        head_log_probs = self.head_log_probs(char_ids, lengths)  # (K, B, L)
        # log of the heads' mean probability; logaddexp is one kernel where logsumexp runs six
        summed_log_probs = functools.reduce(torch.logaddexp, head_log_probs)
        return self.calibrated_log_softmax(summed_log_probs - math.log(len(self.heads)))

    def _bag(
        self, codes: tuple[torch.Tensor, torch.Tensor] | None, head: int
    ) -> tuple[torch.Tensor, torch.Tensor] | None:
        if codes is None:
            return None
        flat_codes, offsets = codes
        assert self.ngram_hasher is not None  # codes come from the hasher: None without one
        return self.ngram_hasher.bucket_ids(flat_codes, head), offsets


def _sorted_batch_positions(batch_sizes: torch.Tensor) -> torch.Tensor:
    """For each row of a PackedSequence's data, which (length-sorted) batch entry it belongs to."""
    starts = torch.cumsum(batch_sizes, dim=0) - batch_sizes  # (T,) first row of each step
    return torch.arange(int(batch_sizes.sum())) - torch.repeat_interleave(starts, batch_sizes)


def build_network(config: NetworkConfig) -> NameClassifier:
    """Instantiate the network a config describes."""
    if config.architecture == "concat":
        return ConcatRNN(config)
    return RecurrentClassifier(config)
