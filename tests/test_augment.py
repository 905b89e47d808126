"""Other-gender forms of surnames: the rules, and where derived forms go."""

from __future__ import annotations

import pytest

from training.augment import derive_gender_forms, other_gender_form
from training.data import NameRecord


@pytest.mark.parametrize(
    ("name", "label", "form"),
    [
        ("Ivanov", "Russian", "Ivanova"),
        ("Andreev", "Russian", "Andreeva"),
        ("Pushkin", "Russian", "Pushkina"),
        ("Dostoevsky", "Russian", "Dostoevskaya"),
        ("Tolstoy", "Russian", "Tolstaya"),
        ("Ivanova", "Russian", "Ivanov"),
        ("Trotskaya", "Russian", "Trotsky"),
        ("IVANOV", "Russian", "IVANOVA"),
        ("Kowalski", "Polish", "Kowalska"),
        ("Wysocki", "Polish", "Wysocka"),
        ("Kowalska", "Polish", "Kowalski"),
        ("Novak", "Czech", "Novakova"),
        ("Novák", "Czech", "Nováková"),
        ("Svoboda", "Czech", "Svobodova"),
        ("Hajek", "Czech", "Hajkova"),
        ("Němec", "Czech", "Němcová"),
        ("Černý", "Czech", "Černá"),
        ("Cerny", "Czech", "Cerna"),
        ("Papadopoulos", "Greek", "Papadopoulou"),
        ("Antoniadis", "Greek", "Antoniadi"),
    ],
)
def test_other_gender_form_follows_the_regular_endings(name, label, form):
    assert other_gender_form(name, label) == form


@pytest.mark.parametrize(
    ("name", "label"),
    [
        ("Shevchenko", "Russian"),
        ("Ov", "Russian"),
        ("Nowak", "Polish"),
        ("Havel", "Czech"),
        ("Nováková", "Czech"),
        ("Smith", "English"),
        ("Von brandt", "German"),
        ("Rimsky-Korsakov", "Russian"),
        ("Janů", "Czech"),
    ],
)
def test_other_gender_form_leaves_irregular_and_other_names_alone(name, label):
    assert other_gender_form(name, label) is None


def test_derive_gender_forms_skips_forms_the_data_already_has_and_keeps_the_source():
    records = [
        NameRecord("Ivanov", frozenset({"Russian"})),
        NameRecord("Ivanova", frozenset({"Russian"})),
        NameRecord("Petrov", frozenset({"Russian", "Czech"})),
        NameRecord("Smith", frozenset({"English"})),
    ]
    derived = {form.record.name: form for form in derive_gender_forms(records)}
    assert set(derived) == {"Petrova", "Petrovova"}  # Ivanov/Ivanova are both in the data already
    assert derived["Petrova"].source == "Petrov" and derived["Petrova"].record.labels == frozenset({"Russian"})
    assert derived["Petrovova"].record.labels == frozenset({"Czech"})  # each label's own rule
