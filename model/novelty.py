"""Is this string a name at all? A character language model of the training names, and a threshold.

The classifier must give every string some label, so keyboard mash ("xzqwv"), random letters and
placeholders ("null", "N/A") get confident-looking answers. A Kneser-Ney character n-gram model,
fitted on the training names by `training.novelty`, says how likely a string is as a name: the
mean log-probability per symbol (each character and the end of the name). Below a threshold fitted
on the validation names, the name abstains as `not-a-name`; so does an exact placeholder.

The model is stored in backoff form (as in the ARPA format): for each order k, the sorted codes of
the k-grams seen in training with their interpolated log-probabilities, and the sorted codes of
their contexts with backoff weights. At first use the backoff recursion's value of every possible
n-gram is laid into a dense table, an order at a time, so scoring a batch is one lookup per
character on the same (ids, lengths) batch the network reads, on any device.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

# Strings that fill a name field when there is no name: matched whole, after cleaning and casefold.
DEFAULT_PLACEHOLDERS = (
    "null",
    "none",
    "nil",
    "nan",
    "n/a",
    "n.a.",
    "n.a",
    "n/d",
    "na.",
    "-",
    "--",
    "?",
    "??",
    "unknown",
    "unk",
    "anonymous",
    "anon",
    "test",
    "testing",
    "tester",
    "xxx",
    "xx",
    "x",
    "xyz",
    "abc",
    "asdf",
    "qwerty",
    "foo",
    "bar",
    "foobar",
    "baz",
    "sample",
    "example",
    "dummy",
    "undefined",
    "missing",
    "noname",
    "no name",
    "nobody",
    "name",
    "surname",
    "last name",
    "lastname",
    "first name",
    "firstname",
    "tbd",
    "tba",
    "todo",
    "blank",
    "empty",
    "void",
    "not applicable",
    "not available",
    "not known",
    "refused",
    "declined",
    "john doe",
    "jane doe",
    "doe",
)


@dataclass(frozen=True)
class NoveltyConfig:
    """The language model's order and symbol coding, the fitted threshold, and the placeholders."""

    order: int
    vocab_size: int  # the encoder's; begin and end of a name are vocab_size and vocab_size + 1
    threshold: float  # mean log-probability per symbol below which a name is not a name
    placeholders: tuple[str, ...] = field(default=DEFAULT_PLACEHOLDERS)
    val_quantile: float = 0.0  # the share of validation names below the threshold when it was fitted

    @property
    def begin_id(self) -> int:
        return self.vocab_size

    @property
    def end_id(self) -> int:
        return self.vocab_size + 1

    @property
    def base(self) -> int:
        return self.vocab_size + 2

    def to_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values["placeholders"] = list(self.placeholders)
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> NoveltyConfig:
        placeholders = values.get("placeholders", DEFAULT_PLACEHOLDERS)
        if isinstance(placeholders, str):  # a string would become a placeholder per letter
            raise ValueError("novelty.placeholders must be a list of strings")
        return cls(**{**values, "placeholders": tuple(placeholders)})


def gram_code(symbols: list[int] | tuple[int, ...], base: int) -> int:
    """The code of an n-gram: its symbols read as digits in `base`, first symbol most significant."""
    code = 0
    for symbol in symbols:
        code = code * base + symbol
    return code


def padded_symbols(ids: tuple[int, ...], config: NoveltyConfig) -> list[int]:
    """A name as the model reads it: order - 1 begin marks, the character ids, one end mark."""
    return [config.begin_id] * (config.order - 1) + list(ids) + [config.end_id]


# The most codes (base ** order) the dense lookup table is built for: the shipped 4-gram model over 36
# symbols has 1.7M (6.4 MiB); a 5-gram one would have 60M (242 MiB) and a 6-gram one 2.2G (8.7 GB), so
# higher orders look each code up by the backoff recursion instead (slower, no table).
DENSE_TABLE_MAX_ENTRIES = 1 << 24


