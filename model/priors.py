"""The label prior an answer is given under: the training data's, uniform, or the caller's own.

The calibrated network answers P(label | name) under the prior it was fitted with (the checkpoint's
`label_prior`). Another population's prior is applied by Bayes' rule: divide by the stored prior,
multiply by the new one, renormalize. "uniform" makes every label equally likely a priori, what
balanced accuracy rewards; a {label: weight} map describes a population (weights need not sum to
1; a label left out, or given 0, is impossible and never answered).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping

import torch

DATASET_PRIOR, UNIFORM_PRIOR = "dataset", "uniform"
PRIOR_NAMES = (DATASET_PRIOR, UNIFORM_PRIOR)
Prior = str | Mapping[str, float]


class PriorError(ValueError):
    """A prior that cannot be applied; the message says which part."""


def target_log_prior(prior: Prior, labels: tuple[str, ...], stored_log_prior: torch.Tensor) -> torch.Tensor:
    """(L,) log-prior to answer under; -inf for labels a weight map rules out."""
    if isinstance(prior, str):
        if prior == DATASET_PRIOR:
            return stored_log_prior
        if prior == UNIFORM_PRIOR:
            return torch.full((len(labels),), -math.log(len(labels)))
        raise PriorError(f"prior must be one of {PRIOR_NAMES} or a {{label: weight}} map, got {prior!r}")
    if not isinstance(prior, Mapping):
        raise PriorError(f"prior must be one of {PRIOR_NAMES} or a {{label: weight}} map, got {type(prior).__name__}")
    unknown = sorted(set(prior) - set(labels))
    if unknown:
        raise PriorError(f"prior names labels the model does not know: {first_few(unknown)}; it knows {list(labels)}")
    weights = []
    for label in labels:
        weight = prior.get(label, 0.0)
        if isinstance(weight, bool) or not isinstance(weight, int | float) or not math.isfinite(weight) or weight < 0:
            raise PriorError(f"prior weight of {label!r} must be a finite number >= 0, got {weight!r}")
        weights.append(float(weight))
    largest = max(weights)
    if largest <= 0:
        raise PriorError("prior weights must not all be 0")
    shares = [weight / largest for weight in weights]  # in [0, 1]: the sum cannot overflow
    total = sum(shares)
    return torch.tensor([math.log(share / total) if share > 0 else -math.inf for share in shares])


def parse_prior(text: str) -> str | dict[str, float]:
    """A prior as a command line gives it: a prior name, or a JSON object of label weights (checked
    against a model's labels later, by target_log_prior)."""
    if text in PRIOR_NAMES:
        return text
    try:
        weights = json.loads(text)
    except json.JSONDecodeError as error:
        raise PriorError(
            f"prior must be {' or '.join(PRIOR_NAMES)} or a JSON object of label weights, got {text[:100]!r} ({error})"
        ) from error
    if not isinstance(weights, dict):
        raise PriorError(f"prior must be {' or '.join(PRIOR_NAMES)} or a JSON object of label weights, got {text!r}")
    return weights


MAX_LISTED = 10  # names an error message lists: a request of 60,000 unknown labels drew a 589 KB answer


def first_few(values: list[str]) -> str:
    """`values` for an error message: the first MAX_LISTED, and how many more there are."""
    if len(values) <= MAX_LISTED:
        return repr(values)
    return f"{values[:MAX_LISTED]!r} and {len(values) - MAX_LISTED:,} more"
