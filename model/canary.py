"""The canary: a loaded model answers a few names of every kind sanely before it is used.

A checkpoint can pass every check of its format (sizes, labels, the file's digest) and still be
broken: weights that overflow to NaN, an alphabet shuffled against the network, a model trained on
nothing. The service refuses such a model at start and on a hot reload (app.reloading); the command
lines and the batch APIs refuse it too, so a table is never filled with its answers.
"""

from __future__ import annotations

import math
from pathlib import Path

from model.predictor import Predictor, RankQuery

# Names in several scripts and forms, so every reader (the Japanese one loads its dictionary), full
# names and every sequence length bucket are exercised before a model answers its first request.
WARMUP_NAMES = [
    "Hinton",
    "Nguyễn",
    "王",
    "田中",
    "김민준",
    "Иванова",
    "Schmidhuber",
    "O'Neil",
    "Dvořák",
    "Müller-Lüdenscheidt",
    "Ng",
    "Mrs. Anna van der Berg",
    "Kim Min-jun",
    "Ahmed bin Said",
    "123",
]
WARMUP_ROUNDS = 3
# What a command line or a batch API checks a model with: the warm-up names but those in Han characters,
# whose Japanese reading loads pykakasi's dictionary (0.4-0.5 s and about 106 MB on a first call) that a
# table of Latin names never needs; the service loads it anyway, warming up for every request to come.
CANARY_NAMES = [name for name in WARMUP_NAMES if name not in ("王", "田中")]
PROBABILITY_SUM_TOLERANCE = 1e-3

# Abstentions that say what the name is, not how the model judged it: never held against a canary.
STRUCTURAL_ABSTENTIONS = frozenset(
    {"no-letters", "unsupported-script", "unsupported-letters", "too-long", "control-characters"}
)


class CanaryError(ValueError):
    """A model that loaded but answers the canary's names in a way no sound model does."""


def check_canary(candidate: Predictor, rounds: int = 1, names: list[str] = WARMUP_NAMES) -> None:
    """Warm `candidate` up and check its answers to the warm-up names: every answered name has finite
    probabilities in [0, 1] over real labels summing to 1, and at least half of the names its labels
    can answer (no structural abstention), and of those in Latin letters, are answered (a model whose
    alphabet was shuffled took every Latin name for no name and still answered the others; a model of
    Arabic and Greek alone rightly leaves Hangul and ř unanswered)."""
    query = RankQuery(top_k=candidate.num_labels)
    for _ in range(rounds):
        ranked = candidate.rank_requests([(names, query)])[0]
    answered = latin_answered = 0
    answerable = [reason not in STRUCTURAL_ABSTENTIONS for reason in ranked.reasons]
    answerable_latin = sum(script == "Latin" and can for script, can in zip(ranked.scripts, answerable, strict=True))
    rows = zip(ranked.label_ids, ranked.probabilities, ranked.reasons, ranked.scripts, strict=True)
    for label_ids, probabilities, reason, script in rows:
        if reason is not None and reason != "low-confidence":
            continue
        latin_answered += script == "Latin"
        answered += 1
        if not all(math.isfinite(p) and 0 <= p <= 1 for p in probabilities):
            raise CanaryError(f"the canary got probabilities outside [0, 1]: {probabilities[:3]}")
        if abs(sum(probabilities) - 1) > PROBABILITY_SUM_TOLERANCE:
            raise CanaryError(f"the canary's probabilities sum to {sum(probabilities)}, not 1")
        if any(not 0 <= label_id < candidate.num_labels for label_id in label_ids):
            raise CanaryError(f"the canary got label ids outside 0..{candidate.num_labels - 1}")
    if 2 * answered < sum(answerable) or 2 * latin_answered < answerable_latin:
        reasons = sorted({reason for reason in ranked.reasons if reason is not None})
        raise CanaryError(
            f"the canary answered {answered} of the {sum(answerable)} warm-up names its labels can answer and "
            f"{latin_answered} of the {answerable_latin} of them in Latin letters (abstained: {', '.join(reasons)}); a model "
            "that is sound answers at least half of each"
        )


def load_checked(checkpoint_path: str | Path, device: str = "auto", num_threads: int = 0) -> Predictor:
    """`Predictor.from_path`, then the canary: what the command lines and the batch APIs load, so a
    checkpoint the service would refuse never fills a table either. A broken model raises CanaryError
    (a ValueError) naming the file."""
    predictor = Predictor.from_path(checkpoint_path, device=device, num_threads=num_threads)
    try:
        check_canary(predictor, names=CANARY_NAMES)
    except CanaryError as error:
        raise CanaryError(f"checkpoint {checkpoint_path} loaded but is not a sound model: {error}") from None
    return predictor
