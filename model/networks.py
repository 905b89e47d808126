"""The networks: the tutorial's concat-Linear RNN cell and the nn.RNN/GRU/LSTM family.

All of them read a right-padded (B, T) batch of character ids plus lengths, one-hot encode it,
and return (B, num_labels) log-probabilities; padding never changes a name's output.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence

ARCHITECTURES = ("concat", "rnn", "gru", "lstm")
POOLINGS = ("last", "last_max")
MAX_NGRAM_CODE = 2**31  # n-gram codes stay below this, so code * NgramHasher.HASH_MULTIPLIER fits in int64


@dataclass(frozen=True)
class NetworkConfig:
    """Architecture and shape of a network; saved in the checkpoint so it can be rebuilt."""

    architecture: str
    vocab_size: int
    num_labels: int
    hidden_size: int = 128
    num_layers: int = 1
    bidirectional: bool = False
    dropout: float = 0.0
    nonlinearity: str = "tanh"  # nn.RNN only: tanh or relu
    concat_tanh: bool = False  # concat only: squash the hidden state (the 2017 tutorial did not)
    pooling: str = "last"  # rnn/gru/lstm: final state only, or final state + max over steps
    num_members: int = 1  # rnn/gru/lstm: independently trained members whose probabilities are averaged
    ngram_order: int = 0  # rnn/gru/lstm: each member also reads a bag of hashed 1..order-grams (0 = off)
    ngram_buckets: int = 0  # hash buckets of that bag
    ngram_dim: int = 0  # width of a bucket's learned vector

    def __post_init__(self) -> None:
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"architecture must be one of {ARCHITECTURES}, got {self.architecture!r}")
        if self.nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity must be tanh or relu, got {self.nonlinearity!r}")
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {self.pooling!r}")
        if self.architecture == "concat" and self.num_members != 1:
            raise ValueError(f"the concat cell has one member, got num_members={self.num_members}")
        if min(self.vocab_size, self.num_labels, self.hidden_size, self.num_layers, self.num_members) < 1:
            raise ValueError(f"sizes must be positive: {self}")
        if self.num_labels < 2:
            raise ValueError(f"need at least 2 labels, got {self.num_labels}")
        if self.ngram_order:
            if self.architecture == "concat":
                raise ValueError("the concat cell reads characters only; ngram_order must be 0")
            if self.ngram_order < 1 or self.ngram_buckets < 1 or self.ngram_dim < 1:
                raise ValueError(f"an n-gram bag needs a positive order, buckets and dim: {self}")
            if (self.vocab_size + 2) ** self.ngram_order >= MAX_NGRAM_CODE:
                raise ValueError(
                    f"ngram_order {self.ngram_order} is too long for {self.vocab_size} symbols: "
                    f"n-gram codes must stay below 2**31"
                )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "NetworkConfig":
        known = {field.name for field in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown network config keys: {sorted(unknown)}")
        return cls(**values)


class NameClassifier(nn.Module):
    """Shared head: calibrated LogSoftmax over label scores.

    `label_bias` and `temperature` are buffers (saved with the weights) fitted on the validation
    split after training: a per-label shift that trades the majority labels against the small ones,
    and a temperature that makes the probabilities calibrated. They stay 0 and 1 while training.
    """

    def __init__(self, config: NetworkConfig) -> None:
        super().__init__()
        self.config = config
        self.register_buffer("label_bias", torch.zeros(config.num_labels))
        self.register_buffer("temperature", torch.ones(()))

    def calibrated_log_softmax(self, logits: torch.Tensor) -> torch.Tensor:
        return F.log_softmax((logits + self.label_bias) / self.temperature, dim=1)


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

    def member_log_probs(self, char_ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(1, B, L) uncalibrated log-probabilities: what training fits."""
        return F.log_softmax(self._logits(char_ids, lengths), dim=1).unsqueeze(0)

    def forward(self, char_ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.calibrated_log_softmax(self._logits(char_ids, lengths))


class NgramHasher:
    """Bucket ids of a name's character 1..order-grams, with begin and end marked ("^Mc", "ski$").

    The n-grams are hashed from the character ids, inside the network, so callers pass the same
    (ids, lengths) batch as to any network, and padding never enters a bag. An n-gram's code is its
    ids read as digits in base vocab_size + 2; ids are >= 1, so codes of different orders never
    coincide. Its bucket is code * HASH_MULTIPLIER mod buckets, exact in int64 on any device. With a
    power-of-two bucket count that is a fixed shuffle of code mod buckets (the multiplier is odd); on
    the training names it fills buckets as evenly as a random hash would (30,242 of 32,768 used by
    86,494 distinct n-grams, against ~30,430 expected at random).
    """

    HASH_MULTIPLIER = 0x9E3779B1  # odd and < 2**32, so code * multiplier stays below 2**63

    def __init__(self, vocab_size: int, order: int, buckets: int) -> None:
        self.order, self.buckets = order, buckets
        self.begin_id, self.end_id, self.base = vocab_size, vocab_size + 1, vocab_size + 2

    def bucket_ids(self, char_ids: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Flat bucket ids of every n-gram of every name, and each name's offset into them."""
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
        ids = torch.remainder(torch.cat(parts, dim=1)[valid] * self.HASH_MULTIPLIER, self.buckets)
        counts = valid.sum(dim=1)
        return ids, torch.cumsum(counts, 0) - counts


class RecurrentMember(nn.Module):
    """One nn.RNN / nn.GRU / nn.LSTM with its own head: packed one-hot sequence -> label scores."""

    def __init__(self, config: NetworkConfig) -> None:
        super().__init__()
        self.config = config
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
        self.dropout = nn.Dropout(config.dropout)
        pooled_copies = 2 if config.pooling == "last_max" else 1
        # A bag of the name's hashed n-grams says which fragments occur anywhere, what a linear
        # n-gram classifier is good at, for the cost of a table lookup.
        self.ngram_table = nn.EmbeddingBag(config.ngram_buckets, config.ngram_dim, mode="mean") if config.ngram_order else None
        ngram_width = config.ngram_dim if config.ngram_order else 0
        self.head = nn.Linear(config.hidden_size * num_directions * pooled_copies + ngram_width, config.num_labels)

    def forward(
        self, packed: PackedSequence, step_positions: torch.Tensor, ngrams: tuple[torch.Tensor, torch.Tensor] | None
    ) -> torch.Tensor:
        packed_out, final_state = self.rnn(packed)
        h_n = final_state[0] if self.config.architecture == "lstm" else final_state
        num_directions = 2 if self.config.bidirectional else 1
        last_layer = h_n[-num_directions:]  # (D, B, H), already back in input order
        features = torch.cat(list(last_layer), dim=1)  # (B, D * H)
        if self.config.pooling == "last_max":
            # Max over every step's output sees the middle of long names, not just the ends. Taken
            # straight from the packed rows: no padded copy, no -inf fill.
            steps = packed_out.data  # (N, D * H), time-major rows of the length-sorted batch
            pooled = steps.new_full((features.shape[0], steps.shape[1]), float("-inf"))
            pooled = pooled.scatter_reduce(0, step_positions.unsqueeze(1).expand_as(steps), steps, "amax")
            features = torch.cat((features, pooled[packed.unsorted_indices]), dim=1)  # (B, 2 * D * H)
        if self.ngram_table is not None:
            features = torch.cat((features, self.ngram_table(*ngrams)), dim=1)  # (B, ... + ngram_dim)
        return self.head(self.dropout(features))  # (B, L)


class RecurrentClassifier(NameClassifier):
    """`num_members` recurrent members over the same packed input; their probabilities are averaged.

    Members differ only by initialization and dropout; averaging them is a cheap, well-known way
    to lower variance (one member is the plain single-network classifier).
    """

    def __init__(self, config: NetworkConfig) -> None:
        super().__init__(config)
        self.members = nn.ModuleList(RecurrentMember(config) for _ in range(config.num_members))
        self.ngram_hasher = (
            NgramHasher(config.vocab_size, config.ngram_order, config.ngram_buckets) if config.ngram_order else None
        )

    def member_log_probs(self, char_ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(M, B, L) uncalibrated log-probabilities of each member: what training fits."""
        # Packing makes the RNN stop at each name's true length, so padding never leaks in; the ids
        # are packed before the one-hot so padding is never expanded to V floats.
        packed_ids = pack_padded_sequence(char_ids, lengths.cpu(), batch_first=True, enforce_sorted=False)
        packed = packed_ids._replace(data=F.one_hot(packed_ids.data, self.config.vocab_size).float())  # (N, V)
        step_positions = _sorted_batch_positions(packed.batch_sizes).to(char_ids.device)  # (N,)
        ngrams = self.ngram_hasher.bucket_ids(char_ids, lengths) if self.ngram_hasher else None  # shared by members
        return torch.stack([F.log_softmax(member(packed, step_positions, ngrams), dim=1) for member in self.members])

    def forward(self, char_ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        member_log_probs = self.member_log_probs(char_ids, lengths)  # (M, B, L)
        mean_log_probs = torch.logsumexp(member_log_probs, dim=0) - math.log(len(self.members))
        return self.calibrated_log_softmax(mean_log_probs)


def _sorted_batch_positions(batch_sizes: torch.Tensor) -> torch.Tensor:
    """For each row of a PackedSequence's data, which (length-sorted) batch entry it belongs to."""
    starts = torch.cumsum(batch_sizes, dim=0) - batch_sizes  # (T,) first row of each step
    return torch.arange(int(batch_sizes.sum())) - torch.repeat_interleave(starts, batch_sizes)


def build_network(config: NetworkConfig) -> NameClassifier:
    """Instantiate the network a config describes."""
    if config.architecture == "concat":
        return ConcatRNN(config)
    return RecurrentClassifier(config)
