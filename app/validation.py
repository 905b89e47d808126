"""Checks that need runtime facts: the settings' limits and what the checkpoint's encoder can read.

Every problem in a request is collected, not just the first, so one bad name in a batch is never
hidden behind another; the whole request is then rejected with one 422 listing them all.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from model.encoder import NameEncoder, NameEncodingError

logger = logging.getLogger(__name__)


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
    num_labels: int,
    encoder: NameEncoder,
    max_names_per_request: int,
    max_name_length: int,
) -> None:
    """Raise InvalidRequestError naming every field that breaks a limit or that the model cannot read."""
    problems: list[FieldProblem] = []
    if top_k > num_labels:
        problems.append(
            FieldProblem("top_k", f"top_k must be at most {num_labels}, the number of labels; got {top_k}", "top_k_too_large")
        )
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
        field = f"names[{index}]" if batch_form else "name"
        problem = _name_problem(name, field, encoder, max_name_length)
        if problem is not None:
            problems.append(problem)
    if problems:
        raise InvalidRequestError(problems)


def _name_problem(name: str, field: str, encoder: NameEncoder, max_name_length: int) -> FieldProblem | None:
    if len(name) > max_name_length:
        return FieldProblem(field, f"name is {len(name)} characters; at most {max_name_length} are accepted", "name_too_long")
    try:
        encoder.encode(name)
    except NameEncodingError as error:  # no letters, or too long once transliterated
        return FieldProblem(field, str(error), "unreadable_name")
    return None