class CharLanguageModel(torch.nn.Module):
    """Scores names under the backoff tables; every table is a buffer, saved with the checkpoint."""

    unigram_log_probs: torch.Tensor  # a buffer (register_buffer below); declared for the type checker

    def __init__(self, config: NoveltyConfig, tables: dict[str, torch.Tensor]) -> None:
        super().__init__()
        self.config = config
        expected = {"unigram_log_probs"} | {
            f"{kind}_{k}"
            for k in range(2, config.order + 1)
            for kind in ("gram_codes", "gram_log_probs", "context_codes", "context_backoffs")
        }
        if set(tables) != expected:
            raise ValueError(
                f"language model tables {sorted(tables)} do not match order {config.order}: {sorted(expected)}"
            )
        if tables["unigram_log_probs"].shape != (config.base,):
            raise ValueError(
                f"unigram table has shape {tuple(tables['unigram_log_probs'].shape)}, expected ({config.base},)"
            )
        for name, tensor in tables.items():
            self.register_buffer(name, tensor)
        self._table: torch.Tensor | None = None  # built on first use; not a buffer, so never saved

    def tables(self) -> dict[str, torch.Tensor]:
        return dict(self.named_buffers())

    def total_log_probs(self, char_ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B,) log-probability of each name (its characters and its end), from a right-padded (B, T) batch."""
        config, device = self.config, char_ids.device
        batch_size, max_len = char_ids.shape
        lengths = lengths.to(device)
        context = config.order - 1
        symbols = torch.zeros(batch_size, context + max_len + 1, dtype=torch.long, device=device)  # (B, P)
        symbols[:, :context] = config.begin_id
        symbols[:, context : context + max_len] = char_ids
        symbols[torch.arange(batch_size, device=device), context + lengths] = config.end_id
        # columns[j]: the symbol order - 1 - j places before each target; the last column is the target
        columns = [symbols[:, j : j + max_len + 1] for j in range(config.order)]  # each (B, T + 1)
        if self.has_dense_table:
            codes = functools.reduce(lambda code, column: code * config.base + column, columns)
            log_probs = self._conditional_table(device)[codes]
        else:  # a table of every code would not fit: the same values by the backoff recursion
            log_probs = self.backoff_log_probs(columns).to(torch.get_default_dtype())
        counted = torch.arange(max_len + 1, device=device).unsqueeze(0) <= lengths.unsqueeze(1)  # (B, T + 1)
        return (log_probs * counted).sum(dim=1)

    @property
    def has_dense_table(self) -> bool:
        """Whether names are scored by one lookup in a table of every code (orders up to 4 over 36 symbols)."""
        entries: int = self.config.base**self.config.order
        return entries <= DENSE_TABLE_MAX_ENTRIES

    def backoff_log_probs(self, columns: list[torch.Tensor]) -> torch.Tensor:
        """log P(target | context) by the backoff recursion, for `order` equal-shape tensors of symbols
        (the earliest context symbol first, the target last)."""
        config = self.config
        targets = columns[-1]
        log_probs = self.unigram_log_probs[targets]
        codes = targets  # codes of the k-grams ending at each target, k = 1 first
        for k in range(2, config.order + 1):
            codes = columns[-k] * config.base ** (k - 1) + codes
            contexts = codes // config.base  # the k-gram without its last symbol
            found, rows = _lookup(getattr(self, f"gram_codes_{k}"), codes)
            seen_context, context_rows = _lookup(getattr(self, f"context_codes_{k}"), contexts)
            backoff = torch.where(seen_context, getattr(self, f"context_backoffs_{k}")[context_rows], 0.0)
            log_probs = torch.where(found, getattr(self, f"gram_log_probs_{k}")[rows], backoff + log_probs)
        return log_probs

    def _conditional_table(self, device: torch.device) -> torch.Tensor:
        """(base ** order,) log P(last symbol | the others) for every n-gram code, built once from the
        backoff tables: scoring a name is then one lookup per character instead of two binary
        searches per order (36 ** 4 float32 values, 6.4 MiB, for the shipped 4-gram model)."""
        if self._table is None or self._table.device != device:
            self._table = self._dense_backoff_table(device)
        return self._table

    def _dense_backoff_table(self, device: torch.device) -> torch.Tensor:
        """`backoff_log_probs` of every code, an order at a time: a k-gram unseen in training gets its
        context's backoff weight (0 for an unseen context) plus the (k-1)-gram table's value of its
        suffix, one broadcast add over all codes, then the seen k-grams are written over it. The same
        float additions as the recursion, so the same values (a test compares every code), without the
        per-code binary searches every process paid for at start (docs/benchmarks.md, "Large batches")."""
        base = self.config.base
        table = self.unigram_log_probs.to(device).clone()  # order 1: (base,), in the tables' own dtype
        for k in range(2, self.config.order + 1):
            backoffs = table.new_zeros(base ** (k - 1))  # per context, the (k-1)-gram
            backoffs[getattr(self, f"context_codes_{k}").to(device)] = getattr(self, f"context_backoffs_{k}").to(
                device, table.dtype
            )
            # code = first * base^(k-1) + suffix; the suffix's own table is (base^(k-2) contexts, base targets)
            unseen = backoffs.view(base, base ** (k - 2), 1) + table.view(1, base ** (k - 2), base)
            table = unseen.reshape(-1)
            table[getattr(self, f"gram_codes_{k}").to(device)] = getattr(self, f"gram_log_probs_{k}").to(
                device, table.dtype
            )
        return table.to(torch.get_default_dtype())  # as the table was always held: in the default dtype

    def mean_log_probs(self, char_ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B,) log-probability per symbol: comparable across name lengths."""
        return self.total_log_probs(char_ids, lengths) / (lengths.to(char_ids.device) + 1)


def _lookup(sorted_codes: torch.Tensor, codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(found, row) of each code in a sorted table; row is clamped in range where not found."""
    if sorted_codes.numel() == 0:
        return torch.zeros_like(codes, dtype=torch.bool), torch.zeros_like(codes)
    rows = torch.searchsorted(sorted_codes, codes).clamp(max=sorted_codes.numel() - 1)
    return sorted_codes[rows] == codes, rows
