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
removing a comma or a title's letter may change how the name splits, and the score says so. A name
of several words is also scored word by word (each word removed whole), where a single letter says
little: which part of "Nguyen Van Minh" made it Vietnamese.
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
    words: tuple[str, ...] = ()  # a name of several words: each word, scored as a whole; empty for one word
    word_scores: tuple[tuple[float, ...], ...] = ()  # word_scores[j][i]: word i's score for label_ids[j]


class ExplainItem(NamedTuple):
    """A name to explain, for which labels, under which (L,) log-prior, from its own (L,) log-likelihoods
    (`NameScores.log_likelihoods`' row for it)."""

    name: str
    label_ids: tuple[int, ...]
    log_prior: torch.Tensor
    log_likelihoods: torch.Tensor


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


def word_variants(text: str) -> list[tuple[str, str]]:
    """(word, text without that word) for each word of a cleaned text of two words or more; none for one."""
    words = text.split(" ")  # clean_text leaves single spaces
    if len(words) < 2:
        return []
    return [(word, " ".join(words[:position] + words[position + 1 :])) for position, word in enumerate(words)]


def explain(scorer: NameScorer, items: list[ExplainItem]) -> list[Explanation]:
    """Each item's explanation, in order: all variants of all names scored in one pass, each name's own
    answer taken from the pass that answered it (its `log_likelihoods`), so scores start from the
    probability the answer shows."""
    texts: list[str] = []
    layouts: list[tuple[list[str], list[int], list[str]]] = []  # per item: fragments, positions removed, words
    for item in items:
        cleaned = clean_text(item.name)
        fragments, without_words = fragments_of(cleaned), word_variants(cleaned)
        variants = occluded_variants(fragments)
        layouts.append((fragments, [position for position, _ in variants], [word for word, _ in without_words]))
        texts += [*(text for _, text in variants), *(text for _, text in without_words)]
    if not items:
        return []
    own, without_rows = _probabilities(scorer, texts, items, [len(p) + len(w) for _, p, w in layouts])
    explanations, first = [], 0
    for item, own_row, (fragments, positions, words) in zip(items, own, layouts, strict=True):
        rows = without_rows[first : first + len(positions) + len(words)]
        first += len(rows)
        per_label, per_word = [], []
        for label_id in item.label_ids:
            with_all, without = own_row[label_id], [row[label_id] for row in rows]
            label_scores = [0.0] * len(fragments)
            for position, probability in zip(positions, without[: len(positions)], strict=True):
                label_scores[position] = with_all - probability
            per_label.append(tuple(label_scores))
            per_word.append(tuple(with_all - probability for probability in without[len(positions) :]))
        explanations.append(
            Explanation(
                tuple(fragments), item.label_ids, tuple(per_label), tuple(words), tuple(per_word) if words else ()
            )
        )
    return explanations


def _probabilities(
    scorer: NameScorer, texts: list[str], items: list[ExplainItem], variants_per_item: list[int]
) -> tuple[list[list[float]], list[list[float]]]:
    """Label probabilities of each name (N, L) and of every variant (V, L), each under its own item's
    prior; as lists, converted once rather than once per name."""
    item_priors = torch.stack([item.log_prior for item in items])  # (N, L)
    own = torch.softmax(torch.stack([item.log_likelihoods for item in items]) + item_priors, dim=1)
    if not texts:
        return own.tolist(), []
    log_likelihoods = scorer.score(texts).log_likelihoods  # (V, L)
    variant_priors = item_priors.repeat_interleave(torch.tensor(variants_per_item), dim=0)  # (V, L)
    return own.tolist(), torch.softmax(log_likelihoods + variant_priors, dim=1).tolist()
