"""Placeholders in a name field abstain as not-a-name, in every form exports hold them; names do not."""

from __future__ import annotations

import pytest

from model.encoder import clean_text
from model.novelty import DEFAULT_PLACEHOLDERS
from model.placeholders import (
    FIELD_WORDS,
    FILLER_WORDS,
    NAMES_AMONG_PLACEHOLDERS,
    SPREADSHEET_ERRORS,
    STAND_IN_NAMES,
    fills_no_name,
)
from model.predictor import Predictor
from training.data import load_names_dir

PLACEHOLDERS = frozenset(DEFAULT_PLACEHOLDERS)


@pytest.fixture(scope="module")
def shipped() -> Predictor:
    return Predictor.from_path(device="cpu")


@pytest.mark.parametrize(
    "text",
    [
        "N/A",
        "null",
        "#N/A",  # a spreadsheet's error values
        "#VALUE!",
        "#ref!",
        "#DIV/0!",
        "(none)",  # a placeholder in brackets, quotes or dashes
        "<NULL>",
        "[blank]",
        "-none-",
        "'N/A'",
        "*unknown*",
        "N/A.",
        "Test User",  # every word a placeholder or a form's word
        "test test",
        "Unknown Unknown",
        "UNKNOWN, UNKNOWN",
        "First Last",
        "Firstname Lastname",
        "Name Surname",
        "First Name Last Name",
        "Guest User",
        "New Customer",
        "Lorem Ipsum",
        "Doe, John",  # a whole placeholder of several words in the other order, or after titles
        "Doe John",
        "Mr. John Doe",
        "Admin",  # a form's word that is no one's name alone
        "customer",
        "USER",
        "#NV",  # spreadsheet errors of other locales
        "#WERT!",
        "#¿NOMBRE?",
        "Test-User",  # hyphens and numbers
        "Test User 1",
        "Deleted User",
        "Valued Customer",
        "Customer Service",
        "Not Provided",
        "Not Specified",
        "Lorem ipsum dolor sit amet",
        "Vorname Nachname",  # a form's labels in the labels' languages
        "Nome Cognome",
        "Nombre Apellido",
        "Prénom Nom",
        "Имя Фамилия",
        "Max Mustermann",  # stand-in names
        "Joe Bloggs",
        "Fulano de Tal",
        "Richard Roe",
        "Ms. Unknown",  # after titles, one word that is never a name
        "Mr Test",
        "Test Sample",  # a placeholder that is a name too, beside one that never is
        "Sample User",
        "Unknown Doe",
        "[deleted]",  # a name taken out, in brackets
        "(redacted)",
        "first_name",
        "#Н/Д",  # spreadsheet errors in the labels' languages
        "#ЗНАЧ!",
        "Όνομα Επώνυμο",  # a form's labels in more of them
        "Họ Tên",
        "氏名",
        "Nome Sobrenome",
        "\u201cunknown\u201d",  # typographic quotes and sentence punctuation, as the name splitter strips them
        "\u201etest\u201c",
        "\u00abN/A\u00bb",
        "unknown;",
        "N/A;",
        "Unknown?",
        "\u00abBaz\u00bb",
    ],
)
def test_fills_no_name(text):
    assert fills_no_name(clean_text(text), PLACEHOLDERS)


@pytest.mark.parametrize(
    "text",
    [
        "Smith",
        "Guest",  # a form word that is also a surname, alone
        "Edgar Guest",  # or beside a name
        "Person",
        "Last",
        "Test Smith",  # one word a name: not a placeholder
        "Unknown Soldier Kovalenko",
        "(Smith)",
        "#Smith",
        "Mr Smith",
        "Mr.",  # titles alone are told apart elsewhere (model.reading), not here
        "N/A Smith",
        "Nan Wang",
        "Testa",
        "Usermann",
        "",
        "Herr Blank",  # a title never makes a placeholder of a name: Blank, Sample, Tester are surnames
        "Mr Blank",
        "M. Blank",
        "Dr. Sample",
        "Mrs. Tester",
        "Nan Nan",  # placeholders that are names count only as the whole field
        "Nil Nil",
        "Sample, Nan",
        "Nan Guest",
        "Bar Nan",
        "Mr Doe",
        "Deleted",  # a name's word out of brackets
        "Private.",
        "Tên",
        "\u201cSmith\u201d",  # a name in quotes or before a full stop or semicolon stays a name
        "Smith;",
        "O\u2019Brien",
        "Mario Rossi",  # stand-ins that are common real names stay names
        "Jan Kowalski",
        "Smith 2",
        "Not Smith",
    ],
)
def test_does_not_take_a_name_for_a_placeholder(text):
    assert not fills_no_name(clean_text(text), PLACEHOLDERS)


def test_no_name_of_the_dataset_is_taken_for_a_placeholder_it_was_not_listed_as():
    """Every name of the training files that is not one of the checkpoint's whole-field placeholders
    (Doe is one) stays a name."""
    names = [clean_text(record.name) for record in load_names_dir("data/names").records]
    assert len(names) > 17_000
    assert [name for name in names if fills_no_name(name, PLACEHOLDERS) and name.casefold() not in PLACEHOLDERS] == []


def test_the_word_lists_are_case_folded_and_apart():
    for words in (SPREADSHEET_ERRORS, FIELD_WORDS, FILLER_WORDS, STAND_IN_NAMES, NAMES_AMONG_PLACEHOLDERS):
        assert all(word == word.casefold() == word.strip() for word in words)
    assert not FIELD_WORDS & FILLER_WORDS
    assert NAMES_AMONG_PLACEHOLDERS <= PLACEHOLDERS  # words of the checkpoint's list, set apart
    assert all(error.startswith("#") for error in SPREADSHEET_ERRORS)


@pytest.mark.parametrize("name", ["Test User", "#N/A", "Unknown Unknown", "(none)", "Admin"])
def test_predictor_abstains_on_placeholders_in_place(shipped, name):
    before, answer, after = shipped.predict(["Smith", name, "Ivanov"])
    assert answer.name == name and answer.abstained and answer.reason == "not-a-name" and answer.predictions == ()
    assert not before.abstained and not after.abstained
