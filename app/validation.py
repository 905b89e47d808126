"""Checks that need runtime facts: the settings' limits and the checkpoint's labels.

Every problem in a request is collected, not just the first, so one bad name in a batch is never
hidden behind another; the whole request is then rejected with one 422 listing them all. A name
the model cannot read is not a request error: it abstains in its place (HTTP 200).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from model.encoder import visible_length
from model.predictor import Predictor
from model.priors import Prior, PriorError, first_few


@dataclass(frozen=True)
class FieldProblem:
    field: str  # `top_k`, `name`, `names[3]`, `body`, a header name
    message: str
    type: str


class InvalidRequestError(ValueError):
    """A request that parsed but cannot be served as asked; answered 422 with every problem listed."""

    def __init__(self, problems: list[FieldProblem]) -> None:
        super().__init__("; ".join(f"{problem.field}: {problem.message}" for problem in problems))
        self.problems = problems


def check_classify_request(
    name_batch: list[str],
    batch_form: bool,
    top_k: int,
    prior: Prior,
    predictor: Predictor,
    max_names_per_request: int,
    max_name_length: int,
    explain_labels: list[str] | None = None,
) -> None:
    """Raise InvalidRequestError naming every field that breaks a limit or does not fit the model."""
    problems: list[FieldProblem] = []
    if top_k > predictor.num_labels:
        problems.append(
            FieldProblem(
                "top_k",
                f"top_k must be at most {predictor.num_labels}, the number of labels; got {top_k}",
                "top_k_too_large",
            )
        )
    try:
        predictor.log_prior_for(prior)
    except PriorError as error:
        problems.append(FieldProblem("prior", str(error), "invalid_prior"))
    repeated = (
        sorted(label for label, count in Counter(explain_labels).items() if count > 1)
        if explain_labels and len(set(explain_labels)) < len(explain_labels)
        else []
    )
    if repeated:  # each copy was explained again, per name: 115,000 copies held the event loop for 10 s
        problems.append(
            FieldProblem(
                "explain_labels", f"explain_labels names {first_few(repeated)} more than once", "duplicate_label"
            )
        )
    else:
        try:
            predictor.label_ids_of(tuple(explain_labels or ()))
        except ValueError as error:
            problems.append(FieldProblem("explain_labels", str(error), "unknown_label"))
    if len(name_batch) > max_names_per_request:
        problems.append(
            FieldProblem(
                "names",
                f"at most {max_names_per_request} names per request; got {len(name_batch)}",
                "too_many_names",
            )
        )
        raise InvalidRequestError(problems)  # do not spend time reading names we will refuse anyway
    for index, name in enumerate(name_batch):
        # Counted as read, not in code points: the same name decomposed (NFD), padded with spaces or
        # holding zero-width marks is the same length, and a compatibility character that NFKC spells
        # out (ﷺ, ﬁ) counts what it becomes. ASCII is read as it is written.
        if (len(name) > max_name_length or not name.isascii()) and (length := visible_length(name)) > max_name_length:
            field = f"names[{index}]" if batch_form else "name"
            message = f"name is {length} characters; at most {max_name_length} are accepted"
            problems.append(FieldProblem(field, message, "name_too_long"))
    if problems:
        raise InvalidRequestError(problems)
