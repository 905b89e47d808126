"""Fitting the not-a-name check: an interpolated Kneser-Ney character model and its threshold.

Kneser-Ney (Chen & Goodman 1998, with one discount per order, D = n1 / (n1 + 2 n2) from the count
of n-grams seen once and twice) is the standard smoothing for character n-grams: lower orders
count in how many contexts a gram appears, not how often, so a fragment common only inside one
frequent name does not look common. No library fits one and hands back tables a tensor lookup can
score (nltk's scores one string at a time; kenlm needs a compiler and word tokens), so the counting
is written out here; `model.novelty` scores the result.
"""

from __future__ import annotations

import logging
import math
from collections import Counter, defaultdict
from collections.abc import Sequence

import torch

from model.novelty import DEFAULT_PLACEHOLDERS, CharLanguageModel, NoveltyConfig, gram_code, padded_symbols

logger = logging.getLogger(__name__)

DEFAULT_ORDER = 4
GramTables = dict[int, dict[tuple[int, ...], float]]  # order k -> k-gram (or context) -> value


def _discount(counts: Counter[tuple[int, ...]]) -> float:
    """D = n1 / (n1 + 2 n2), clipped into (0, 1)."""
    values = Counter(counts.values())
    n1, n2 = values.get(1, 0), values.get(2, 0)
    return min(max(n1 / (n1 + 2 * n2), 0.05), 0.95) if n1 + n2 else 0.75


def fit_language_model(
    sequences: Sequence[tuple[int, ...]], vocab_size: int, order: int = DEFAULT_ORDER
) -> CharLanguageModel:
    """An order-`order` interpolated Kneser-Ney model of the id sequences, in backoff tables."""
    if order < 2:
        raise ValueError(f"a character model needs order >= 2, got {order}")
    if not sequences:
        raise ValueError("cannot fit a character model on no names")
    config = NoveltyConfig(order=order, vocab_size=vocab_size, threshold=-math.inf)
    highest: Counter[tuple[int, ...]] = Counter()
    for ids in sequences:
        symbols = padded_symbols(ids, config)
        for end in range(order - 1, len(symbols)):
            highest[tuple(symbols[end - order + 1 : end + 1])] += 1
    # counts[k]: raw counts for the highest order, continuation counts (distinct left extensions) below.
    counts: dict[int, Counter[tuple[int, ...]]] = {order: highest}
    for k in range(order - 1, 0, -1):
        counts[k] = Counter(gram[1:] for gram in counts[k + 1])
    probability: GramTables = {}
    backoff: GramTables = {}
    for k in range(1, order + 1):
        discount = _discount(counts[k])
        context_totals: dict[tuple[int, ...], int] = defaultdict(int)
        context_types: dict[tuple[int, ...], int] = defaultdict(int)
        for gram, count in counts[k].items():
            context_totals[gram[:-1]] += count
            context_types[gram[:-1]] += 1
        backoff[k] = {context: discount * context_types[context] / total for context, total in context_totals.items()}
        probability[k] = {}
        for gram, count in counts[k].items():
            lower = probability[k - 1].get(gram[1:]) if k > 1 else None
            if lower is None:  # the lower-order value of an unseen (k-1)-gram: back off further
                lower = _backed_off(gram[1:], probability, backoff, config) if k > 1 else _uniform(config)
            probability[k][gram] = max(count - discount, 0) / context_totals[gram[:-1]] + backoff[k][gram[:-1]] * lower
    return CharLanguageModel(config, _tables(probability, backoff, config))


def _uniform(config: NoveltyConfig) -> float:
    """1 / the symbols a name can continue with: every character id but padding, and the end mark."""
    return 1.0 / config.vocab_size


def _backed_off(gram: tuple[int, ...], probability: GramTables, backoff: GramTables, config: NoveltyConfig) -> float:
    """P_k(gram) for a gram unseen at its order: the context's backoff weight times the lower order."""
    k = len(gram)
    if k == 1:
        return probability[1].get(gram, backoff[1].get((), 1.0) * _uniform(config))
    if gram in probability[k]:
        return probability[k][gram]
    return backoff[k].get(gram[:-1], 1.0) * _backed_off(gram[1:], probability, backoff, config)


def _tables(probability: GramTables, backoff: GramTables, config: NoveltyConfig) -> dict[str, torch.Tensor]:
    unigram = torch.full((config.base,), math.log(backoff[1].get((), 1.0) * _uniform(config)))
    for (symbol,), value in probability[1].items():
        unigram[symbol] = math.log(value)
    tables = {"unigram_log_probs": unigram}
    for k in range(2, config.order + 1):
        grams = sorted((gram_code(gram, config.base), math.log(value)) for gram, value in probability[k].items())
        contexts = sorted((gram_code(context, config.base), math.log(weight)) for context, weight in backoff[k].items())
        tables[f"gram_codes_{k}"] = torch.tensor([code for code, _ in grams], dtype=torch.long)
        tables[f"gram_log_probs_{k}"] = torch.tensor([value for _, value in grams], dtype=torch.float32)
        tables[f"context_codes_{k}"] = torch.tensor([code for code, _ in contexts], dtype=torch.long)
        tables[f"context_backoffs_{k}"] = torch.tensor([value for _, value in contexts], dtype=torch.float32)
    return tables


def fit_threshold(
    model: CharLanguageModel, val_sequences: Sequence[tuple[int, ...]], val_quantile: float
) -> NoveltyConfig:
    """The config with the threshold that `val_quantile` of the validation names fall below."""
    from model.encoder import pad_sequences  # the one padding rule

    if not 0.0 <= val_quantile < 1.0 or not val_sequences:
        raise ValueError(f"need validation names and a quantile in [0, 1), got {len(val_sequences)} and {val_quantile}")
    with torch.inference_mode():
        scores = torch.cat(
            [
                model.mean_log_probs(*pad_sequences(val_sequences[start : start + 4096]))
                for start in range(0, len(val_sequences), 4096)
            ]
        )
    threshold = float(torch.quantile(scores.double(), val_quantile)) if val_quantile > 0 else float(scores.min()) - 1e-6
    logger.info(
        "not-a-name threshold %.4f: %.1f%% of %d validation names below it", threshold, 100 * val_quantile, len(scores)
    )
    return NoveltyConfig(
        order=model.config.order,
        vocab_size=model.config.vocab_size,
        threshold=threshold,
        placeholders=DEFAULT_PLACEHOLDERS,
        val_quantile=val_quantile,
    )
