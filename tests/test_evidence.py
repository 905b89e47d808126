"""Script, letter, marker-word and word-shape evidence: a likelihood per label, read from the checkpoint's table."""

from __future__ import annotations

import itertools
import math
import re

import pytest
import torch

from model.evidence import DEFAULT_LETTERS, DEFAULT_SCRIPTS, DEFAULT_WORDS, Evidence, EvidenceTable
from model.readers import is_hyphenated_korean_given_name
from model.scripts import distinctive_letters
from training.data import load_names_dir

LABELS = ("Arabic", "Chinese", "Czech", "English", "German", "Japanese", "Korean", "Polish", "Spanish", "Vietnamese")


@pytest.fixture(scope="module")
def evidence() -> Evidence:
    return Evidence(EvidenceTable(), LABELS)


def test_evidence_is_a_likelihood_floor_for_the_labels_a_feature_does_not_fit(evidence):
    hangul = dict(zip(LABELS, evidence.log_likelihood(("script:Hangul",)).tolist(), strict=True))
    assert hangul["Korean"] == 0.0
    assert all(value == pytest.approx(math.log(1e-6)) for label, value in hangul.items() if label != "Korean")
    polish = dict(zip(LABELS, evidence.log_likelihood(("letter:ł",)).tolist(), strict=True))
    assert polish["Polish"] == 0.0 and polish["German"] == pytest.approx(math.log(0.05))


def test_marker_word_evidence_uses_its_own_floor(evidence):
    bin_ = dict(zip(LABELS, evidence.log_likelihood(("word:bin",)).tolist(), strict=True))
    assert bin_["Arabic"] == 0.0
    assert all(value == pytest.approx(math.log(1e-3)) for label, value in bin_.items() if label != "Arabic")
    assert torch.all(evidence.log_likelihood(("word:smith",)) == 0)  # not a marker word: says nothing


def test_a_hyphenated_korean_given_name_is_korean_then_chinese_then_anything_else(evidence):
    """Both shapes at floor 0.1: Korean 1, Chinese 0.1 (Taiwanese and Hong Kong names are hyphenated
    too), every other label 0.01."""
    shapes = ("syllables:east-asian-given-name", "syllables:korean-given-name")
    given = dict(zip(LABELS, evidence.log_likelihood(shapes).tolist(), strict=True))
    assert given["Korean"] == 0.0 and given["Chinese"] == pytest.approx(math.log(0.1))
    assert all(
        value == pytest.approx(2 * math.log(0.1))
        for label, value in given.items()
        if label not in ("Korean", "Chinese")
    )


def test_evidence_table_of_a_checkpoint_without_word_shapes_has_none():
    """A checkpoint written before word shapes existed answers as it did under its own model_id."""
    old = {key: value for key, value in EvidenceTable().to_dict().items() if key not in ("syllables", "syllable_floor")}
    assert EvidenceTable.from_dict(old).syllables == {}
    assert EvidenceTable().syllables


def test_evidence_table_of_a_checkpoint_without_marker_words_has_none():
    """A checkpoint written before marker words existed answers as it did under its own model_id."""
    old = {key: value for key, value in EvidenceTable().to_dict().items() if key not in ("words", "word_floor")}
    assert EvidenceTable.from_dict(old).words == {}
    assert EvidenceTable().words == DEFAULT_WORDS


def test_evidence_of_several_features_adds_up_and_latin_says_nothing(evidence):
    both = evidence.log_likelihood(("letter:ř", "letter:ý"))
    torch.testing.assert_close(both, evidence.log_likelihood(("letter:ř",)) + evidence.log_likelihood(("letter:ý",)))
    assert torch.all(evidence.log_likelihood(("script:Latin",)) == 0)
    assert torch.all(evidence.log_likelihood(()) == 0)


def test_evidence_knows_unsupported_letters_and_scripts(evidence):
    assert evidence.unsupported_letters(("letter:ı", "letter:ł", "script:Han")) == ("ı",)
    assert evidence.supported_script("Han") and not evidence.supported_script("Devanagari")
    assert not evidence.supported_script("Greek")  # no Greek label among these
    assert Evidence(EvidenceTable(), ("Greek", "English")).supported_script("Greek")


def test_evidence_table_round_trips_through_its_dict():
    table = EvidenceTable(script_floor=1e-3)
    assert EvidenceTable.from_dict(table.to_dict()) == table


def test_every_label_named_in_the_default_table_is_a_training_label():
    labels = set(load_names_dir("data/names").labels)
    tables = [*DEFAULT_SCRIPTS.values(), *DEFAULT_LETTERS.values(), *DEFAULT_WORDS.values()]
    named = {label for labels_ in tables for label in labels_} - {"*"}
    assert named <= labels


def test_default_table_agrees_with_the_training_names_diacritics():
    """A letter of a training name should fit that name's label: the few that do not are the data's
    own oddities (Smolák under Polish, Catalan names under Spanish), named here."""
    dataset = load_names_dir("data/names")
    evidence = Evidence(EvidenceTable(), dataset.labels)
    misfits = set()
    for record in dataset.records:
        for letter in distinctive_letters(record.name):
            compatible = evidence.compatible_labels("letter:" + letter)
            if compatible is not None and not set(compatible) & record.labels:
                misfits.add((record.name, letter))
    assert misfits <= {("Smolák", "á")}


def test_no_training_name_holds_a_marker_word():
    """Marker words are evidence the network could not learn: no name of the data is built with one
    (so they leave every test-split answer as it was)."""
    names = [re.split(r"[\s\-']+", record.name.casefold()) for record in load_names_dir("data/names").records]
    words = {word for name in names for word in name}
    chains = {f"{first} {second}" for name in names for first, second in itertools.pairwise(name)}
    assert not (words | chains) & set(DEFAULT_WORDS)
    assert {"van der", "van den", "bin"} <= set(DEFAULT_WORDS)


def test_no_training_name_has_the_shape_of_a_korean_given_name():
    """The network could not learn the shape either: no name of the data is Korean syllables joined
    by hyphens (so it leaves every test-split answer as it was)."""
    from model.encoder import normalize

    assert not [
        record.name
        for record in load_names_dir("data/names").records
        if is_hyphenated_korean_given_name(normalize(record.name))
    ]
