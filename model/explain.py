"""Why a name got its answer: exact occlusion of each character of the name as written.

A name's cleaned text is cut into fragments (a character and any combining marks after it). Each
variant with one fragment removed is scored by the same pipeline as the name itself (reading and
transliteration, script and letter evidence, the network, the full-name combination), the
variants of every name of a batch in one batched pass (`NameScorer.score`, on the predictor's
device). A fragment's score for a label is that label's probability with the fragment minus
without it: positive means the fragment raised the label, negative that it lowered it.

Occluding the text as written, rather than the transliteration the network reads, is what maps
scores onto the user's own characters with no alignment to get wrong: removing `ễ` from `Nguyễn`
removes both the `e` the network reads and the letter evidence of `ễ`; removing `田` from `田中`
leaves `中`, read again by both readers. A full name is occluded as a whole, so each score is a
change in the combined answer, and a given name's letters weigh as the combination weighs them;
removing a comma or a title's letter may change how the name splits, and the score says so.
Whitespace is never removed (that would join two names into one word): it scores 0. A variant is
weighed by its probabilities even where an answer would abstain ("Hnton" is not a name): the
abstention is a gate over the probabilities, not part of them. A variant left with no letters reads
as nothing, which the combination answers with the prior alone.

Why not Integrated Gradients (Captum): gradients reach only the network, while the evidence, the
readers, the not-a-name check and the full-name combination are not differentiable in the
one-hot input; and a name is short, so exact occlusion is a handful of rows per name in one batch,
with no dependency and no approximation.
"""

from __future__ import annotations

import unicodedata
from typing import NamedTuple

import torch

from model.encoder import clean_text
from model.scoring import NameScorer


class Explanation(NamedTuple):
    """One name's occlusion scores: its cleaned text cut into fragments (they join back into it), and
    per explained label, per fragment, how much the fragment raised that label's probability."""

    fragments: tuple[str, ...]
    label_ids: tuple[int, ...]  # into the predictor's labels, in the order asked
    scores: tuple[tuple[float, ...], ...]  # scores[j][i]: fragment i's score for label_ids[j]


class ExplainItem(NamedTuple):
    """A name to explain, for which labels, under which (L,) log-prior."""

    name: str
    label_ids: tuple[int, ...]
    log_prior: torch.Tensor


def fragments_of(text: str) -> list[str]:
    """The characters of `text`, each with the combining marks that follow it (a decomposed `ễ` is one)."""
    fragments: list[str] = []
    for char in text:
        if fragments and unicodedata.combining(char):
            fragments[-1] += char
        else:
            fragments.append(char)
    return fragments


def occluded_variants(fragments: list[str]) -> list[tuple[int, str]]:
    """(position, text without that fragment) for every fragment that is not whitespace."""
    return [
        (position, "".join(fragments[:position] + fragments[position + 1 :]))
        for position, fragment in enumerate(fragments)
        if not fragment.isspace()
    ]


def explain(scorer: NameScorer, items: list[ExplainItem]) -> list[Explanation]:
    """Each item's explanation, in order: the names and all their variants scored in one pass."""
    fragment_lists = [fragments_of(clean_text(item.name)) for item in items]
    texts: list[str] = []
    first_rows: list[int] = []  # item i's own row; its variants follow it
    variant_positions: list[list[int]] = []
    for item, fragments in zip(items, fragment_lists, strict=True):
        first_rows.append(len(texts))
        variants = occluded_variants(fragments)
        texts.append(item.name)
        texts += [text for _, text in variants]
        variant_positions.append([position for position, _ in variants])
    if not texts:
        return []
    probabilities = _probabilities(scorer, texts, items, first_rows).tolist()  # one conversion, not one per name
    explanations = []
    for item, fragments, first, positions in zip(items, fragment_lists, first_rows, variant_positions, strict=True):
        rows = probabilities[first : first + 1 + len(positions)]
        per_label = []
        for label_id in item.label_ids:
            with_all, *without = (row[label_id] for row in rows)
            label_scores = [0.0] * len(fragments)
            for position, probability in zip(positions, without, strict=True):
                label_scores[position] = with_all - probability
            per_label.append(tuple(label_scores))
        explanations.append(Explanation(tuple(fragments), item.label_ids, tuple(per_label)))
    return explanations


def _probabilities(
    scorer: NameScorer, texts: list[str], items: list[ExplainItem], first_rows: list[int]
) -> torch.Tensor:
    """(R, L) label probabilities of every text, each under its own item's prior, in one softmax."""
    log_likelihoods = scorer.score(texts).log_likelihoods  # (R, L)
    item_priors = torch.stack([item.log_prior for item in items])  # (N, L)
    rows_per_item = torch.tensor([*first_rows[1:], len(texts)]) - torch.tensor(first_rows)  # (N,)
    return torch.softmax(log_likelihoods + item_priors.repeat_interleave(rows_per_item, dim=0), dim=1)
